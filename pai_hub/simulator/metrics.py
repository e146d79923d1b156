"""Measurements taken during a replay: statistics helpers and the guarantee-violation monitor.

**Guarantee violation** (docs/simulator.md). At every *settled decision point* — a virtual time
at which every event of that instant has been handled and ``schedule`` has been called until
nothing more happens — a VC ``v`` is *in violation* when its *next guaranteed gang* waits although
*v's unused guaranteed quota could hold it* and no preemption is in flight:

- *next guaranteed gang*: among v's waiting gangs with priority >= 0, the first in v's own order
  (higher priority first, then earlier submission, then job id). Gangs behind it wait their turn
  under v's queue policy, which is v's own business, not a broken guarantee.
- *v's unused guaranteed quota could hold it*: take v's guaranteed cells from the cluster config
  as node-sized bins per chain (a node-level cell is one bin; a cell above node level is one bin
  per node in it). On every node where v's guaranteed tasks of priority >= the gang's run, those
  tasks occupy one of v's bins; the bin's free part is the node's GPUs minus theirs. v's other
  bins are wholly free. The gang could be held when (a) its GPUs do not exceed v's quota minus
  what those tasks use, and (b) within one chain (of its SKU, if it names one) its tasks, largest
  first, each fit a free part (first fit decreasing; several tasks may share a bin).
- *no preemption in flight*: no victim chosen by the scheduler is still holding cells.

Under HiveD this is exactly the situation its VC safety rules out (notes/hived.md §2.13), so the
count must be 0; a GPU-count quota scheduler shows violations when the cluster is fragmented
(the "sharing anomaly" of the HiveD paper).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["GuaranteeMonitor", "distribution", "percentile"]


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); ``p`` in 0..100."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * p / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def distribution(values: Sequence[float]) -> dict[str, float]:
    """mean, p50, p95 and max of ``values`` (all 0 when empty), rounded to milliseconds."""
    s = sorted(values)
    if not s:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    return {"mean": round(sum(s) / len(s), 3), "p50": round(percentile(s, 50), 3),
            "p95": round(percentile(s, 95), 3), "max": round(s[-1], 3)}


@dataclass
class _VcState:
    bins: dict[str, list[int]]  # chain -> bin sizes (GPUs), descending
    quota: int
    usage: dict[str, Counter] = field(default_factory=dict)  # node -> priority -> GPUs (guaranteed tasks)
    waiting: list[tuple[int, float, int]] = field(default_factory=list)  # heap (-priority, submitted, job)
    open: tuple[int, float] | None = None  # (job, since) while in violation


class GuaranteeMonitor:
    """Follows guaranteed tasks and waiting guaranteed gangs; counts violations (module doc)."""

    def __init__(self, vc_bins: dict[str, dict[str, list[int]]], node_chain: dict[str, tuple[str, int, str]]) -> None:
        self.node_chain = node_chain  # node -> (chain, GPUs, leaf type)
        self.chain_leaf = {c: t for c, _g, t in node_chain.values()}
        self.vcs = {vc: _VcState({c: sorted(b, reverse=True) for c, b in chains.items()},
                                 sum(sum(b) for b in chains.values()))
                    for vc, chains in vc_bins.items()}
        self.gangs: dict[int, tuple[str, int, tuple[int, ...], str | None]] = {}  # waiting: vc, prio, pods, sku
        self.dirty: set[str] = set()
        self.violating_jobs: set[int] = set()
        self.by_vc_jobs: dict[str, set[int]] = {}
        self.by_vc_seconds: Counter = Counter()
        self.by_vc_points: Counter = Counter()
        self.decision_points = 0

    # -- inputs -------------------------------------------------------------------------------------
    def gang_waiting(self, job: int, vc: str, priority: int, submitted: float, pods: tuple[int, ...],
                     leaf_type: str | None) -> None:
        state = self.vcs.get(vc)
        if priority < 0 or state is None:
            return
        self.gangs[job] = (vc, priority, pods, leaf_type)
        heapq.heappush(state.waiting, (-priority, submitted, job))
        self.dirty.add(vc)

    def gang_placed(self, job: int) -> None:
        entry = self.gangs.pop(job, None)
        if entry is not None:
            self.dirty.add(entry[0])

    def task_started(self, vc: str, priority: int, node: str, gpus: int) -> None:
        state = self.vcs.get(vc)
        if priority >= 0 and state is not None:
            state.usage.setdefault(node, Counter())[priority] += gpus
            self.dirty.add(vc)

    def task_ended(self, vc: str, priority: int, node: str, gpus: int) -> None:
        state = self.vcs.get(vc)
        if priority >= 0 and state is not None and node in state.usage:
            per = state.usage[node]
            per[priority] -= gpus
            if per[priority] <= 0:
                del per[priority]
            if not per:
                del state.usage[node]
            self.dirty.add(vc)

    # -- the check ----------------------------------------------------------------------------------
    def settle(self, now: float, preempting: bool) -> None:
        """Called at every settled decision point."""
        if preempting:
            return
        for vc in sorted(self.dirty):
            state = self.vcs[vc]
            head = self._head(state)
            violated = head is not None and self._fits(state, *self.gangs[head][1:])
            if state.open is not None and (not violated or state.open[0] != head):
                self.by_vc_seconds[vc] += now - state.open[1]
                state.open = None
            if violated and state.open is None and head is not None:
                state.open = (head, now)
                self.violating_jobs.add(head)
                self.by_vc_jobs.setdefault(vc, set()).add(head)
        self.dirty.clear()
        self.decision_points += 1
        for vc, state in self.vcs.items():
            if state.open is not None:
                self.by_vc_points[vc] += 1

    def finish(self, now: float) -> None:
        for vc, state in self.vcs.items():
            if state.open is not None:
                self.by_vc_seconds[vc] += now - state.open[1]
                state.open = None

    def _head(self, state: _VcState) -> int | None:
        while state.waiting and state.waiting[0][2] not in self.gangs:
            heapq.heappop(state.waiting)
        return state.waiting[0][2] if state.waiting else None

    def _fits(self, state: _VcState, priority: int, pods: tuple[int, ...], leaf_type: str | None) -> bool:
        used: dict[str, list[int]] = {}
        total = 0
        for node, per in state.usage.items():
            u = sum(g for p, g in per.items() if p >= priority)
            if u > 0:
                chain, size, _t = self.node_chain[node]
                used.setdefault(chain, []).append(size - u)
                total += u
        if sum(pods) > state.quota - total:
            return False
        for chain, bins in state.bins.items():
            if leaf_type and self.chain_leaf.get(chain) != leaf_type:
                continue
            fragments = used.get(chain, [])
            free = sorted(fragments + bins[len(fragments):], reverse=True)
            if self._pack(sorted(pods, reverse=True), free):
                return True
        return False

    @staticmethod
    def _pack(pods: list[int], free: list[int]) -> bool:
        free = list(free)
        for need in pods:
            for i, room in enumerate(free):
                if room >= need:
                    free[i] = room - need
                    break
            else:
                return False
        return True

    # -- results ------------------------------------------------------------------------------------
    def summary(self, vc: str | None = None) -> dict[str, float]:
        if vc is None:
            return {"gangs": len(self.violating_jobs), "decision_points": sum(self.by_vc_points.values()),
                    "seconds": round(float(sum(self.by_vc_seconds.values())), 3)}
        return {"gangs": len(self.by_vc_jobs.get(vc, ())), "decision_points": self.by_vc_points[vc],
                "seconds": round(float(self.by_vc_seconds[vc]), 3)}
