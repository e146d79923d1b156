"""The Slurm backend: task attempts as Slurm batch jobs (docs/slurm.md)."""

from pai_hub.backends.slurm.backend import SlurmBackend, parse_gres_gpus

__all__ = ["SlurmBackend", "parse_gres_gpus"]
