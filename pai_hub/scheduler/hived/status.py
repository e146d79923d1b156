"""Read-only views of the scheduler's cells for the VC and cluster routes (shapes: docs/scheduler.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..base import ClusterStatus, NodeStatus, SkuUse, VcStatus
from .cells import OPPORTUNISTIC

if TYPE_CHECKING:
    from .algorithm import HivedAlgorithm


def _sku_entry() -> dict[str, int]:
    return {"capacity": 0, "used": 0, "free": 0}


def vc_status(algo: HivedAlgorithm, vc: str) -> VcStatus:
    """``{sku: {capacity, used, free, bad, opportunistic}, "nodes": {node: {sku: {capacity, used, free}}}}``.

    capacity = leaf cells the VC is guaranteed (its virtual cells, pinned included); used = leaves
    used (or reserved) by its guaranteed jobs; bad = free leaves bound to unhealthy hardware (doomed
    or inside a bad node); free = capacity - used - bad; opportunistic = leaves its opportunistic
    jobs use anywhere in the cluster. ``nodes`` lists the physical nodes its cells are bound to now."""
    if vc not in algo.vc_cells:
        raise KeyError(vc)
    out: dict[str, Any] = {}
    nodes: dict[str, dict[str, dict[str, int]]] = {}
    for leaf in algo.vc_leaf_cells(vc):
        sku = algo.chains[leaf.chain].leaf_type
        e = out.setdefault(sku, {"capacity": 0, "used": 0, "free": 0, "bad": 0, "opportunistic": 0})
        e["capacity"] += 1
        p = leaf.physical
        anc = leaf
        while p is None and anc.parent is not None:
            anc = anc.parent
            p = anc.physical
        bad = p is not None and p.n_bad > 0 and (leaf.physical is None or leaf.physical.n_bad > 0)
        if leaf.n_used:
            e["used"] += 1
        elif bad:
            e["bad"] += 1
        else:
            e["free"] += 1
        if leaf.physical is not None and leaf.physical.node is not None:
            n = nodes.setdefault(leaf.physical.node, {}).setdefault(sku, _sku_entry())
            n["capacity"] += 1
            n["used"] += 1 if leaf.n_used else 0
            n["free"] = n["capacity"] - n["used"]
    for g in algo.groups.values():
        if g.req.vc == vc and g.virt is None:
            for p in g.flat_phys():
                sku = algo.chains[p.chain].leaf_type
                out.setdefault(sku, {"capacity": 0, "used": 0, "free": 0, "bad": 0, "opportunistic": 0})
                out[sku]["opportunistic"] += 1
    out["nodes"] = nodes
    return out


def cluster_status(algo: HivedAlgorithm) -> ClusterStatus:
    """``{"nodes": {node: {"healthy", "skus": {sku: {capacity, used, free, opportunistic}}}},
    "skus": {sku: {capacity, used, free, bad}}, "vcs": {vc: {sku: {capacity, used, free}}}}``."""
    nodes: dict[str, NodeStatus] = {}
    skus: dict[str, SkuUse] = {}
    for node, leaves in algo.node_leaves.items():
        healthy = node not in algo.bad_nodes
        entry: NodeStatus = {"healthy": healthy, "skus": {}}
        for leaf in leaves:
            sku = algo.chains[leaf.chain].leaf_type
            e = entry["skus"].setdefault(sku, {"capacity": 0, "used": 0, "free": 0, "opportunistic": 0})
            t = skus.setdefault(sku, {"capacity": 0, "used": 0, "free": 0, "bad": 0})
            e["capacity"] += 1
            t["capacity"] += 1
            if leaf.n_used:
                e["used"] += 1
                t["used"] += 1
                if leaf.used_at.get(OPPORTUNISTIC):
                    e["opportunistic"] += 1
            else:
                e["free"] += 1
                if healthy:
                    t["free"] += 1
                else:
                    t["bad"] += 1
        nodes[node] = entry
    vcs = {}
    for vc in algo.vcs:
        st = vc_status(algo, vc)
        vcs[vc] = {k: {"capacity": v["capacity"], "used": v["used"], "free": v["free"]} for k, v in st.items() if k != "nodes"}
    return {"nodes": nodes, "skus": skus, "vcs": vcs}
