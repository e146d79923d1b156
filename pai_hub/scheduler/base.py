"""The scheduler contract (ARCHITECTURE.md §5): what the orchestrator asks, what it gets back."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PodRequest:
    """One task of a gang: its identity within the job and what it needs."""

    role: str
    index: int
    cpu: int
    memory_mb: int
    gpu: int


@dataclass(frozen=True)
class GangRequest:
    """A set of pods placed all together or not at all."""

    gang_id: str
    virtual_cluster: str
    priority: int
    pods: tuple[PodRequest, ...]
    submitted_at: float = 0.0


@dataclass(frozen=True)
class PodPlacement:
    role: str
    index: int
    node: str
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class Placement:
    gang_id: str
    pods: tuple[PodPlacement, ...]


@dataclass
class Decisions:
    """The outcome of one ``schedule`` call."""

    placements: list[Placement] = field(default_factory=list)
    preemptions: list[str] = field(default_factory=list)
    waiting_reasons: dict[str, str] = field(default_factory=dict)


class Scheduler(abc.ABC):
    """Decides where gangs run. Implementations hold no I/O and no clock of their own."""

    @abc.abstractmethod
    def submit(self, gang: GangRequest) -> None: ...

    @abc.abstractmethod
    def cancel(self, gang_id: str) -> None:
        """Forget a waiting gang (a placed one is freed with ``release``)."""

    @abc.abstractmethod
    def schedule(self, now: float) -> Decisions: ...

    @abc.abstractmethod
    def release(self, gang_id: str) -> None:
        """Free everything a placed gang holds."""

    @abc.abstractmethod
    def bind(self, placement: Placement) -> None:
        """Record a placement made before a restart (from the store), without re-deciding it."""

    @abc.abstractmethod
    def set_health(self, node: str, healthy: bool) -> None: ...

    @abc.abstractmethod
    def snapshot(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def restore(self, snapshot: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def waiting_reason(self, gang_id: str) -> str | None: ...
