"""The backend contract: how the orchestrator starts, stops, observes and re-adopts tasks.

The orchestrator never touches processes, pods or batch jobs itself. It hands a backend a
:class:`TaskLaunch` (what to run, where, with which GPUs) and reads :class:`TaskExit` records
back from :meth:`Backend.events`. Backends must keep tasks running when the control plane dies
and report, through :meth:`Backend.adopt`, what happened while it was away.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# Shared with the pure core, which must not import backends; re-exported for backend code.
from ..core import GpuInfo, NodeInfo, TaskLaunch

if TYPE_CHECKING:
    from terminado.management import PtyWithClients

__all__ = ["Backend", "GpuInfo", "NodeInfo", "TaskEvent", "TaskExit", "TaskLaunch", "TaskRunning"]


@dataclass(frozen=True)
class TaskExit:
    """A task attempt that has ended: its exit code and when it started and ended (epoch seconds)."""

    task_id: str
    exit_code: int
    started_at: float | None
    finished_at: float
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskRunning:
    """A task attempt the backend found alive (on adoption) or saw start."""

    task_id: str
    started_at: float | None


TaskEvent = TaskRunning | TaskExit


class Backend(abc.ABC):
    """A place where tasks run. Lifecycle: ``await open()``, then calls, then ``await close()``.

    ``close`` must leave running tasks running: a restarted control plane adopts them.
    """

    name: str = "abstract"
    #: Whether tasks run in their role's ``dockerImage``. False: the image is recorded, the job detail
    #: says it was not applied, and a submission gets a warning (pai_hub/api/images.py).
    applies_images: bool = False

    @abc.abstractmethod
    async def open(self) -> None:
        """Prepare to launch and to receive task events."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop listening. Running tasks keep running."""

    @abc.abstractmethod
    def nodes(self) -> list[NodeInfo]:
        """The nodes and GPUs this backend can place tasks on."""

    @abc.abstractmethod
    async def start(self, launch: TaskLaunch) -> None:
        """Start one task attempt. Returns once it is launched; the exit comes through events()."""

    @abc.abstractmethod
    async def stop(self, task_id: str, grace: float = 10.0) -> None:
        """Ask a task to end (SIGTERM-like), forcing it after ``grace`` seconds. Idempotent."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[TaskEvent]:
        """Task transitions, as they happen. One consumer."""

    @abc.abstractmethod
    async def adopt(self, known_task_ids: list[str]) -> list[TaskEvent]:
        """After a restart: the state of each known task (running, or exited meanwhile).

        Tasks the backend has no trace of are reported as ``TaskExit`` with exit code
        ``EXIT_TASK_LOST`` (-1101, :mod:`pai_runtime.exitcodes`) so the orchestrator can retry them.
        """

    def exec_shell(self, task_id: str) -> PtyWithClients:
        """An interactive shell with the task's working directory, environment and GPUs (for
        debugging a failed task kept by its debug reservation, or a running one), as a terminado
        terminal: the hub's terminal websocket reads, writes and resizes its ``ptyproc`` and ends it
        with ``killpg``. Raises KeyError when the task has no shell to open."""
        raise NotImplementedError(f"the {self.name} backend cannot open shells")

    @abc.abstractmethod
    def log_names(self, task_id: str) -> list[str]:
        """Names of the log files of a task attempt (``stdout``, ``stderr``, ``all``, ``runtime.log``)."""

    @abc.abstractmethod
    def read_log(self, task_id: str, name: str, offset: int = 0, limit: int | None = None) -> bytes:
        """Bytes of one log of a task attempt, from ``offset``. Raises KeyError if unknown."""
