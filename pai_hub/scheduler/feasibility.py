"""Refuse at submit what a VC could never hold, naming the field: better than waiting forever.

OpenPAI's REST server did this for HiveD ("Job requests N SKUs, exceeds maximum M SKUs in VC").
We check against the VC's cells in the cluster config: the gang's leaf cells in all, and its
largest task against the largest cell of the VC that fits in one node (a VC owning two 2-GPU
cells cannot hold a 4-GPU task, even if the physical node could). Opportunistic gangs are checked
against the whole cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import GangRequest, PodRequest


def _cells(config: Any, gang: GangRequest) -> list[tuple[str, int, int]]:
    """(leaf type, leaves in all, leaves within one node) for each cell the gang may use."""
    out = []
    if gang.priority < 0:
        for chain in config.chains.values():
            nodes = sum(1 for c in config.physical_cells if c.cell_type == chain.name)
            per_node = chain.leaf_number[chain.node_level - 1]
            top = chain.leaf_number[chain.top_level - 1]
            out.append((chain.leaf_type, nodes * top, per_node))
        return out
    spec = config.virtual_clusters.get(gang.virtual_cluster)
    for cell in spec.virtual_cells if spec else ():
        chain = config.chains[cell.chain]
        level = chain.level_of(cell.cell_type) or chain.top_level
        leaves = chain.leaf_number[level - 1]
        out.append((chain.leaf_type, cell.cell_number * leaves, chain.leaf_number[min(level, chain.node_level) - 1]))
    return out


def infeasible_reason(gang: GangRequest, config: Any, leaf_cells: Callable[[GangRequest, PodRequest], int],
                      ) -> str | None:
    if gang.pinned_cell_id:
        return None  # a pinned cell's size is checked by the scheduler's own validation
    cells = [c for c in _cells(config, gang) if gang.leaf_cell_type in (None, c[0])]
    where = "the cluster" if gang.priority < 0 else f"VC {gang.virtual_cluster}"
    label = gang.leaf_cell_type or "leaf cells"
    need = [leaf_cells(gang, p) for p in gang.pods]
    capacity = sum(c[1] for c in cells)
    if sum(need) > capacity:
        return f"the job needs {sum(need)} {label} together, more than the {capacity} of {where}"
    largest = max((c[2] for c in cells), default=0)
    if max(need, default=0) > largest:
        return f"a task needs {max(need)} {label} in one node; the largest such cell of {where} has {largest}"
    return None
