"""Topology-aware placement of a gang's pods on a list of "nodes" (notes/hived.md §2.5).

Used over a VC's virtual cells (guaranteed gangs, packing across priorities) and over a chain's
physical cells (opportunistic gangs, staying away from guaranteed work). The view is a persistent
list, stable-sorted in place on every call, so ties keep the previous order as in HiveD.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..base import SchedulerInvariantError
from .cells import FREE, OPPORTUNISTIC, Cell


class Failure:
    __slots__ = ("free", "kind", "need", "node")

    def __init__(self, kind: str, node: Cell | None = None, free: int = 0, need: int = 0) -> None:
        self.kind = kind  # "bad" | "non-suggested" | "capacity"
        self.node = node
        self.free = free
        self.need = need

    def text(self) -> str:
        if self.kind == "bad":
            return f"have to use at least one bad node {self.node.address if self.node else ''}"
        if self.kind == "non-suggested":
            return f"have to use at least one non-suggested node {self.node.address if self.node else ''}"
        return "insufficient capacity"


class TopologyView:
    def __init__(self, nodes: list[Cell], cross_priority_pack: bool) -> None:
        self.nodes = nodes
        self.cross = cross_priority_pack
        self.total = sum(n.leaf_count for n in nodes)
        # (change counter, sort key) of the last sort: sorting again with the same key while the
        # cells have not changed would leave the order as it is (a stable sort of a sorted list)
        self._sorted: tuple | None = None

    def sort(self, p: int, suggested: set[str] | None, stamp: object = None) -> None:
        """Sort the nodes for a search at priority ``p``; ``stamp`` (the counter of every change to
        these cells, or None) lets a sort of unchanged cells with the same key be skipped."""
        key = (stamp, None if self.cross else p)
        if stamp is not None and suggested is None and self._sorted == key:
            return
        self._sort(p, suggested)
        self._sorted = key if suggested is None else None

    def _sort(self, p: int, suggested: set[str] | None) -> None:
        if self.cross:
            if suggested is None:
                self.nodes.sort(key=_key_cross)
            else:
                self.nodes.sort(key=lambda n: (not n.healthy, not _suggested(n, suggested), -n.n_used))
        elif suggested is None and p == OPPORTUNISTIC:
            # an opportunistic search (the only one these views serve without suggested nodes):
            # every use is at OPPORTUNISTIC or above, so the leaves used above it are the rest of n_used
            self.nodes.sort(key=_key_opportunistic)
        else:
            def key(n: Cell) -> tuple[bool, bool, int, int]:
                same = n.used_at.get(p, 0)
                higher = sum(v for k, v in n.used_at.items() if k > p)
                return (n.n_bad > 0, suggested is not None and not _suggested(n, suggested), -same, higher)
            self.nodes.sort(key=key)

    def schedule(self, pods: Sequence[int], p: int, suggested: set[str] | None,
                 stamp: object = None) -> tuple[list[list[Cell]] | None, Failure | None, int]:
        """``pods`` ascending leaf counts. Returns (leaves per pod, None, pass priority) or (None, failure, 0)."""
        self.sort(OPPORTUNISTIC, suggested, stamp)
        nodes, fail = self._find_nodes(pods, OPPORTUNISTIC, suggested)
        used_p = OPPORTUNISTIC
        if nodes is None and p > OPPORTUNISTIC:
            self.sort(p, suggested, stamp)
            nodes, fail2 = self._find_nodes(pods, p, suggested)
            used_p = p
            if nodes is None:
                fail = fail2 if fail2.kind != "capacity" or fail.kind == "capacity" else fail
        if nodes is None:
            return None, fail, 0
        taken: set[Cell] = set()
        out = []
        for n, node in zip(pods, nodes, strict=False):
            out.append(find_leaves_in_node(node, n, used_p, taken))
        return out, None, used_p

    def _find_nodes(self, pods: Sequence[int], p: int, suggested: set[str] | None) -> tuple[list[Cell] | None, Failure | None]:
        out: list[Cell] = []
        k = 0
        npods = len(pods)
        need = pods[0]
        picked = 0
        oppo = p <= OPPORTUNISTIC
        for node in self.nodes:
            # an opportunistic gang sees every used cell; a guaranteed one only those at or above it
            free = node.leaf_count - (node.n_used if oppo else node.used_at_or_above(p))
            picked = 0
            while free - picked >= need:
                if not node.healthy:
                    return None, Failure("bad", node)
                if suggested is not None and not _suggested(node, suggested):
                    return None, Failure("non-suggested", node)
                out.append(node)
                picked += need
                k += 1
                if k == npods:
                    return out, None
                need = pods[k]
        return None, Failure("capacity")


def _key_cross(n: Cell) -> tuple[bool, int]:
    return (not n.healthy, -n.n_used)


def _key_opportunistic(n: Cell) -> tuple[bool, bool, int, int]:
    """The general key at ``OPPORTUNISTIC`` without suggested nodes: (bad, False, -same, higher),
    higher = n_used - same since a cell's ``used_at`` counts add up to its ``n_used``."""
    same = n.used_at.get(OPPORTUNISTIC, 0)
    return (n.n_bad > 0, False, -same, n.n_used - same)


def _suggested(n: Cell, suggested: set[str]) -> bool:
    if n.is_virtual:
        p = n.physical
        return p is None or p.node in suggested
    return n.node in suggested


def find_leaves_in_node(node: Cell, n: int, p: int, taken: set[Cell]) -> list[Cell]:
    """The first (in candidate order) set of ``n`` leaves with the lowest common ancestor.

    Candidates: free leaves depth-first, then leaves used below priority ``p`` (preemptible)."""
    free = [c for c in node.leaves if not c.used_at and c not in taken]
    if p > OPPORTUNISTIC:
        free += [c for c in node.leaves if c.used_at and c.priority < p and c.priority != FREE and c not in taken]
    if n == 1:
        chosen = free[:1]
    elif n >= len(free):
        chosen = free[:n]
    else:
        chosen = _lowest_common(free, n, node)
    taken.update(chosen)
    return chosen


def _lowest_common(cands: list[Cell], n: int, node: Cell) -> list[Cell]:
    # per ancestor (below or at the node): candidates in candidate order
    members: dict[Cell, list[Cell]] = {}
    for c in cands:
        a = c.parent
        while a is not None:
            members.setdefault(a, []).append(c)
            if a is node:
                break
            a = a.parent
    best: Cell | None = None
    best_key = None
    pos = {c: i for i, c in enumerate(cands)}
    for a, lst in members.items():
        if len(lst) < n:
            continue
        key = (a.level, pos[lst[0]])
        if best_key is None or key < best_key:
            best, best_key = a, key
    if best is None:
        raise SchedulerInvariantError(f"no cell holds {n} of the {len(cands)} candidates (the caller checked there are enough)")
    return members[best][:n]
