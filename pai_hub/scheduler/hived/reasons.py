"""Waiting reasons in words a researcher understands, built from the facts of a failed search."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cells import OPPORTUNISTIC

if TYPE_CHECKING:
    from .algorithm import Group, GroupRequest, HivedAlgorithm, Miss


def _sku_words(algo: HivedAlgorithm, chains: list[str]) -> str:
    types = list(dict.fromkeys(algo.chains[c].leaf_type for c in chains))
    return "/".join(types) if types else "cells"


def _free_at(cells, p: int) -> int:
    return sum(c.leaf_count - c.used_at_or_above(p) for c in cells)


def explain(algo: HivedAlgorithm, req: GroupRequest, misses: list[Miss]) -> str:
    if not misses:
        return "waiting to be scheduled"
    for m in misses:
        if m.scope == "invalid":
            return m.text
    need = sum(req.pods)
    biggest = max(req.pods)
    tasks = len(req.pods)
    for m in misses:
        if m.failure is not None and m.failure.kind == "bad":
            node = m.failure.node
            where = node.physical.node if node is not None and node.is_virtual and node.physical is not None else (
                node.node if node is not None else None)
            return (f"the only place for it needs node {where}, which is unhealthy; waiting for it to recover "
                    f"or for other cells to free up") if where else "the only place for it is on unhealthy hardware"
    if any(m.scope == "mapping" for m in misses):
        return (f"VC {req.vc} has room on paper, but its free cells can only be found on unhealthy or reserved "
                f"hardware right now; waiting for a node to recover or for cells to free up")
    if req.pinned:
        top = algo.pinned_virtual[req.vc][req.pinned]
        nodes = algo.pinned_views[(req.vc, req.pinned)].nodes
        sku = _sku_words(algo, [top.chain])
        free = _free_at(nodes, req.priority)
        if need > top.leaf_count:
            return f"pinned cell {req.pinned} has only {top.leaf_count} {sku}; the job needs {need}"
        if free < need:
            return f"pinned cell {req.pinned} is busy: {free} of {top.leaf_count} {sku} free, waiting for {need - free}"
        return f"pinned cell {req.pinned} has {free} free {sku} but no node has {biggest} of them together"
    chains = list(dict.fromkeys(m.chain for m in misses if m.chain))
    sku = _sku_words(algo, chains)
    if req.priority < 0:
        nodes = [n for c in chains for n in algo.opp_views[c].nodes]
        total = sum(n.leaf_count for n in nodes if n.healthy)
        free = sum(n.leaf_count - n.n_used for n in nodes if n.healthy)
        if need > total:
            return f"the cluster has only {total} healthy {sku}; the opportunistic job needs {need}"
        if free < need:
            return (f"opportunistic: {free} of {total} {sku} idle in the cluster, waiting for {need - free} more "
                    f"(opportunistic jobs only use idle cells)")
        best = max((n.leaf_count - n.n_used for n in nodes if n.healthy), default=0)
        if best < biggest:
            return f"no node has {biggest} idle {sku} together for an opportunistic task"
        return f"the idle {sku} are spread too thin for {tasks} tasks of up to {biggest} {sku} at once"
    nodes = [n for c in chains for n in algo.vc_views[(req.vc, c)].nodes]
    total = sum(n.leaf_count for n in nodes)
    free = _free_at(nodes, req.priority)
    idle = sum(n.leaf_count - n.n_used for n in nodes)
    if need > total:
        return f"VC {req.vc} has only {total} {sku} in all; the job needs {need}"
    if free < need:
        extra = "" if idle == free else f" ({free - idle} of them held by lower-priority jobs)"
        return f"VC {req.vc}: {free} of {total} {sku} free{extra}, waiting for {need - free}"
    best = max((n.leaf_count - n.used_at_or_above(req.priority) for n in nodes), default=0)
    if best < biggest:
        return f"no node of VC {req.vc} has {biggest} free {sku} together"
    return f"VC {req.vc} has {free} free {sku}, but not on few enough nodes for {tasks} tasks of {biggest} each"


def preempting(victims: list[Group]) -> str:
    opp = [g for g in victims if g.cell_priority == OPPORTUNISTIC]
    names = ", ".join(g.name for g in victims[:3]) + (", ..." if len(victims) > 3 else "")
    if len(opp) == len(victims):
        return f"preempting {len(victims)} opportunistic job{'s' if len(victims) != 1 else ''} ({names})"
    return (f"preempting {len(victims)} lower-priority job{'s' if len(victims) != 1 else ''} ({names}); "
            "its cells are reserved meanwhile")
