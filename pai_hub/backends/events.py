"""The event side every backend shares: which tasks are live, and the one queue behind ``events()``.

A backend reports a task's end exactly once: :meth:`TaskEvents._emit_exit` takes the task out of the
live set as it queues the exit, so a second report of the same end (a datagram and a poll, a watch
event and a re-list) finds it gone and is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from pai_hub.backends.base import TaskEvent, TaskExit
from pai_runtime.exitcodes import EXIT_TASK_LOST


def exit_event(task_id: str, record: dict[str, Any]) -> TaskExit:
    """The :class:`TaskExit` an exit record (``exit.json``'s shape) describes."""
    return TaskExit(task_id, int(record.get("exitCode", EXIT_TASK_LOST)), record.get("startedAt"),
                    record.get("finishedAt") or time.time(), record)


def lost_record(reason: str, **extra: Any) -> dict[str, Any]:
    """The exit record of a task the backend has no (complete) trace of: retried as a platform failure.
    The reason is also the task's diagnostics, so users see why (``containerExitDiagnostics``)."""
    return {"exitCode": EXIT_TASK_LOST, "finishedAt": time.time(), "reason": reason, "diagnostics": reason,
            **extra}


class TaskEvents:
    """Live task ids and the queue of task events, for one consumer of ``events()``."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[TaskEvent | None] = asyncio.Queue()
        self._live: set[str] = set()  # started or adopted, and not yet reported ended

    def _forget(self, task_id: str) -> None:
        """The task has ended: drop what is kept about it (subclasses drop their own state too)."""
        self._live.discard(task_id)

    def _ended(self, task_id: str, record: dict[str, Any]) -> TaskExit:
        """Forget the task and return its exit event (for adopt(), which returns events)."""
        self._forget(task_id)
        return exit_event(task_id, record)

    def _emit_exit(self, task_id: str, record: dict[str, Any]) -> None:
        """Queue the exit of a live task; an exit already reported (or of an unknown task) is dropped."""
        if task_id in self._live:
            self._queue.put_nowait(self._ended(task_id, record))

    def _end_events(self) -> None:
        """End the ``events()`` iteration (on close)."""
        self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[TaskEvent]:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            yield event
