"""The HiveD scheduler behind PAI Hub's :class:`~pai_hub.scheduler.base.Scheduler` contract."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import asdict
from typing import Any

from ..base import (
    ClusterStatus,
    Decisions,
    GangRequest,
    Placement,
    PodPlacement,
    PodRequest,
    Scheduler,
    VcStatus,
)
from ..feasibility import infeasible_reason
from . import status
from .algorithm import ALLOCATED, PREEMPTING, Group, GroupRequest, HivedAlgorithm
from .config import HivedConfig, SkuType, leaf_cells_for, load_config
from .queue import WAITING, Key, ShapeIndex, Waiting, shape_of
from .turn import Turn

SNAPSHOT_VERSION = 1


class HivedScheduler(Scheduler):
    """Gangs (HiveD affinity groups) placed in virtual clusters of cells.

    ``config`` is a :class:`HivedConfig`, YAML text or a dict in HiveD's format. All nodes start
    healthy (``hived_start=True`` replays HiveD's start-every-node-bad-then-heal sequence instead,
    only needed to reproduce its test's exact placements).
    """

    def __init__(self, config: HivedConfig | str | dict[str, Any], *, hived_start: bool = False) -> None:
        self.config = config if isinstance(config, HivedConfig) else load_config(config)
        self.algo = HivedAlgorithm(self.config, hived_start=hived_start)
        self._waiting: dict[str, Waiting] = {}
        self._shapes = ShapeIndex()  # the waiting gangs that can be searched, by shape (queue.py)
        self._preempting: dict[str, Key] = {}  # waiting gangs holding a reservation, their order key
        self._own_reasons: dict[str, str] = {}  # reasons of one gang (invalid, preempting), else its shape's
        self._own_reported: dict[str, str] = {}
        self._own_changed: dict[str, None] = {}  # in the order they changed (not a set's hash order)
        self._gangs: dict[str, GangRequest] = {}  # gangs the algorithm holds (placed or preempting)
        self._announced: set[str] = set()  # victims already handed to the orchestrator
        self._seq = itertools.count()
        self._skus: dict[tuple, SkuType | None] = {}  # _sku_for's answers
        # Whether anything that could let a waiting gang in has happened since the last schedule():
        # the loop calls schedule() on every turn, and a queue of thousands must not be searched
        # again when nothing changed.
        self._dirty = True

    # -- request mapping --------------------------------------------------------------------------
    def leaf_cells(self, gang: GangRequest, pod: PodRequest) -> int:
        """Leaf cells a task takes: OpenPAI's SKU formula when ``skuTypes`` are configured, else its GPUs."""
        return leaf_cells_for(pod.gpu, pod.cpu, pod.memory_mb, self._sku_for(gang))

    def _sku_for(self, gang: GangRequest) -> SkuType | None:
        if not self.config.sku_types:
            return None
        # what it reads of the gang, and the config's cells (fixed for this scheduler's life)
        key = (gang.pinned_cell_id, gang.virtual_cluster, gang.leaf_cell_type, gang.priority >= 0)
        try:
            return self._skus[key]
        except KeyError:
            sku = self._skus[key] = self._work_out_sku(gang)
            return sku

    def _work_out_sku(self, gang: GangRequest) -> SkuType | None:
        skus = self.config.sku_types
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
        self._forget(gang.gang_id)
        req, err = self.request_of(gang)
        seq = next(self._seq)
        w = Waiting(gang, req, err, seq, (-gang.priority, gang.submitted_at, seq, gang.gang_id))
        self._waiting[gang.gang_id] = w
        if req is None or err:
            self._set_own_reason(gang.gang_id, err or "invalid request")
        else:
            self._shapes.add(gang.gang_id, w.key, shape_of(req))

    def cancel(self, gang_id: str) -> None:
        self._dirty = True
        self._forget(gang_id)
        g = self.algo.groups.get(gang_id)
        if g is not None and g.state == PREEMPTING:
            self.algo.cancel_preempting(g)
            self._gangs.pop(gang_id, None)

    def _forget(self, gang_id: str) -> None:
        """Drop a gang from every waiting structure (cancelled, placed, bound or resubmitted)."""
        if self._waiting.pop(gang_id, None) is None:
            return
        self._shapes.remove(gang_id)
        self._preempting.pop(gang_id, None)
        self._own_reasons.pop(gang_id, None)
        self._own_reported.pop(gang_id, None)
        self._own_changed.pop(gang_id, None)

    def _set_own_reason(self, gang_id: str, reason: str) -> None:
        """A reason of this gang alone (invalid request, preempting), not its shape's."""
        self._own_reasons[gang_id] = reason
        self._own_changed[gang_id] = None

    def _to_preempting(self, gang_id: str, reason: str) -> None:
        self._shapes.remove(gang_id)
        self._preempting[gang_id] = self._waiting[gang_id].key
        self._set_own_reason(gang_id, reason)

    def _from_preempting(self, gang_id: str) -> None:
        """A preemption was given up: the gang waits with its shape again."""
        if self._preempting.pop(gang_id, None) is None:
            return
        w = self._waiting[gang_id]
        self._own_reasons.pop(gang_id, None)
        self._own_reported.pop(gang_id, None)
        self._own_changed.pop(gang_id, None)
        self._shapes.add(gang_id, w.key, shape_of(w.req))

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
        gang = gang or self._gangs.get(placement.gang_id) or (
            w.gang if (w := self._waiting.get(placement.gang_id)) is not None else None)
        if gang is None:
            raise KeyError(placement.gang_id)
        self._forget(gang.gang_id)
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
        if gang_id not in self._waiting:
            return None
        own = self._own_reasons.get(gang_id)
        if own is not None:
            return own
        sq = self._shapes.of.get(gang_id)
        return sq.reason_of(gang_id) if sq is not None else WAITING

    def schedule(self, now: float) -> Decisions:
        """One turn: gangs in (priority desc, submission) order, each searched unless a gang of its
        shape already failed this turn or its shape's last failure still holds (queue.py). Only the
        heads of the shapes and the preempting gangs are visited, never the whole queue."""
        d = Decisions()
        if not self._dirty:
            return d
        self._dirty = False
        self._walk(Turn(self, d))
        d.waiting_reasons = self._changed_reasons()
        return d

    def _walk(self, turn: Turn) -> None:
        """Visit the waiting gangs of one turn in scheduling order: the shapes' heads merged, each
        shape followed only until it fails, and the gangs holding a reservation at their place.
        Overridden by the tests' full walk (tests/scheduler/hived/reference_walk.py), the oracle
        this order is checked against."""
        heap: list[tuple[Key, int, object]] = [(sq.first, 0, sq) for sq in self._shapes]
        heap += [(key, 1, gid) for gid, key in self._preempting.items()]
        heapq.heapify(heap)
        while heap:
            key, kind, what = heapq.heappop(heap)
            if kind == 1:
                turn.preempting(what, key)
                continue
            sq = what
            gid = key[3]
            if gid in turn.done or self._shapes.of.get(gid) is not sq:
                pass  # visited already as a preemptor given up this turn, or no longer waiting here
            elif sq.shape in turn.failed:
                continue  # every later gang of the shape fails too
            else:
                turn.visit(gid, sq)
                if sq.shape in turn.failed:
                    continue
            nxt = sq.next_after(key)
            if nxt is not None:
                heapq.heappush(heap, (nxt, 0, sq))

    def _changed_reasons(self) -> dict[str, str]:
        changed: dict[str, str] = {}
        for sq in self._shapes:
            if sq.stale:  # an unchanged shape has nothing new to hand out
                changed.update(sq.changed_reasons())
        for gid in self._own_changed:
            r = self._own_reasons.get(gid)
            if r is not None and self._own_reported.get(gid) != r:
                changed[gid] = self._own_reported[gid] = r
        self._own_changed.clear()
        return changed

    def _placed(self, gang: GangRequest, g: Group, d: Decisions) -> None:
        self._forget(gang.gang_id)
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
        waiting = [_gang_dict(w.gang) for w in sorted(self._waiting.values(), key=lambda w: w.seq)]
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
