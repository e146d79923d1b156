"""Job, attempt, task and launch states, and the transitions allowed between them, written once.

FrameworkController's ``types.go`` is the model: each state machine is an enum and a table of the
states it may move to. The state machine changes a state only through :func:`transition`, which
refuses (with :class:`IllegalTransition`) any move not in the table, so a bug shows up where it
happens instead of as a job that went from SUCCEEDED back to RUNNING.

The values are OpenPAI's strings: the enums are ``str`` subclasses, so the store's columns, the
REST API's JSON and comparisons with plain strings stay exactly as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any


class _StrState(str, Enum):
    """A state whose value is what is stored and served (``str()`` and ``format()`` give it)."""

    __str__ = str.__str__
    __format__ = str.__format__


class JobState(_StrState):
    """OpenPAI's job states (notes/openpai.md §3.1)."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"  # served by OpenPAI for a job its controller lost track of; never entered here


class AttemptState(_StrState):
    """One attempt of a job."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class TaskState(_StrState):
    """One attempt of one task, as OpenPAI shows it."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class LaunchState(_StrState):
    """Where a task attempt is in its life on a backend: not placed, started (committed, maybe not
    yet running), seen running, ended."""

    PENDING = "pending"
    LAUNCHING = "launching"
    RUNNING = "running"
    ENDED = "ended"


_J, _A, _T, _L = JobState, AttemptState, TaskState, LaunchState
_JOB_ENDS = frozenset({_J.STOPPED, _J.SUCCEEDED, _J.FAILED})

#: state -> the states it may move to. A job goes back to WAITING when a failed attempt is retried
#: (from WAITING too: preempted before any task ran). Terminal states go nowhere.
JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    _J.WAITING: frozenset({_J.WAITING, _J.RUNNING, _J.STOPPING}) | _JOB_ENDS,
    _J.RUNNING: frozenset({_J.WAITING, _J.STOPPING}) | _JOB_ENDS,
    _J.STOPPING: _JOB_ENDS,
    _J.STOPPED: frozenset(),
    _J.SUCCEEDED: frozenset(),
    _J.FAILED: frozenset(),
    _J.UNKNOWN: frozenset(),
}
ATTEMPT_TRANSITIONS: Mapping[AttemptState, frozenset[AttemptState]] = {
    _A.WAITING: frozenset({_A.RUNNING, _A.STOPPED, _A.SUCCEEDED, _A.FAILED}),
    _A.RUNNING: frozenset({_A.STOPPED, _A.SUCCEEDED, _A.FAILED}),
    _A.STOPPED: frozenset(),
    _A.SUCCEEDED: frozenset(),
    _A.FAILED: frozenset(),
}
TASK_TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = {
    # a task may end without having been seen running (it exited before the backend reported it)
    _T.WAITING: frozenset({_T.RUNNING, _T.STOPPED, _T.SUCCEEDED, _T.FAILED}),
    _T.RUNNING: frozenset({_T.STOPPED, _T.SUCCEEDED, _T.FAILED}),
    _T.STOPPED: frozenset(),
    _T.SUCCEEDED: frozenset(),
    _T.FAILED: frozenset(),
}
LAUNCH_TRANSITIONS: Mapping[LaunchState, frozenset[LaunchState]] = {
    _L.PENDING: frozenset({_L.LAUNCHING, _L.ENDED}),
    # LAUNCHING -> RUNNING also when a committed start was lost and is made once more (never twice)
    _L.LAUNCHING: frozenset({_L.RUNNING, _L.ENDED}),
    _L.RUNNING: frozenset({_L.ENDED}),
    _L.ENDED: frozenset(),
}
_TABLES: dict[type, tuple[str, Mapping[Any, frozenset[Any]]]] = {
    JobState: ("state", JOB_TRANSITIONS),
    AttemptState: ("state", ATTEMPT_TRANSITIONS),
    TaskState: ("state", TASK_TRANSITIONS),
    LaunchState: ("launch_state", LAUNCH_TRANSITIONS),
}

TERMINAL_JOB_STATES = _JOB_ENDS


class IllegalTransition(RuntimeError):
    """A state change the transition table does not allow: a bug in the state machine."""

    def __init__(self, record: Any, current: str, to: str) -> None:
        name = getattr(record, "framework_name", None) or getattr(record, "task_id", None) or record
        super().__init__(f"{type(to).__name__}: {name} cannot go from {current} to {to}")
        self.record, self.current, self.to = record, current, to


def transition(record: Any, to: JobState | AttemptState | TaskState | LaunchState) -> None:
    """Move ``record`` (a job, attempt or task record) to ``to``; ``LaunchState`` sets a task's
    ``launch_state``, the others its ``state``. Raises :class:`IllegalTransition` when the table
    does not allow it."""
    attr, table = _TABLES[type(to)]
    current = getattr(record, attr)
    allowed = table.get(current)
    if allowed is None or to not in allowed:
        raise IllegalTransition(record, current, to)
    setattr(record, attr, to)
