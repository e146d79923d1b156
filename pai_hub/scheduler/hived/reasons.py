"""Waiting reasons in words a researcher understands, built from the facts of a failed search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .cells import OPPORTUNISTIC

if TYPE_CHECKING:
    from .algorithm import Group, GroupRequest, HivedAlgorithm, Miss


def _sku_words(algo: HivedAlgorithm, chains: list[str]) -> str:
    key = tuple(chains)
    words = algo.sku_words.get(key)
    if words is None:  # the config's, so worked out once per set of chains
        types = list(dict.fromkeys(algo.chains[c].leaf_type for c in chains))
        words = algo.sku_words[key] = "/".join(types) if types else "cells"
    return words


def _free_at(cells, p: int) -> int:
    return sum(c.leaf_count - c.used_at_or_above(p) for c in cells)


BEHIND = "waiting behind earlier jobs with the same request; the first of them: "


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a search failed, twice: ``text`` with the live counts (for the first gang of its shape,
    the one that goes next) and ``steady``, the same cause without the counts, which holds for
    every later gang of the shape and changes only when the cause does (queue.py)."""

    text: str
    steady: str

    @property
    def behind(self) -> str:
        """The sentence of a gang queued behind an earlier one of its shape."""
        return BEHIND + self.steady


def explain(algo: HivedAlgorithm, req: GroupRequest, misses: list[Miss]) -> str:
    return reason_for(algo, req, misses).text


def reason_for(algo: HivedAlgorithm, req: GroupRequest, misses: list[Miss]) -> Reason:
    if not misses:
        return _same("waiting to be scheduled")
    for m in misses:
        if m.scope == "invalid":
            return _same(m.text)
    need = sum(req.pods)
    biggest = max(req.pods)
    tasks = len(req.pods)
    for m in misses:
        if m.failure is not None and m.failure.kind == "bad":
            node = m.failure.node
            where = node.physical.node if node is not None and node.is_virtual and node.physical is not None else (
                node.node if node is not None else None)
            return _same((f"the only place for it needs node {where}, which is unhealthy; waiting for it to recover "
                          f"or for other cells to free up") if where else "the only place for it is on unhealthy hardware")
    if any(m.scope == "mapping" for m in misses):
        return _same(f"VC {req.vc} has room on paper, but its free cells can only be found on unhealthy or reserved "
                     f"hardware right now; waiting for a node to recover or for cells to free up")
    # the totals below are sums over the VC's (or the chain's) top cells, which count every leaf
    # below them: the same figures as a sum over the view's nodes, without visiting them all
    if req.pinned:
        top = algo.pinned_virtual[req.vc][req.pinned]
        sku = _sku_words(algo, [top.chain])
        free = _free_at([top], req.priority)
        if need > top.leaf_count:
            return _same(f"pinned cell {req.pinned} has only {top.leaf_count} {sku}; the job needs {need}")
        if free < need:
            return Reason(f"pinned cell {req.pinned} is busy: {free} of {top.leaf_count} {sku} free, waiting for {need - free}",
                          f"pinned cell {req.pinned} has fewer than {need} free {sku}")
        return _same(f"pinned cell {req.pinned} has {free} free {sku} but no node has {biggest} of them together",
                     f"no node of pinned cell {req.pinned} has {biggest} free {sku} together")
    chains = list(dict.fromkeys(m.chain for m in misses if m.chain))
    sku = _sku_words(algo, chains)
    if req.priority < 0:
        if algo.bad_nodes:
            nodes = [n for c in chains for n in algo.opp_views[c].nodes if n.healthy]
            total = sum(n.leaf_count for n in nodes)
            free = sum(n.leaf_count - n.n_used for n in nodes)
        else:  # every leaf of the chains, counted by their top cells
            total = sum(algo.chain_leaves[c] for c in chains)
            free = total - sum(t.n_used for c in chains for t in algo.chain_tops[c])
        if need > total:
            return _same(f"the cluster has only {total} healthy {sku}; the opportunistic job needs {need}")
        if free < need:
            return Reason(f"opportunistic: {free} of {total} {sku} idle in the cluster, waiting for {need - free} more "
                          f"(opportunistic jobs only use idle cells)",
                          f"opportunistic: fewer than {need} of the cluster's {sku} are idle "
                          f"(opportunistic jobs only use idle cells)")
        nodes = [n for c in chains for n in algo.opp_views[c].nodes if n.healthy]
        best = max((n.leaf_count - n.n_used for n in nodes), default=0)
        if best < biggest:
            return _same(f"no node has {biggest} idle {sku} together for an opportunistic task")
        return _same(f"the idle {sku} are spread too thin for {tasks} tasks of up to {biggest} {sku} at once")
    tops = [t for c in chains for t in algo.vc_tops.get((req.vc, c), ())]
    total = sum(n.leaf_count for n in tops)
    free = _free_at(tops, req.priority)
    idle = sum(n.leaf_count - n.n_used for n in tops)
    if need > total:
        return _same(f"VC {req.vc} has only {total} {sku} in all; the job needs {need}")
    if free < need:
        extra = "" if idle == free else f" ({free - idle} of them held by lower-priority jobs)"
        return Reason(f"VC {req.vc}: {free} of {total} {sku} free{extra}, waiting for {need - free}",
                      f"VC {req.vc} has fewer than {need} free {sku}")
    nodes = [n for c in chains for n in algo.vc_views[(req.vc, c)].nodes]
    best = max((n.leaf_count - n.used_at_or_above(req.priority) for n in nodes), default=0)
    if best < biggest:
        return _same(f"no node of VC {req.vc} has {biggest} free {sku} together")
    return _same(f"VC {req.vc} has {free} free {sku}, but not on few enough nodes for {tasks} tasks of {biggest} each",
                 f"VC {req.vc}'s free {sku} are not on few enough nodes for {tasks} tasks of {biggest} each")


def _same(text: str, steady: str | None = None) -> Reason:
    return Reason(text, steady or text)


def preempting(victims: list[Group]) -> str:
    opp = [g for g in victims if g.cell_priority == OPPORTUNISTIC]
    names = ", ".join(g.name for g in victims[:3]) + (", ..." if len(victims) > 3 else "")
    if len(opp) == len(victims):
        return f"preempting {len(victims)} opportunistic job{'s' if len(victims) != 1 else ''} ({names})"
    return (f"preempting {len(victims)} lower-priority job{'s' if len(victims) != 1 else ''} ({names}); "
            "its cells are reserved meanwhile")
