"""The local backend: tasks run as supervised process groups on this machine (see docs/backends.md)."""

from pai_hub.backends.local.backend import LocalBackend
from pai_hub.backends.local.gpus import discover_gpus, simulated_gpus

__all__ = ["LocalBackend", "discover_gpus", "simulated_gpus"]
