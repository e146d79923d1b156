"""All-or-nothing placement over the nodes' CPUs, memory and GPUs, in priority then FIFO order.

One pool, no virtual clusters: the simulator's ``gang`` baseline and the state machine's tests use
it (the service places every job with HiveD). A gang that does not fit does not block smaller gangs
behind it (backfill), and every waiting gang has a reason a researcher can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import ClusterStatus, Decisions, GangRequest, Placement, PodPlacement, SkuUse, VcStatus
from .bookkeeping import BookkeepingScheduler, placement_in_task_order, tally_nodes

#: The one VC of a gang scheduler: it has no quotas, every gang shares every node.
DEFAULT_VC = "default"


@dataclass
class NodeCapacity:
    name: str
    cpu: int
    memory_mb: int
    gpus: tuple[int, ...]
    healthy: bool = True
    used_cpu: int = 0
    used_memory_mb: int = 0
    used_gpus: set[int] = field(default_factory=set)

    def free_gpus(self) -> list[int]:
        return [g for g in self.gpus if g not in self.used_gpus]


class GangScheduler(BookkeepingScheduler):
    """Gang placement over a fixed set of nodes.

    ``nodes`` maps a node name to ``(cpu, memory_mb, gpu_indices)``.
    """

    def __init__(self, nodes: dict[str, tuple[int, int, tuple[int, ...]]]) -> None:
        super().__init__()
        self.nodes = {n: NodeCapacity(n, c, m, tuple(g)) for n, (c, m, g) in nodes.items()}
        self._order: list[str] = []
        self._dirty = True

    # -- contract -------------------------------------------------------------------------------
    def submit(self, gang: GangRequest) -> None:
        self._waiting[gang.gang_id] = gang
        self._order.append(gang.gang_id)
        self._dirty = True

    def cancel(self, gang_id: str) -> None:
        if self._waiting.pop(gang_id, None) is not None:
            self._reasons.pop(gang_id, None)  # its entry in _order is dropped by the next schedule()

    def _give_back(self, gang: GangRequest, placement: Placement) -> None:
        by_key = {(p.role, p.index): p for p in gang.pods}
        for pod in placement.pods:
            req = by_key[(pod.role, pod.index)]
            node = self.nodes.get(pod.node)
            if node is None:
                continue
            node.used_cpu -= req.cpu
            node.used_memory_mb -= req.memory_mb
            node.used_gpus.difference_update(pod.gpus)
        self._dirty = True

    def _take(self, gang: GangRequest, placement: Placement) -> None:
        by_key = {(p.role, p.index): p for p in gang.pods}
        for pod in placement.pods:
            req = by_key[(pod.role, pod.index)]
            node = self.nodes[pod.node]
            node.used_cpu += req.cpu
            node.used_memory_mb += req.memory_mb
            node.used_gpus.update(pod.gpus)

    def set_health(self, node: str, healthy: bool) -> None:
        self.nodes[node].healthy = healthy
        self._dirty = True

    def _unhealthy_nodes(self) -> list[str]:
        return [n.name for n in self.nodes.values() if not n.healthy]

    def restore(self, snapshot: dict[str, Any]) -> None:
        for name in snapshot.get("unhealthy", []):
            if name in self.nodes:
                self.nodes[name].healthy = False

    def schedule(self, now: float) -> Decisions:
        decisions = Decisions()
        if not self._waiting:
            self._order.clear()
            return decisions
        if not self._dirty:
            decisions.waiting_reasons = {g: self._reasons[g] for g in self._waiting if g in self._reasons}
            return decisions
        order = [g for g in self._order if g in self._waiting]
        order.sort(key=lambda g: -self._waiting[g].priority)  # stable: FIFO within a priority
        self._order = order
        free = {
            n.name: (n.cpu - n.used_cpu, n.memory_mb - n.used_memory_mb, n.free_gpus())
            for n in self.nodes.values()
            if n.healthy
        }
        for gang_id in order:
            gang = self._waiting[gang_id]
            trial = {k: [c, m, list(g)] for k, (c, m, g) in free.items()}
            placement = self._fit(gang, trial)
            if placement is None:
                self._reasons[gang_id] = self._explain(gang)
                continue
            free = {k: (c, m, g) for k, (c, m, g) in trial.items()}
            self.bind(placement, gang)
            decisions.placements.append(placement)
        self._order = [g for g in self._order if g in self._waiting]
        decisions.waiting_reasons = {g: self._reasons[g] for g in self._order}
        self._dirty = False
        return decisions

    # -- what the platform reads ----------------------------------------------------------------
    def validate(self, gang: GangRequest) -> str | None:
        """A task bigger than every node, or a gang bigger than the cluster, can never be placed."""
        for pod in gang.pods:
            if not any(n.cpu >= pod.cpu and n.memory_mb >= pod.memory_mb and len(n.gpus) >= pod.gpu
                       for n in self.nodes.values()):
                return (f"a task needs {pod.gpu} GPUs, {pod.cpu} CPUs and {pod.memory_mb} MB on one node; "
                        "no node has that much")
        nodes = self.nodes.values()
        if (sum(p.gpu for p in gang.pods) > sum(len(n.gpus) for n in nodes)
                or sum(p.cpu for p in gang.pods) > sum(n.cpu for n in nodes)
                or sum(p.memory_mb for p in gang.pods) > sum(n.memory_mb for n in nodes)):
            return self._explain(gang)
        return None

    def _node_use(self, n: NodeCapacity) -> dict[str, SkuUse]:
        """A node's GPUs (SKU ``gpu``) and CPUs (SKU ``cpu``)."""
        gpus, cpus = len(n.gpus), n.cpu
        return {"gpu": {"capacity": gpus, "used": len(n.used_gpus), "free": gpus - len(n.used_gpus)},
                "cpu": {"capacity": cpus, "used": n.used_cpu, "free": cpus - n.used_cpu}}

    def cluster_status(self) -> ClusterStatus:
        nodes, totals = tally_nodes((n.name, n.healthy, self._node_use(n)) for n in self.nodes.values())
        vc = {s: {"capacity": t["capacity"], "used": t["used"], "free": t["free"]} for s, t in totals.items()}
        return {"nodes": nodes, "skus": totals, "vcs": {DEFAULT_VC: vc}}

    def vc_status(self, vc: str) -> VcStatus:
        if vc != DEFAULT_VC:
            raise KeyError(vc)
        status = self.cluster_status()
        out: VcStatus = {s: {**t, "opportunistic": 0} for s, t in status["skus"].items()}
        out["nodes"] = {name: {s: {k: u[k] for k in ("capacity", "used", "free")} for s, u in n["skus"].items()}
                        for name, n in status["nodes"].items()}
        return out

    # -- placement ------------------------------------------------------------------------------
    @staticmethod
    def _fit(gang: GangRequest, free: dict[str, list]) -> Placement | None:
        """First fit of every pod into ``free`` (a scratch copy it consumes); all or nothing."""
        pods: list[PodPlacement] = []
        for req in sorted(gang.pods, key=lambda p: (-p.gpu, -p.cpu)):
            for name, cap in free.items():
                if cap[0] >= req.cpu and cap[1] >= req.memory_mb and len(cap[2]) >= req.gpu:
                    gpus = tuple(cap[2][: req.gpu])
                    cap[0] -= req.cpu
                    cap[1] -= req.memory_mb
                    cap[2] = cap[2][req.gpu :]
                    pods.append(PodPlacement(req.role, req.index, name, gpus))
                    break
            else:
                return None
        return placement_in_task_order(gang.gang_id, pods)

    def _explain(self, gang: GangRequest) -> str:
        need_gpu = sum(p.gpu for p in gang.pods)
        need_cpu = sum(p.cpu for p in gang.pods)
        need_mem = sum(p.memory_mb for p in gang.pods)
        healthy = [n for n in self.nodes.values() if n.healthy]
        total_gpu = sum(len(n.gpus) for n in healthy)
        total_cpu = sum(n.cpu for n in healthy)
        total_mem = sum(n.memory_mb for n in healthy)
        free_gpu = sum(len(n.free_gpus()) for n in healthy)
        free_cpu = sum(n.cpu - n.used_cpu for n in healthy)
        free_mem = sum(n.memory_mb - n.used_memory_mb for n in healthy)
        pods = len(gang.pods)
        if need_gpu > total_gpu or need_cpu > total_cpu or need_mem > total_mem:
            return (
                f"the job needs {need_gpu} GPUs, {need_cpu} CPUs and {need_mem} MB for {pods} tasks; "
                f"the cluster has only {total_gpu} GPUs, {total_cpu} CPUs and {total_mem} MB in all"
            )
        if need_gpu > free_gpu:
            return f"waiting for GPUs: {free_gpu} of {total_gpu} free, the job needs {need_gpu} together"
        if need_cpu > free_cpu:
            return f"waiting for CPUs: {free_cpu} of {total_cpu} free, the job needs {need_cpu} together"
        if need_mem > free_mem:
            return f"waiting for memory: {free_mem} of {total_mem} MB free, the job needs {need_mem} MB"
        return f"no node has room for the largest of the job's {pods} tasks right now"
