"""What one turn of the state machine decided: rows to write, events to append, tasks to start or stop.

A domain module of its own so that the store (which persists it) and the machine (which fills
it) both depend on it, and the store never imports the machine (ARCHITECTURE.md §10).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.launch import TaskLaunch
from .records import EventRecord, JobAttemptRecord, JobRecord, TaskRecord


@dataclass
class Effects:
    """What one turn of the loop must persist, then do."""

    new_jobs: list[JobRecord] = field(default_factory=list)
    jobs: dict[int, JobRecord] = field(default_factory=dict)
    attempts: dict[tuple[int, int], JobAttemptRecord] = field(default_factory=dict)
    new_tasks: dict[str, TaskRecord] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    events: list[EventRecord] = field(default_factory=list)
    starts: list[TaskLaunch] = field(default_factory=list)
    stops: list[tuple[str, float]] = field(default_factory=list)
    #: The keys of ``attempts`` created in this turn (the rest exist in the store), when the producer
    #: knows them, as the machine does; None: the store looks up which exist (one query per turn).
    new_attempts: set[tuple[int, int]] | None = None

    def __bool__(self) -> bool:
        return bool(
            self.new_jobs or self.jobs or self.attempts or self.new_tasks or self.tasks or self.events
            or self.starts or self.stops
        )
