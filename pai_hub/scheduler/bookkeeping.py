"""What the simple schedulers share: the plain gang placer (gang.py) and the simulator's quota-FIFO
baseline (pai_hub/simulator/baseline.py) both hold whole placements, one per gang, and one reason
per waiting gang; they differ only in how they decide, and in what a placement takes from a node.

HiveD (hived/) keeps its own books in cells and is not one of them.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any

from .base import GangRequest, NodeStatus, Placement, PodPlacement, Scheduler, SkuUse


class BookkeepingScheduler(Scheduler):
    """Waiting gangs, placed gangs with their placements, and the waiting gangs' reasons.

    A subclass says what a placement takes from its nodes (:meth:`_take`) and gives back
    (:meth:`_give_back`), and which nodes are unhealthy; binding, releasing, the reasons and the
    snapshot are the same for every such scheduler."""

    def __init__(self) -> None:
        self._waiting: dict[str, GangRequest] = {}
        self._placed: dict[str, tuple[GangRequest, Placement]] = {}
        self._reasons: dict[str, str] = {}

    @abc.abstractmethod
    def _take(self, gang: GangRequest, placement: Placement) -> None:
        """Count what ``placement`` of ``gang`` holds as used."""

    @abc.abstractmethod
    def _give_back(self, gang: GangRequest, placement: Placement) -> None:
        """Free what ``placement`` of ``gang`` held (the gang ended or was stopped)."""

    @abc.abstractmethod
    def _unhealthy_nodes(self) -> list[str]:
        """The nodes marked unhealthy, in the scheduler's node order (for the snapshot)."""

    def release(self, gang_id: str) -> None:
        entry = self._placed.pop(gang_id, None)
        if entry is None:
            self.cancel(gang_id)
            return
        self._give_back(*entry)

    def bind(self, placement: Placement, gang: GangRequest | None = None) -> None:
        gang = gang or self._waiting.get(placement.gang_id)
        if gang is None:
            raise KeyError(placement.gang_id)
        self._waiting.pop(gang.gang_id, None)
        self._reasons.pop(gang.gang_id, None)
        self._take(gang, placement)
        self._placed[gang.gang_id] = (gang, placement)

    def waiting_reason(self, gang_id: str) -> str | None:
        return self._reasons.get(gang_id)

    def snapshot(self) -> dict[str, Any]:
        return {
            "placed": [
                {"gang_id": g, "pods": [[p.role, p.index, p.node, list(p.gpus)] for p in pl.pods]}
                for g, (_req, pl) in self._placed.items()
            ],
            "unhealthy": self._unhealthy_nodes(),
        }


def placement_in_task_order(gang_id: str, pods: list[PodPlacement]) -> Placement:
    """A placement with its tasks sorted by (role, index), whatever order they were fitted in."""
    pods.sort(key=lambda p: (p.role, p.index))
    return Placement(gang_id, tuple(pods))


def tally_nodes(per_node: Iterable[tuple[str, bool, dict[str, SkuUse]]]) -> tuple[dict[str, NodeStatus], dict[str, SkuUse]]:
    """The ``nodes`` and ``skus`` of a :class:`ClusterStatus` from each node's (name, healthy, use
    per SKU as capacity, used and free): an unhealthy node's free units are counted as ``bad``."""
    nodes: dict[str, NodeStatus] = {}
    totals: dict[str, SkuUse] = {}
    for name, healthy, use in per_node:
        nodes[name] = {"healthy": healthy, "skus": {s: {**u, "opportunistic": 0} for s, u in use.items()}}
        for sku, u in use.items():
            t = totals.setdefault(sku, {"capacity": 0, "used": 0, "free": 0, "bad": 0})
            t["capacity"] += u["capacity"]
            t["used"] += u["used"]
            t["free" if healthy else "bad"] += u["free"]
    return nodes, totals

