"""Logs read from a task attempt's directory, for backends whose tasks write them to a filesystem
the control plane sees (the local backend; Slurm with a shared run root)."""

from __future__ import annotations

import os

from pai_runtime.supervisor import LOG_NAMES


class TaskDirLogs:
    """``log_names`` and ``read_log`` over ``stdout``, ``stderr``, ``all`` and ``runtime.log``."""

    def _log_dir(self, task_id: str) -> str:  # the backend knows where a task's directory is
        raise NotImplementedError

    def log_names(self, task_id: str) -> list[str]:
        """Every log of a started task (a log with no output yet reads empty)."""
        log_dir = self._log_dir(task_id)
        if not os.path.exists(f"{log_dir}/runtime.log"):
            return []
        return list(LOG_NAMES)

    def read_log(self, task_id: str, name: str, offset: int = 0, limit: int | None = None) -> bytes:
        if name not in LOG_NAMES:
            raise KeyError(name)
        log_dir = self._log_dir(task_id)
        try:
            with open(f"{log_dir}/{name}", "rb") as f:
                if offset:
                    f.seek(offset)
                return f.read(-1 if limit is None else limit)
        except FileNotFoundError:
            return b""
