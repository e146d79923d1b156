"""The Slurm backend: task attempts as Slurm batch jobs (docs/slurm.md).

``SlurmBackend`` is imported on first use: the job script (``jobscript.py``) runs once per task on the
nodes and must not pay for the backend's imports (asyncio and the rest, about 70 ms).
"""

__all__ = ["SlurmBackend", "parse_gres_gpus"]


def __getattr__(name: str):  # no annotation for the result: typing is not imported here (see above)
    if name in __all__:
        from pai_hub.backends.slurm import backend

        return getattr(backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
