"""The quota-FIFO baseline: what a GPU-count quota scheduler (YARN capacity-scheduler style) does.

Rules (docs/simulator.md, "Baseline"):
- Each VC owns a quota of GPUs (the sum of its guaranteed cells in the HiveD config). A VC's
  running gangs never hold more than its quota: no borrowing of idle quota of other VCs, and the
  opportunistic priority (-1) gets no special treatment — it is queued within its VC's quota too.
- Each VC has one queue, ordered by priority (higher first), then submission time, then arrival.
  The queue is strictly FIFO: when the head does not fit, nothing behind it in that VC is placed
  (no backfill). A gang that can never run (more GPUs than its VC's quota, a task larger than
  every node, an unknown VC or SKU) is set aside with a reason and does not block its queue.
- Physical placement is shared by all VCs: a gang is placed all-or-nothing, each task on one node,
  best fit (the node with the fewest free GPUs that still fits, then the lowest node index), so the
  cluster fragments the way a quota scheduler's does. No preemption.
CPUs and memory are not scheduled (as in HiveD); only GPUs.

``Decisions.waiting_reasons`` carries the reasons that changed since the previous ``schedule``
call (the machine keeps the last reason of every job, so it sees the same thing); a full dict per
call would cost O(waiting gangs) per decision in long replays. ``waiting_reason(gang_id)``
answers for any waiting gang.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from ..scheduler.base import ClusterStatus, Decisions, GangRequest, Placement, PodPlacement, VcStatus
from ..scheduler.bookkeeping import BookkeepingScheduler, placement_in_task_order, tally_nodes

__all__ = ["QuotaFifoScheduler"]


@dataclass
class _Node:
    name: str
    leaf_type: str
    gpus: int
    free: list[int]  # free GPU indices, ascending
    healthy: bool = True


class QuotaFifoScheduler(BookkeepingScheduler):
    """``nodes``: ``(name, gpu count, leaf type)``; ``quotas``: VC -> GPUs."""

    def __init__(self, nodes: list[tuple[str, int, str]], quotas: dict[str, int]) -> None:
        super().__init__()
        self._nodes = [_Node(n, t, g, list(range(g))) for n, g, t in nodes]
        self._index = {n.name: i for i, n in enumerate(self._nodes)}
        self.quotas = dict(quotas)
        self.used = dict.fromkeys(quotas, 0)
        self._types = sorted({n.leaf_type for n in self._nodes})
        self._max_gpus = {t: max(n.gpus for n in self._nodes if n.leaf_type == t) for t in self._types}
        # best-fit index: (leaf type, free GPUs) -> heap of node indices (lazy: entries may be stale)
        self._buckets: dict[tuple[str, int], list[int]] = {}
        for i in range(len(self._nodes)):
            self._push(i)
        self._queues: dict[str, list[tuple[int, float, int, str]]] = {}
        self._seq = 0
        self._changed: set[str] = set()
        self._dirty: set[str] = set()

    @classmethod
    def from_cluster(cls, cluster: Any) -> QuotaFifoScheduler:
        """From a :class:`~.cluster.ClusterModel` (nodes and VC quotas of a HiveD config)."""
        return cls([(n.name, n.gpus, n.leaf_type) for n in cluster.nodes], cluster.quotas)

    # -- free-GPU index -----------------------------------------------------------------------------
    def _push(self, i: int) -> None:
        n = self._nodes[i]
        if n.healthy and n.free:
            heapq.heappush(self._buckets.setdefault((n.leaf_type, len(n.free)), []), i)

    def _best_fit(self, gpus: int, leaf_type: str | None, exclude: dict[int, int]) -> int | None:
        """The node with the fewest free GPUs >= ``gpus`` (``exclude``: GPUs tentatively taken)."""
        best: tuple[int, int] | None = None
        for t in (leaf_type,) if leaf_type else self._types:
            for free in range(gpus, self._max_gpus.get(t, 0) + 1):
                if best is not None and free > best[0]:
                    break
                heap = self._buckets.get((t, free))
                if not heap:
                    continue
                while heap and (len(self._nodes[heap[0]].free) != free or not self._nodes[heap[0]].healthy):
                    heapq.heappop(heap)  # stale entry
                for i in (heap[0:1] if heap and heap[0] not in exclude else sorted(heap)):
                    if len(self._nodes[i].free) - exclude.get(i, 0) >= gpus:
                        have = len(self._nodes[i].free) - exclude.get(i, 0)
                        if best is None or (have, i) < best:
                            best = (have, i)
                        break
        return None if best is None else best[1]

    # -- contract -----------------------------------------------------------------------------------
    def submit(self, gang: GangRequest) -> None:
        self._seq += 1
        self._waiting[gang.gang_id] = gang
        heapq.heappush(self._queues.setdefault(gang.virtual_cluster, []),
                       (-gang.priority, gang.submitted_at, self._seq, gang.gang_id))
        self._reason(gang.gang_id, f"waiting in VC {gang.virtual_cluster}'s queue")
        self._dirty.add(gang.virtual_cluster)

    def cancel(self, gang_id: str) -> None:
        gang = self._waiting.pop(gang_id, None)
        if gang is not None:
            self._reasons.pop(gang_id, None)
            self._dirty.add(gang.virtual_cluster)  # its queue entry is dropped lazily

    def _give_back(self, gang: GangRequest, placement: Placement) -> None:
        for pod in placement.pods:
            i = self._index.get(pod.node)
            if i is None:
                continue
            node = self._nodes[i]
            node.free = sorted(set(node.free) | set(pod.gpus))
            self._push(i)
        if gang.virtual_cluster in self.used:
            self.used[gang.virtual_cluster] -= sum(p.gpu for p in gang.pods)
        self._dirty.update(self._queues)  # freed GPUs may unblock any VC's head

    def _take(self, gang: GangRequest, placement: Placement) -> None:
        for pod in placement.pods:
            i = self._index[pod.node]
            node = self._nodes[i]
            taken = set(pod.gpus)
            node.free = [g for g in node.free if g not in taken]
            self._push(i)
        self.used[gang.virtual_cluster] = self.used.get(gang.virtual_cluster, 0) + sum(p.gpu for p in gang.pods)

    def set_health(self, node: str, healthy: bool) -> None:
        i = self._index[node]
        self._nodes[i].healthy = healthy
        self._push(i)
        self._dirty.update(self._queues)

    def _unhealthy_nodes(self) -> list[str]:
        return [n.name for n in self._nodes if not n.healthy]

    def restore(self, snapshot: dict[str, Any]) -> None:
        for name in snapshot.get("unhealthy", []):
            if name in self._index:
                self.set_health(name, False)

    def validate(self, gang: GangRequest) -> str | None:
        return self._never(gang)

    def cluster_status(self) -> ClusterStatus:
        """Per node and per GPU type; a VC's use is counted against its quota, of no GPU type."""
        nodes, skus = tally_nodes(
            (n.name, n.healthy, {n.leaf_type: {"capacity": n.gpus, "used": n.gpus - len(n.free), "free": len(n.free)}})
            for n in self._nodes)
        vcs = {vc: {"gpu": {"capacity": q, "used": self.used.get(vc, 0), "free": q - self.used.get(vc, 0)}}
               for vc, q in self.quotas.items()}
        return {"nodes": nodes, "skus": skus, "vcs": vcs}

    def vc_status(self, vc: str) -> VcStatus:
        quota, used = self.quotas[vc], self.used.get(vc, 0)
        return {"gpu": {"capacity": quota, "used": used, "free": quota - used, "bad": 0, "opportunistic": 0},
                "nodes": {}}

    def schedule(self, now: float) -> Decisions:
        decisions = Decisions()
        for vc in sorted(self._dirty):
            queue = self._queues.get(vc, [])
            while queue:
                gang_id = queue[0][3]
                gang = self._waiting.get(gang_id)
                if gang is None:
                    heapq.heappop(queue)  # cancelled, or placed through bind()
                    continue
                never = self._never(gang)
                if never:
                    heapq.heappop(queue)  # set aside: stays waiting, never blocks the queue
                    self._reason(gang_id, never)
                    continue
                need = sum(p.gpu for p in gang.pods)
                quota, used = self.quotas[vc], self.used.get(vc, 0)
                if used + need > quota:
                    self._reason(gang_id, f"waiting for quota: VC {vc} uses {used} of its {quota} GPUs, "
                                          f"the job needs {need}")
                    break
                placement = self._fit(gang)
                if placement is None:
                    self._reason(gang_id, f"VC {vc} has quota for {need} GPUs but no set of nodes has room "
                                          f"for the job's {len(gang.pods)} task(s) right now")
                    break
                heapq.heappop(queue)
                self.bind(placement, gang)
                decisions.placements.append(placement)
        self._dirty.clear()
        decisions.waiting_reasons = {g: self._reasons[g] for g in sorted(self._changed)
                                     if g in self._waiting and g in self._reasons}
        self._changed.clear()
        return decisions

    def _reason(self, gang_id: str, reason: str) -> None:
        if self._reasons.get(gang_id) != reason:
            self._reasons[gang_id] = reason
            self._changed.add(gang_id)

    # -- placement ----------------------------------------------------------------------------------
    def _never(self, gang: GangRequest) -> str | None:
        vc = gang.virtual_cluster
        if vc not in self.quotas:
            return f"VC {vc} does not exist"
        need = sum(p.gpu for p in gang.pods)
        if need > self.quotas[vc]:
            return f"the job needs {need} GPUs but VC {vc}'s quota is {self.quotas[vc]}"
        if gang.leaf_cell_type and gang.leaf_cell_type not in self._max_gpus:
            return f"the cluster has no GPUs of type {gang.leaf_cell_type}"
        largest = (self._max_gpus[gang.leaf_cell_type] if gang.leaf_cell_type
                   else max(self._max_gpus.values(), default=0))
        if max((p.gpu for p in gang.pods), default=0) > largest:
            return f"a task needs more GPUs than the largest node has ({largest})"
        return None

    def _fit(self, gang: GangRequest) -> Placement | None:
        taken: dict[int, int] = {}
        chosen: list[tuple[Any, int]] = []
        for pod in sorted(gang.pods, key=lambda p: (-p.gpu, p.role, p.index)):
            i = self._best_fit(pod.gpu, gang.leaf_cell_type, taken) if pod.gpu else 0
            if i is None:
                return None
            taken[i] = taken.get(i, 0) + pod.gpu
            chosen.append((pod, i))
        pods: list[PodPlacement] = []
        offset: dict[int, int] = {}
        for pod, i in chosen:
            start = offset.get(i, 0)
            gpus = tuple(self._nodes[i].free[start:start + pod.gpu])
            offset[i] = start + pod.gpu
            pods.append(PodPlacement(pod.role, pod.index, self._nodes[i].name, gpus))
        return placement_in_task_order(gang.gang_id, pods)
