"""The HiveD scheduler as it was before the waiting queue was indexed (pai_hub/scheduler/hived/queue.py):
every turn sorts every waiting gang and walks them all. Kept only as the reference the indexed
queue is compared against (test_queue.py); not used by the platform."""

from __future__ import annotations

import itertools
from dataclasses import asdict
from typing import Any

from pai_hub.scheduler.base import (
    ClusterStatus,
    Decisions,
    GangRequest,
    Placement,
    PodPlacement,
    PodRequest,
    Scheduler,
    VcStatus,
)
from pai_hub.scheduler.feasibility import infeasible_reason
from pai_hub.scheduler.hived import reasons, status
from pai_hub.scheduler.hived.algorithm import (
    ALLOCATED,
    BEING_PREEMPTED,
    PREEMPTING,
    Group,
    GroupRequest,
    HivedAlgorithm,
)
from pai_hub.scheduler.hived.config import HivedConfig, SkuType, leaf_cells_for, load_config

SNAPSHOT_VERSION = 1


class FullWalkHivedScheduler(Scheduler):
    """Gangs (HiveD affinity groups) placed in virtual clusters of cells.

    ``config`` is a :class:`HivedConfig`, YAML text or a dict in HiveD's format. All nodes start
    healthy (``hived_start=True`` replays HiveD's start-every-node-bad-then-heal sequence instead,
    only needed to reproduce its test's exact placements).
    """

    def __init__(self, config: HivedConfig | str | dict[str, Any], *, hived_start: bool = False) -> None:
        self.config = config if isinstance(config, HivedConfig) else load_config(config)
        self.algo = HivedAlgorithm(self.config, hived_start=hived_start)
        self._waiting: dict[str, tuple[GangRequest, GroupRequest | None, str | None, int]] = {}
        self._gangs: dict[str, GangRequest] = {}  # gangs the algorithm holds (placed or preempting)
        self._reasons: dict[str, str] = {}
        self._announced: set[str] = set()  # victims already handed to the orchestrator
        self._seq = itertools.count()
        # Whether anything that could let a waiting gang in has happened since the last schedule():
        # the loop calls schedule() on every turn, and a queue of thousands must not be searched
        # again when nothing changed.
        self._dirty = True
        self._reported: dict[str, str] = {}  # the reason last handed out per waiting gang

    # -- request mapping --------------------------------------------------------------------------
    def leaf_cells(self, gang: GangRequest, pod: PodRequest) -> int:
        """Leaf cells a task takes: OpenPAI's SKU formula when ``skuTypes`` are configured, else its GPUs."""
        return leaf_cells_for(pod.gpu, pod.cpu, pod.memory_mb, self._sku_for(gang))

    def _sku_for(self, gang: GangRequest) -> SkuType | None:
        skus = self.config.sku_types
        if not skus:
            return None
        if gang.pinned_cell_id:
            top = self.algo.pinned_virtual.get(gang.virtual_cluster, {}).get(gang.pinned_cell_id)
            lt = self.algo.chains[top.chain].leaf_type if top is not None else None
            return skus.get(lt) if lt else None
        if gang.leaf_cell_type:
            return skus.get(gang.leaf_cell_type)
        if gang.priority >= 0:
            types = {self.algo.chains[c].leaf_type for c in self.algo.vc_cells.get(gang.virtual_cluster, {})}
        else:
            types = set(self.config.leaf_types())
        cands = [skus[t] for t in types if t in skus]
        if not cands:
            return None
        return SkuType(min(s.gpu for s in cands), min(s.cpu for s in cands), min(s.memory_mb for s in cands))

    def request_of(self, gang: GangRequest) -> tuple[GroupRequest | None, str | None]:
        try:
            pods = tuple(self.leaf_cells(gang, p) for p in gang.pods)
        except ValueError as e:
            return None, str(e)
        req = GroupRequest(gang.gang_id, gang.virtual_cluster, gang.priority, pods, gang.leaf_cell_type,
                           gang.pinned_cell_id, gang.lazy_preemption)
        return req, self.algo.validate(req)

    def validate(self, gang: GangRequest) -> str | None:
        """Why ``gang`` can never be scheduled as written (for a 400 at submission), or None: what
        HiveD itself refuses, then more than its VC (or the cluster) could ever hold."""
        return self.request_of(gang)[1] or infeasible_reason(gang, self.config, self.leaf_cells)

    # -- contract ---------------------------------------------------------------------------------
    def submit(self, gang: GangRequest) -> None:
        self._dirty = True
        req, err = self.request_of(gang)
        self._waiting[gang.gang_id] = (gang, req, err, next(self._seq))
        self._reasons[gang.gang_id] = err or "waiting to be scheduled"

    def cancel(self, gang_id: str) -> None:
        self._dirty = True
        if self._waiting.pop(gang_id, None) is not None:
            self._reasons.pop(gang_id, None)
        g = self.algo.groups.get(gang_id)
        if g is not None and g.state == PREEMPTING:
            self.algo.cancel_preempting(g)
            self._gangs.pop(gang_id, None)

    def release(self, gang_id: str) -> None:
        self._dirty = True
        g = self.algo.groups.get(gang_id)
        if g is not None and g.state != PREEMPTING:
            self.algo.delete(gang_id)
            self._gangs.pop(gang_id, None)
            self._announced.discard(gang_id)
        else:
            self.cancel(gang_id)

    def bind(self, placement: Placement, gang: GangRequest | None = None,
             pre_types: list[list[str | None]] | None = None) -> None:
        self._dirty = True
        gang = gang or self._gangs.get(placement.gang_id) or (self._waiting.get(placement.gang_id) or (None,))[0]
        if gang is None:
            raise KeyError(placement.gang_id)
        self._waiting.pop(gang.gang_id, None)
        self._reasons.pop(gang.gang_id, None)
        req, err = self.request_of(gang)
        if req is None:
            raise ValueError(err)
        by_key = {(p.role, p.index): i for i, p in enumerate(gang.pods)}
        phys: list[list] = [[] for _ in gang.pods]
        sizes = list(req.pods)
        for pod in placement.pods:
            i = by_key[(pod.role, pod.index)]
            for idx in pod.gpus:
                cands = self.algo.leaf_at.get((pod.node, idx))
                if cands:  # leaves no longer in the config are ignored, as HiveD does
                    phys[i].append(cands[0])
        keep = [i for i in range(len(phys)) if phys[i]]
        if not keep:
            return
        req = GroupRequest(req.name, req.vc, req.priority, tuple(len(phys[i]) if phys[i] else sizes[i] for i in keep),
                           req.leaf_type, req.pinned, req.lazy)
        types = [pre_types[i] for i in keep] if pre_types else None
        self.algo.add_allocated(req, [phys[i] for i in keep], types)
        self._gangs[gang.gang_id] = gang

    def set_health(self, node: str, healthy: bool) -> None:
        self._dirty = True
        if node in self.algo.node_leaves:
            self.algo.set_node_health(node, healthy)

    def waiting_reason(self, gang_id: str) -> str | None:
        return self._reasons.get(gang_id) if gang_id in self._waiting else None

    def schedule(self, now: float) -> Decisions:
        d = Decisions()
        if not self._dirty:
            return d
        self._dirty = False
        failed: dict[tuple, str] = {}  # request shape -> reason: free cells only shrink within a call
        order = sorted(self._waiting.values(), key=lambda w: (-w[0].priority, w[0].submitted_at, w[3]))
        for gang, req, err, _ in order:
            gid = gang.gang_id
            if gid not in self._waiting:
                continue
            if req is None or err:
                self._reasons[gid] = err or "invalid request"
                continue
            g = self.algo.groups.get(gid)
            if g is not None and g.state == PREEMPTING:
                if any(p.node in self.algo.bad_nodes for p in g.flat_phys()):
                    self.algo.cancel_preempting(g)  # its cells went bad: look again
                else:
                    victims, _ = self.algo.victims_of(g.phys, g)
                    if not victims:
                        self.algo.finish_preempting(g)
                        self._placed(gang, g, d)
                    else:
                        self._reasons[gid] = reasons.preempting(victims)
                    continue
            shape = (req.vc, req.priority, req.pods, req.leaf_type, req.pinned, req.lazy)
            if shape in failed:
                self._reasons[gid] = failed[shape]
                continue
            res = self.algo.search(req)
            if not res.ok:
                self._reasons[gid] = failed[shape] = reasons.explain(self.algo, req, res.misses)
                continue
            victims, preemptors = self.algo.victims_of(res.phys)
            for p in preemptors:
                self.algo.cancel_preempting(p)
            if victims:
                g = self.algo.create_preempting(req, res)
                self._gangs[gid] = gang
                for v in victims:
                    if v.name not in self._announced:
                        self._announced.add(v.name)
                        d.preemptions.append(v.name)
                self._reasons[gid] = reasons.preempting(victims)
            else:
                g = self.algo.allocate(req, res)
                self._placed(gang, g, d)
            for lz in res.lazy:
                if lz.name not in self._announced and lz.state != BEING_PREEMPTED and lz.name not in d.lazy_preempted:
                    d.lazy_preempted.append(lz.name)
        d.waiting_reasons = self._changed_reasons()
        return d

    def _changed_reasons(self) -> dict[str, str]:
        changed = {gid: r for gid in self._waiting if self._reported.get(gid) != (r := self._reasons[gid])}
        self._reported.update(changed)
        for gid in [g for g in self._reported if g not in self._waiting]:
            del self._reported[gid]
        return changed

    def _placed(self, gang: GangRequest, g: Group, d: Decisions) -> None:
        self._waiting.pop(gang.gang_id, None)
        self._reasons.pop(gang.gang_id, None)
        self._gangs[gang.gang_id] = gang
        d.placements.append(self.placement_of(gang, g))

    @staticmethod
    def placement_of(gang: GangRequest, g: Group) -> Placement:
        pods = tuple(PodPlacement(p.role, p.index, leaves[0].node, tuple(x.index for x in leaves))
                     for p, leaves in zip(gang.pods, g.phys, strict=False))
        return Placement(gang.gang_id, pods)

    # -- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        placed = []
        for gid, g in self.algo.groups.items():
            if g.state == PREEMPTING or gid not in self._gangs:
                continue
            gang = self._gangs[gid]
            placed.append({"gang": _gang_dict(gang), "placement": _placement_dict(self.placement_of(gang, g)),
                           "pre_types": self.algo.pre_types(g), "lazy_by": g.lazy_by})
        waiting = [_gang_dict(gang) for gang, *_ in sorted(self._waiting.values(), key=lambda w: w[3])]
        # a preempting gang is stored as waiting: its reservation is recomputed after a restart
        for gid, g in self.algo.groups.items():
            if g.state == PREEMPTING and gid in self._gangs and gid not in self._waiting:
                waiting.append(_gang_dict(self._gangs[gid]))
        return {"version": SNAPSHOT_VERSION, "placed": placed, "waiting": waiting,
                "unhealthy": sorted(self.algo.bad_nodes), "announced": sorted(self._announced)}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Rebuild from :meth:`snapshot` on a scheduler made from the same (or an edited) config."""
        self._dirty = True
        for entry in snapshot.get("placed", []):
            gang = _gang_from(entry["gang"])
            pl = entry["placement"]
            placement = Placement(pl["gang_id"], tuple(PodPlacement(r, i, n, tuple(gp)) for r, i, n, gp in pl["pods"]))
            if gang.gang_id in self.algo.groups:
                continue
            # a lazily preempted gang lost its virtual cells: no preassigned types to restore
            types = None if entry.get("lazy_by") else entry.get("pre_types")
            self.bind(placement, gang, types)
            g = self.algo.groups.get(gang.gang_id)
            if g is not None and entry.get("lazy_by") and g.virt is not None:
                self.algo._lazy_preempt(g, entry["lazy_by"])
        for node in snapshot.get("unhealthy", []):
            self.set_health(node, False)
        for gd in snapshot.get("waiting", []):
            gang = _gang_from(gd)
            if gang.gang_id not in self._waiting and gang.gang_id not in self.algo.groups:
                self.submit(gang)
        self._announced.update(x for x in snapshot.get("announced", []) if x in self.algo.groups)

    # -- status -----------------------------------------------------------------------------------
    def vc_status(self, vc: str) -> VcStatus:
        return status.vc_status(self.algo, vc)

    def cluster_status(self) -> ClusterStatus:
        return status.cluster_status(self.algo)

    def gang_state(self, gang_id: str) -> str | None:
        """``Waiting``, ``Preempting``, ``Allocated``, ``BeingPreempted``, ``Opportunistic`` (lazily
        preempted) or None when unknown."""
        g = self.algo.groups.get(gang_id)
        if g is None:
            return "Waiting" if gang_id in self._waiting else None
        if g.state == ALLOCATED and g.virt is None and g.req.priority >= 0:
            return "Opportunistic"
        return g.state


def _gang_dict(g: GangRequest) -> dict[str, Any]:
    d = asdict(g)
    d["pods"] = [asdict(p) for p in g.pods]
    return d


def _gang_from(d: dict[str, Any]) -> GangRequest:
    d = dict(d)
    d["pods"] = tuple(PodRequest(**p) for p in d["pods"])
    return GangRequest(**d)


def _placement_dict(p: Placement) -> dict[str, Any]:
    return {"gang_id": p.gang_id, "pods": [[x.role, x.index, x.node, list(x.gpus)] for x in p.pods]}
