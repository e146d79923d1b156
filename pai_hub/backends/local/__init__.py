"""The local backend: tasks run as supervised process groups on this machine (see docs/backends.md)."""

from pai_hub.backends.local.backend import LOST_EXIT_CODE, LocalBackend
from pai_hub.backends.local.gpus import discover_gpus, simulated_gpus

__all__ = ["LOST_EXIT_CODE", "LocalBackend", "discover_gpus", "simulated_gpus"]
