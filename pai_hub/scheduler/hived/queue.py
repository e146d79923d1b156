"""The waiting queue: gangs grouped by request shape, each group kept in scheduling order.

HiveD's turn walks waiting gangs by (priority desc, submission order) and searches each one; a
search depends only on the gang's *shape* (VC, priority, leaf cells per pod, SKU, pinned cell, lazy
preemption) and on the cells, so once a shape fails in a turn every later gang of that shape fails
too (notes/hived.md). Keeping the gangs of each shape in their own sorted list makes a turn cost
O(shapes) instead of O(gangs): the turn merges the shapes' heads in order and stops a shape at its
first failure. A failed search also leaves a :class:`Marker`, the change counters it depended on
(:meth:`~pai_hub.scheduler.hived.algorithm.HivedAlgorithm.changed`): while they stand still the
same search would fail the same way, so a later turn skips the shape without searching.

Waiting reasons are kept per shape too: the head of a shape (the gang that goes next) is told its
last failure's sentence with the live counts, every later gang that it waits behind the head and
the cause without the counts (:class:`~.reasons.Reason`). A turn that only moves a count hands out
one sentence per shape; a changed cause is handed out with one C-level ``dict.fromkeys`` over the
shape; a turn where nothing changed for a shape hands out nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from ..base import GangRequest
from .algorithm import GroupRequest, HivedAlgorithm, Result
from .reasons import Reason

Shape = tuple
"""(vc, priority, leaf cells per pod, SKU, pinned cell, lazy): what a search depends on besides the cells."""

Key = tuple[int, float, int, str]
"""(-priority, submitted_at, submission sequence, gang id): the scheduling order; unique by sequence."""

WAITING = "waiting to be scheduled"
NOT_YET = Reason(WAITING, WAITING)  # a shape not searched yet


def shape_of(req: GroupRequest) -> Shape:
    return (req.vc, req.priority, req.pods, req.leaf_type, req.pinned, req.lazy)


@dataclass(slots=True)
class Waiting:
    """A waiting gang: the request, its mapping to HiveD (or why it has none) and its place in order."""

    gang: GangRequest
    req: GroupRequest | None
    err: str | None
    seq: int
    key: Key


@dataclass(frozen=True, slots=True)
class Marker:
    """A failed search: the counters it read (``deps``) and the reason it gave."""

    deps: tuple
    reason: Reason


def marker_deps(algo: HivedAlgorithm, req: GroupRequest, res: Result) -> tuple:
    """The narrowest change counters that cover everything the failed search ``res`` read.

    A search that failed inside the VC's virtual cells (no room there) read nothing else; an
    opportunistic search read only the physical cells of the chains it tried. Anything else (a
    failed mapping, bad hardware, doomed cells) depends on the whole cluster."""
    if not algo.bad_nodes and not algo.doomed and res.misses:
        scopes = {m.scope for m in res.misses}
        if scopes <= {"vc", "pinned"}:
            return ("vc", req.vc, algo.vc_version[req.vc])
        if scopes == {"cluster"} and req.priority < 0:
            chains = tuple(dict.fromkeys(m.chain for m in res.misses if m.chain))
            return ("chains", chains, tuple(algo.chain_version[c] for c in chains))
    return ("all", algo.version)


def still_fails(algo: HivedAlgorithm, marker: Marker) -> bool:
    """Whether nothing the marked search read has changed (so it would fail again, the same way)."""
    deps = marker.deps
    kind = deps[0]
    if kind == "vc":
        return algo.vc_version[deps[1]] == deps[2]
    if kind == "chains":
        cv = algo.chain_version
        return all(cv[c] == v for c, v in zip(deps[1], deps[2], strict=True))
    return algo.version == deps[1]


@dataclass(eq=False, slots=True)
class ShapeQueue:
    """The waiting gangs of one shape, in scheduling order, and the reason they share.

    The first gang (the head, the one that goes next) is told the reason with its live counts;
    the others are told they wait behind it, with the cause but not the counts, so a turn that
    only moves a count hands out one sentence, not one per waiting gang."""

    shape: Shape
    members: SortedList = field(default_factory=SortedList)
    first: Key | None = None  # members[0], kept at hand: every turn starts from each shape's head
    gids: dict[str, Key] = field(default_factory=dict)
    marker: Marker | None = None
    reason: Reason = NOT_YET
    reported_tail: str | None = None  # handed out for every member but the head and ``unreported``
    reported_head: tuple[str, str] | None = None  # (head, sentence) handed out to it
    # gangs added since the last changed_reasons, in the order they came (a dict: a set's order
    # would follow string hashing, so waiting reasons and their events would vary from run to run)
    unreported: dict[str, None] = field(default_factory=dict)
    # whether anything changed_reasons reads (members, reason) changed since it last ran: a turn
    # hands out sentences for the shapes it changed only
    stale: bool = True

    def set_reason(self, reason: Reason) -> None:
        if reason is not self.reason:
            self.reason = reason
            self.stale = True

    def add(self, gid: str, key: Key) -> None:
        self.members.add(key)
        self.gids[gid] = key
        if self.first is None or key < self.first:
            self.first = key
        self.unreported[gid] = None
        self.stale = True

    def remove(self, gid: str) -> None:
        key = self.gids.pop(gid)
        m = self.members
        m.remove(key)
        if key == self.first:
            self.first = m[0] if m else None
        self.unreported.pop(gid, None)
        self.stale = True

    def next_after(self, key: Key | None) -> Key | None:
        """The first member after ``key`` in scheduling order (the first of all for None)."""
        m = self.members
        i = 0 if key is None else m.bisect_right(key)
        return m[i] if i < len(m) else None

    @property
    def head(self) -> str:
        return self.first[3]  # type: ignore[index]  # a ShapeQueue is never empty while indexed

    @property
    def tail(self) -> str:
        return self.reason.text if self.reason is NOT_YET else self.reason.behind

    def reason_of(self, gid: str) -> str:
        return self.reason.text if gid == self.head else self.tail

    def changed_reasons(self) -> dict[str, str]:
        """Members whose sentence differs from the one last handed out for them."""
        self.stale = False
        tail = self.tail
        if tail != self.reported_tail:
            self.reported_tail = tail
            out = dict.fromkeys(self.gids, tail)
            self.reported_head = None
        else:
            out = dict.fromkeys(self.unreported, tail)
        self.unreported.clear()
        head, text = self.head, self.reason.text
        if self.reported_head != (head, text):
            if self.reported_head is not None:
                before = self.reported_head[0]
                if before != head and before in self.gids:
                    out[before] = tail  # no longer first: it waits behind the new head
            out[head] = text
            self.reported_head = (head, text)
        return out


class ShapeIndex:
    """Every shape with waiting gangs; which shape each gang is in."""

    def __init__(self) -> None:
        self.shapes: dict[Shape, ShapeQueue] = {}
        self.of: dict[str, ShapeQueue] = {}

    def add(self, gid: str, key: Key, shape: Shape) -> ShapeQueue:
        sq = self.shapes.get(shape)
        if sq is None:
            sq = self.shapes[shape] = ShapeQueue(shape)
        sq.add(gid, key)
        self.of[gid] = sq
        return sq

    def remove(self, gid: str) -> None:
        sq = self.of.pop(gid, None)
        if sq is None:
            return
        sq.remove(gid)
        if not sq.gids:
            del self.shapes[sq.shape]

    def __contains__(self, gid: str) -> bool:
        return gid in self.of

    def __iter__(self) -> Iterator[ShapeQueue]:
        return iter(self.shapes.values())
