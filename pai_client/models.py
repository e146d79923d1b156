"""Typed views of the REST API's answers, for the magics and widgets.

The REST API answers OpenPAI's JSON (``JobDetail``, events); these dataclasses pick out what a
person looks at — state, tasks and their GPUs, why a job waits, why it failed and how to fix it —
so that the widgets, the magics and user code read one shape. ``raw`` keeps the whole answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

END_STATES = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass(frozen=True)
class TaskInfo:
    role: str
    index: int
    state: str
    node: str | None = None
    gpus: str | None = None  # GPU indices, e.g. "0,1"
    exit_code: int | None = None
    sub_state: str | None = None  # "DEBUGGING" while kept for debugging
    debug_until: float | None = None  # ms since the epoch
    log_path: str | None = None  # the log-locations route of the task's current attempt

    @property
    def gpu_list(self) -> list[str]:
        return [g for g in (self.gpus or "").split(",") if g != ""]


@dataclass(frozen=True)
class ExitSpec:
    """The failure analysis of a job (``appExitSpec``) or task (``containerExitSpec``)."""

    code: int | None
    phrase: str
    type: str
    behavior: str
    reason: str
    solution: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, spec: dict[str, Any] | None) -> ExitSpec | None:
        if not spec:
            return None
        solution = spec.get("solution") or []
        return cls(code=spec.get("code"), phrase=str(spec.get("phrase") or ""), type=str(spec.get("type") or ""),
                   behavior=str(spec.get("behavior") or ""), reason=str(spec.get("reason") or ""),
                   solution=[str(s) for s in (solution if isinstance(solution, list) else [solution])])


@dataclass(frozen=True)
class JobSnapshot:
    """One look at a job (from ``GET /api/v2/jobs/{user}~{name}``)."""

    framework: str
    state: str
    virtual_cluster: str | None
    tasks: list[TaskInfo]
    retries: int = 0
    waiting_reason: str | None = None
    exit_code: int | None = None
    exit_diagnostics: str | None = None
    exit_spec: ExitSpec | None = None
    debug_until: float | None = None  # ms since the epoch, while tasks are kept for debugging
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ended(self) -> bool:
        return self.state in END_STATES

    @property
    def gpus(self) -> list[str]:
        """Every GPU the job's tasks hold (``node:index``)."""
        return [f"{t.node or '-'}:{g}" for t in self.tasks for g in t.gpu_list]

    @property
    def debugging(self) -> list[TaskInfo]:
        return [t for t in self.tasks if t.sub_state == "DEBUGGING"]

    @classmethod
    def from_detail(cls, detail: dict[str, Any], framework: str | None = None) -> JobSnapshot:
        status = detail.get("jobStatus") or {}
        tasks: list[TaskInfo] = []
        for entry in (detail.get("taskRoles") or {}).values():
            role = (entry.get("taskRoleStatus") or {}).get("name", "?")
            for t in entry.get("taskStatuses") or []:
                tasks.append(TaskInfo(
                    role=role, index=int(t.get("taskIndex", 0)), state=str(t.get("taskState") or "?"),
                    node=t.get("containerNodeName"), gpus=t.get("containerGpus"),
                    exit_code=t.get("containerExitCode"), sub_state=t.get("subState"),
                    debug_until=t.get("debugUntil"), log_path=t.get("containerLog")))
        debug = status.get("debugReservation") or None
        name = framework or detail.get("name") or "?"
        return cls(
            framework=name, state=str(status.get("state") or "UNKNOWN"),
            virtual_cluster=status.get("virtualCluster"), tasks=tasks, retries=int(status.get("retries") or 0),
            waiting_reason=status.get("waitingReason") or None, exit_code=status.get("appExitCode"),
            exit_diagnostics=status.get("appExitDiagnostics") or None,
            exit_spec=ExitSpec.from_json(status.get("appExitSpec")),
            debug_until=debug.get("until") if isinstance(debug, dict) else None, raw=detail)


@dataclass(frozen=True)
class JobPage:
    """One page of a job list (``GET /api/v2/jobs?offset=&limit=&withTotalCount=true``): the jobs
    (OpenPAI summaries), where the page starts, its size and how many jobs match in all. Every
    front door pages with it, so none loads the whole history."""

    jobs: list[dict[str, Any]]
    total: int
    offset: int
    limit: int

    @classmethod
    def from_json(cls, answer: dict[str, Any], offset: int, limit: int) -> JobPage:
        return cls(jobs=list(answer.get("data") or []), total=int(answer.get("totalCount") or 0), offset=offset,
                   limit=limit)

    @property
    def next_offset(self) -> int | None:
        """Where the next page starts; None on the last page."""
        end = self.offset + len(self.jobs)
        return end if self.jobs and end < self.total else None

    @property
    def previous_offset(self) -> int | None:
        """Where the previous page starts; None on the first page."""
        return max(0, self.offset - self.limit) if self.offset > 0 else None

    @property
    def label(self) -> str:
        """``1–50 of 120``."""
        if not self.jobs:
            return f"0 of {self.total}"
        return f"{self.offset + 1}–{self.offset + len(self.jobs)} of {self.total}"
