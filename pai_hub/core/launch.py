"""What the state machine asks a backend to start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskLaunch:
    """Everything a backend needs to start one attempt of one task.

    ``task_id`` is unique per task attempt and is the key of every later call. ``spec`` is the
    runtime's task spec (see :mod:`pai_runtime.spec`), JSON-serialisable; the backend passes it to
    the runtime untouched, adding only what it alone knows (host IP, ports).
    """

    task_id: str
    node: str
    gpus: tuple[int, ...]
    spec: dict[str, Any]
