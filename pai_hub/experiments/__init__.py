"""NNI hyperparameter experiments whose trials are PAI jobs (docs/experiments.md)."""

from .service import ExperimentError, ExperimentService, start_experiments, view

__all__ = ["ExperimentError", "ExperimentService", "start_experiments", "view"]
