"""One scheduling turn's decisions for a gang at its place in the order (HivedScheduler.schedule).

Split from :mod:`.scheduler` so that the order (which gang is visited when: scheduler.py, from the
shape index of queue.py) stays apart from what a visit does (search, place, preempt, or wait).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import Decisions
from . import reasons
from .algorithm import BEING_PREEMPTED, PREEMPTING
from .queue import Key, Marker, ShapeQueue, marker_deps, still_fails

if TYPE_CHECKING:
    from .scheduler import HivedScheduler


class Turn:
    """What one ``schedule`` call has learnt so far: the shapes that failed, the gangs visited."""

    def __init__(self, sched: HivedScheduler, d: Decisions) -> None:
        self.s = sched
        self.algo = sched.algo
        self.d = d
        self.failed: set[tuple] = set()  # free cells only shrink within a call (HiveD's walk)
        self.done: set[str] = set()  # preempting gangs visited (at their own place in the order)
        # (pods, leaf type) -> (algorithm version, marker) of an opportunistic search that failed this
        # turn. Such a search reads no VC, so an opportunistic shape of another VC with the same pods
        # fails alike while no cell changed: its search would only replay the memoised misses and
        # give the same reason and marker, so the shape takes them without searching.
        self.opportunistic_failed: dict[tuple, tuple[int, Marker]] = {}

    def preempting(self, gid: str, key: Key) -> None:
        """A gang that held a reservation when the turn began, at its place in the order."""
        s, algo = self.s, self.algo
        if gid in self.done or gid not in s._waiting:
            return
        self.done.add(gid)
        g = algo.groups.get(gid)
        if g is not None and g.state == PREEMPTING:
            if any(p.node in algo.bad_nodes for p in g.flat_phys()):
                algo.cancel_preempting(g)  # its cells went bad: look again
                s._from_preempting(gid)
            else:
                victims, _ = algo.victims_of(g.phys, g)
                if not victims:
                    algo.finish_preempting(g)
                    s._placed(s._waiting[gid].gang, g, self.d)
                else:
                    s._set_own_reason(gid, reasons.preempting(victims))
                return
        sq = s._shapes.of.get(gid)
        if sq is not None:  # its preemption was given up: an ordinary waiting gang from here on
            self.visit(gid, sq)

    def visit(self, gid: str, sq: ShapeQueue) -> None:
        """The gang first in order of its shape this turn: skip it when its shape's last failure
        still holds, else search it and place it, start preempting for it, or record the failure."""
        if sq.shape in self.failed:
            return
        s, algo, d = self.s, self.algo, self.d
        if sq.marker is not None and still_fails(algo, sq.marker):
            self.failed.add(sq.shape)
            sq.set_reason(sq.marker.reason)
            return
        w = s._waiting[gid]
        req = w.req
        before = algo.version
        if req.priority < 0:
            alike = self.opportunistic_failed.get((req.pods, req.leaf_type))
            if alike is not None and alike[0] == before:
                self.failed.add(sq.shape)
                sq.set_reason(alike[1].reason)
                sq.marker = alike[1]
                return
        res = algo.search(req)
        if not res.ok:
            self.failed.add(sq.shape)
            sq.set_reason(reasons.reason_for(algo, req, res.misses))
            # a search that changed something (a lazy preemption tried and undone) is not repeated blindly
            sq.marker = Marker(marker_deps(algo, req, res), sq.reason) if algo.version == before else None
            if req.priority < 0 and sq.marker is not None:
                self.opportunistic_failed[(req.pods, req.leaf_type)] = (before, sq.marker)
            return
        sq.marker = None
        victims, preemptors = algo.victims_of(res.phys)
        for p in preemptors:
            algo.cancel_preempting(p)
            s._from_preempting(p.name)
        if victims:
            algo.create_preempting(req, res)
            s._gangs[gid] = w.gang
            for v in victims:
                if v.name not in s._announced:
                    s._announced.add(v.name)
                    d.preemptions.append(v.name)
            s._to_preempting(gid, reasons.preempting(victims))
        else:
            g = algo.allocate(req, res)
            s._placed(w.gang, g, d)
        for lz in res.lazy:
            if lz.name not in s._announced and lz.state != BEING_PREEMPTED and lz.name not in d.lazy_preempted:
                d.lazy_preempted.append(lz.name)
