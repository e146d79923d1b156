"""The scheduler contract (ARCHITECTURE.md §5): what the orchestrator asks, what it gets back."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, TypedDict


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
    """A set of pods placed all together or not at all (HiveD's affinity group).

    ``priority`` follows HiveD: -1 is opportunistic (may use any VC's idle cells, preemptible by
    anyone), 0 and above is guaranteed within the VC's quota (higher preempts lower in the VC).
    ``leaf_cell_type`` is the SKU (HiveD's leafCellType; None = any), ``pinned_cell_id`` restricts
    the gang to one pinned cell of its VC, and ``lazy_preemption`` lets HiveD downgrade the gang to
    opportunistic instead of killing it when its cells are wanted.
    """

    gang_id: str
    virtual_cluster: str
    priority: int
    pods: tuple[PodRequest, ...]
    submitted_at: float = 0.0
    leaf_cell_type: str | None = None
    pinned_cell_id: str | None = None
    lazy_preemption: bool = False


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
    """The outcome of one ``schedule`` call.

    ``preemptions`` are gangs the orchestrator must stop (and requeue) so that waiting gangs can
    be placed; their cells stay reserved for the preemptor until ``release`` is called for them.
    ``lazy_preempted`` gangs keep running, downgraded to opportunistic. ``waiting_reasons`` hold a
    sentence a researcher understands for each waiting gang whose reason changed since the previous
    call (a queue of thousands must not be walked every turn); ``waiting_reason(gang_id)`` tells the
    current one at any time.
    """

    placements: list[Placement] = field(default_factory=list)
    preemptions: list[str] = field(default_factory=list)
    lazy_preempted: list[str] = field(default_factory=list)
    waiting_reasons: dict[str, str] = field(default_factory=dict)


SkuUse = dict[str, int]
"""Leaf cells of one SKU: ``capacity``, ``used``, ``free`` (and, where they apply, ``bad``,
``opportunistic``)."""

VcStatus = dict[str, Any]
"""One VC: ``{sku: SkuUse, ..., "nodes": {node: {sku: SkuUse}}}`` (docs/scheduler.md)."""


class NodeStatus(TypedDict):
    healthy: bool
    skus: dict[str, SkuUse]


class ClusterStatus(TypedDict):
    """The whole cluster as the scheduler sees it: per node, per SKU and per VC."""

    nodes: dict[str, NodeStatus]
    skus: dict[str, SkuUse]
    vcs: dict[str, dict[str, SkuUse]]


class SchedulerInvariantError(RuntimeError):
    """The scheduler's own bookkeeping contradicts itself (a cell freed twice, a placement on a
    busy cell): a bug, raised where it happens instead of corrupting later decisions. A named error,
    not ``assert``, so that ``python -O`` keeps the check."""


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
    def bind(self, placement: Placement, gang: GangRequest | None = None) -> None:
        """Record a placement made before a restart (from the store), without re-deciding it.
        ``gang`` is the request it satisfies (needed when it was not submitted in this process)."""

    @abc.abstractmethod
    def set_health(self, node: str, healthy: bool) -> None: ...

    @abc.abstractmethod
    def snapshot(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def restore(self, snapshot: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def waiting_reason(self, gang_id: str) -> str | None: ...

    # -- what the rest of the platform reads (through the controller's read model) ---------------
    def validate(self, gang: GangRequest) -> str | None:
        """Why ``gang`` could never be placed as written (refused with a 400 at submission), or
        None. The default refuses nothing: such a gang waits, with its reason."""
        return None

    def leaf_cells(self, gang: GangRequest, pod: PodRequest) -> int:
        """Leaf cells one task of ``gang`` takes (the unit of quotas and capacity). Default: its GPUs."""
        return pod.gpu

    @abc.abstractmethod
    def vc_status(self, vc: str) -> VcStatus:
        """Capacity, use and free leaf cells of one VC per SKU. Raises KeyError for an unknown VC."""

    @abc.abstractmethod
    def cluster_status(self) -> ClusterStatus:
        """Every node (healthy or not, its use per SKU), the totals per SKU and per VC."""
