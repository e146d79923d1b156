"""In-memory mirrors of the store's rows, mutated only by the state machine.

Field names are the store's column names, so persisting a record is reading its fields and nothing more.
States are the enums of :mod:`.states` (plain strings read back from the store are turned into
them), changed only through :func:`.states.transition`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The exit codes the platform itself assigns (OpenPAI's numbering): one table, the runtime's.
from pai_runtime.exitcodes import (  # noqa: F401 (re-exported: the core imports them from here)
    EXIT_ATTEMPT_COMPLETED,
    EXIT_PREEMPTED,
    EXIT_START_FAILED,
    EXIT_STOP_REQUESTED,
    EXIT_TASK_LOST,
)

from .states import TERMINAL_JOB_STATES, AttemptState, JobState, LaunchState, TaskState

# OpenPAI's job states (notes/openpai.md §3.1), by the names callers have always imported.
WAITING, RUNNING, STOPPING, STOPPED, SUCCEEDED, FAILED, UNKNOWN = (
    JobState.WAITING,
    JobState.RUNNING,
    JobState.STOPPING,
    JobState.STOPPED,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.UNKNOWN,
)
TERMINAL = TERMINAL_JOB_STATES


@dataclass
class JobRecord:
    id: int
    framework_name: str
    username: str
    name: str
    virtual_cluster: str
    state: JobState
    config_yaml: str
    protocol: dict[str, Any]
    secrets: dict[str, Any]
    submitted_at: float
    sub_state: str = "AttemptCreationPending"
    execution_type: str = "START"
    priority: int = 0
    job_priority: str | None = None
    tags: list[str] = field(default_factory=list)
    attempt_id: int = 0
    retries_user: int = 0
    retries_platform: int = 0
    total_gpu: int = 0
    total_tasks: int = 0
    total_task_roles: int = 0
    launched_at: float | None = None
    completed_at: float | None = None
    exit_code: int | None = None
    exit_diagnostics: str | None = None
    exit_trigger: dict[str, Any] | None = None
    waiting_reason: str | None = None
    exit_info: dict[str, Any] | None = None  # the trigger task's failure analysis (OpenPAI's exit spec)

    def __post_init__(self) -> None:
        self.state = JobState(self.state)

    @property
    def retries(self) -> int:
        return self.retries_user + self.retries_platform


@dataclass
class JobAttemptRecord:
    job_id: int
    attempt_id: int
    state: AttemptState
    created_at: float
    launched_at: float | None = None
    completed_at: float | None = None
    exit_code: int | None = None

    def __post_init__(self) -> None:
        self.state = AttemptState(self.state)


@dataclass
class TaskRecord:
    """One attempt of one task. ``launch_state``: pending → launching → running → ended."""

    task_id: str
    job_id: int
    job_attempt_id: int
    role: str
    task_index: int
    attempt_id: int
    task_uid: str
    state: TaskState
    created_at: float
    launch_state: LaunchState = LaunchState.PENDING
    retries: int = 0
    accountable_retries: int = 0
    node: str | None = None
    ip: str | None = None
    gpus: list[int] = field(default_factory=list)
    ports: dict[str, list[int]] = field(default_factory=dict)
    launched_at: float | None = None
    completed_at: float | None = None
    exit_code: int | None = None
    exit_diagnostics: str | None = None
    exit_info: dict[str, Any] | None = None  # failure analysis from the runtime (OpenPAI's exit spec)
    debug_until: float | None = None  # a failed task kept for debugging until then (sub-state DEBUGGING)

    def __post_init__(self) -> None:
        self.state = TaskState(self.state)
        self.launch_state = LaunchState(self.launch_state)


@dataclass
class EventRecord:
    job_id: int
    reason: str
    message: str
    timestamp: float
    task_id: str | None = None
    type: str = "Normal"
    id: int = 0  # assigned by the machine, in commit order
