"""A HiveD cluster config for the local machine, when the admin has not written one.

Each node gets one cell chain per GPU model (a leaf cell = one GPU) and one chain of CPU slots (a
leaf cell = one CPU), and the ``default`` VC is given all of them. A GPU task then holds GPUs and
a CPU-only task holds CPU slots (see :mod:`.requests`), each counted against the VC's quota; a job
mixing both (parameter servers with ``gpu: 0``, workers with GPUs) gets one gang per chain.
On one machine the two chains share the node's CPUs: the CPUs of a GPU SKU only size the request.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from ..core.nodes import NodeInfo

CPU_SKU = "cpu"
CPU_SLOT_BASE = 1000


def _type_name(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", model).strip("-") or "gpu"


def local_cluster_config(nodes: list[NodeInfo], vc: str = "default") -> dict[str, Any]:
    """HiveD's ``physicalCluster`` + ``virtualClusters`` for ``nodes`` (OpenPAI's form, with skuTypes)."""
    sku_types: dict[str, Any] = {}
    cell_types: dict[str, Any] = {}
    physical: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for node in nodes:
        models = Counter(_type_name(g.model) for g in node.gpus)
        for model, n in models.items():
            node_type = f"{model}-NODE"
            sku_types.setdefault(model, {"gpu": 1, "cpu": max(1, node.cpu // max(1, len(node.gpus))),
                                         "memory": f"{max(1, node.memory_mb // max(1, len(node.gpus)))}Mi"})
            cell_types.setdefault(node_type, {"childCellType": model, "childCellNumber": n, "isNodeLevel": True})
            physical.append({"cellType": node_type, "cellAddress": node.name})
            counts[node_type] += 1
        cpu_type = f"CPU{node.cpu}-NODE"
        sku_types.setdefault(CPU_SKU, {"gpu": 0, "cpu": 1, "memory": f"{max(1, node.memory_mb // node.cpu)}Mi"})
        cell_types.setdefault(cpu_type, {"childCellType": CPU_SKU, "childCellNumber": node.cpu, "isNodeLevel": True})
        # leaf indices are unique per node across chains: CPU slots are numbered from 1000
        physical.append({"cellType": cpu_type, "cellAddress": node.name,
                         "cellChildren": [{"cellAddress": str(CPU_SLOT_BASE + i)} for i in range(node.cpu)]})
        counts[cpu_type] += 1
    return {
        "physicalCluster": {"skuTypes": sku_types, "cellTypes": cell_types, "physicalCells": physical},
        "virtualClusters": {vc: {"virtualCells": [{"cellType": t, "cellNumber": n} for t, n in counts.items()]}},
    }
