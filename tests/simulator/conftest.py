from __future__ import annotations

SCHEDULERS_WITH_VCS = ["fifo", "hived"]


def two_node_config(gpus: int = 4, vcs: tuple[str, ...] = ("a", "b")) -> dict:
    """Two nodes n0, n1 of ``gpus`` GPUs; each VC owns one node-level cell."""
    return {
        "physicalCluster": {
            "cellTypes": {"NODE": {"childCellType": "GPU", "childCellNumber": gpus, "isNodeLevel": True}},
            "physicalCells": [{"cellType": "NODE", "cellAddress": f"n{i}"} for i in range(len(vcs))],
        },
        "virtualClusters": {vc: {"virtualCells": [{"cellType": "NODE", "cellNumber": 1}]} for vc in vcs},
    }
