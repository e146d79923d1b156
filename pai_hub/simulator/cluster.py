"""The simulator's reading of a HiveD config: nodes, GPU models, and each VC's guaranteed cells.

Only what the simulator itself needs: the node list the orchestrator's machine is built with, the
GPU quota of every VC (for the quota-FIFO baseline) and every VC's guaranteed cells expressed as
node-sized bins per chain (for the guarantee-violation check, :mod:`.metrics`). Scheduling stays
with the scheduler. Address inference follows HiveD (notes/hived.md §1.3): a node's name is the
last segment of its node-level cell's address, default addresses are indices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core.nodes import GpuInfo, NodeInfo

__all__ = ["ClusterError", "ClusterModel", "SimNode", "load_config", "parse_cluster"]

DEFAULT_CPU_PER_GPU = 8
DEFAULT_MEMORY_MB_PER_GPU = 65536


class ClusterError(ValueError):
    """A cluster config the simulator cannot use; the message names the key."""


@dataclass(frozen=True)
class SimNode:
    name: str
    chain: str
    leaf_type: str
    gpus: int
    cpu: int
    memory_mb: int


@dataclass(frozen=True)
class _CellType:
    name: str
    child: str | None  # None for a leaf type
    child_number: int
    node_level: bool
    leaves: int
    leaf_type: str
    has_node: bool  # this type or a descendant is node level


@dataclass
class ClusterModel:
    """Nodes in config order; per VC: GPU quota and guaranteed bins ``{chain: [bin sizes]}``."""

    nodes: list[SimNode]
    vc_bins: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        return sum(n.gpus for n in self.nodes)

    @property
    def quotas(self) -> dict[str, int]:
        return {vc: sum(sum(b) for b in chains.values()) for vc, chains in self.vc_bins.items()}

    @property
    def vcs(self) -> list[str]:
        return list(self.vc_bins)

    def node_infos(self) -> list[NodeInfo]:
        """The nodes as the orchestrator's machine and the backends describe them."""
        return [
            NodeInfo(n.name, f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", n.cpu, n.memory_mb,
                     tuple(GpuInfo(g, f"{n.name}-gpu{g}", n.leaf_type, 0, simulated=True) for g in range(n.gpus)))
            for i, n in enumerate(self.nodes)
        ]


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a HiveD config (YAML or JSON; JSON is YAML)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ClusterError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ClusterError(f"{path}: expected a mapping with physicalCluster and virtualClusters")
    return doc


def _memory_mb(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(Mi|M|Gi|G|Ki|K)?\s*", str(value))
    if not m:
        raise ClusterError(f"physicalCluster.skuTypes: cannot read memory {value!r}")
    n, unit = float(m.group(1)), m.group(2) or "Mi"
    return int(n * {"Ki": 1 / 1024, "K": 1 / 1000, "Mi": 1, "M": 1, "Gi": 1024, "G": 1000}[unit])


def _cell_types(physical: dict[str, Any]) -> dict[str, _CellType]:
    raw = physical.get("cellTypes") or {}
    out: dict[str, _CellType] = {}

    def build(name: str, stack: tuple[str, ...]) -> _CellType:
        if name in out:
            return out[name]
        spec = raw.get(name)
        if spec is None:  # a type not defined in cellTypes is a leaf (one device)
            out[name] = _CellType(name, None, 0, False, 1, name, False)
            return out[name]
        if name in stack:
            raise ClusterError(f"physicalCluster.cellTypes.{name}: cycle through {' -> '.join(stack)}")
        child = spec.get("childCellType")
        number = int(spec.get("childCellNumber") or 0)
        if not child or number <= 0:
            raise ClusterError(f"physicalCluster.cellTypes.{name}: needs childCellType and childCellNumber > 0")
        c = build(child, (*stack, name))
        node_level = bool(spec.get("isNodeLevel", False))
        out[name] = _CellType(name, child, number, node_level, c.leaves * number, c.leaf_type,
                              node_level or c.has_node)
        return out[name]

    for name in raw:
        build(name, ())
    return out


def parse_cluster(config: dict[str, Any]) -> ClusterModel:
    """Read ``physicalCluster`` and ``virtualClusters`` of a HiveD config."""
    physical = config.get("physicalCluster")
    if not isinstance(physical, dict):
        raise ClusterError("physicalCluster: missing")
    types = _cell_types(physical)
    skus = physical.get("skuTypes") or {}
    nodes: list[SimNode] = []
    pinned: dict[str, tuple[str, str]] = {}  # pinnedCellId -> (chain, cell type)
    node_of_type: dict[str, _CellType] = {}  # chain -> its node-level type

    def sku(leaf: str) -> tuple[int, int]:
        s = skus.get(leaf) or {}
        per_gpu = float(s.get("gpu") or 1)
        cpu = float(s.get("cpu", DEFAULT_CPU_PER_GPU)) / per_gpu
        mem = _memory_mb(s.get("memory", DEFAULT_MEMORY_MB_PER_GPU)) / per_gpu
        return int(cpu), int(mem)

    def walk(spec: dict[str, Any], t: _CellType, chain: str, address: str, default_index: int, where: str) -> None:
        if spec.get("pinnedCellId"):
            pinned[str(spec["pinnedCellId"])] = (chain, t.name)
        if t.node_level:
            name = address.rsplit("/", 1)[-1]
            cpu, mem = sku(t.leaf_type)
            nodes.append(SimNode(name, chain, t.leaf_type, t.leaves, cpu * t.leaves, mem * t.leaves))
            node_of_type.setdefault(chain, t)
            return
        if not t.has_node:
            return  # below node level: part of the node already recorded
        children = spec.get("cellChildren") or [{} for _ in range(t.child_number)]
        child_type = types[t.child] if t.child else None
        if child_type is None:
            raise ClusterError(f"{where}: cell type {t.name} has no node-level descendant")
        for j, child in enumerate(children):
            child = child or {}
            index = default_index * t.child_number + j
            child_address = f"{address}/{child.get('cellAddress', index)}"
            walk(child, child_type, chain, child_address, index, f"{where}.cellChildren[{j}]")

    for i, top in enumerate(physical.get("physicalCells") or []):
        where = f"physicalCluster.physicalCells[{i}]"
        name = top.get("cellType")
        if name not in types:
            raise ClusterError(f"{where}.cellType: unknown cell type {name!r}")
        t = types[name]
        if not t.has_node:
            raise ClusterError(f"{where}.cellType: top cell must be node-level or above: {name}")
        walk(top, t, name, str(top.get("cellAddress", i)), i, where)
    if not nodes:
        raise ClusterError("physicalCluster.physicalCells: no nodes")
    seen: set[str] = set()
    for n in nodes:
        if n.name in seen:
            raise ClusterError(f"physicalCluster.physicalCells: node {n.name!r} appears twice")
        seen.add(n.name)

    def bins_of(chain: str, t: _CellType, count: int) -> list[int]:
        node_t = node_of_type.get(chain)
        if t.node_level or node_t is None or not t.has_node:
            return [t.leaves] * count  # a node, or a cell below node level: one bin
        return [node_t.leaves] * (count * (t.leaves // node_t.leaves))

    vc_bins: dict[str, dict[str, list[int]]] = {}
    for vc, spec in (config.get("virtualClusters") or {}).items():
        vc = str(vc)
        chains: dict[str, list[int]] = {}
        for k, cell in enumerate((spec or {}).get("virtualCells") or []):
            where = f"virtualClusters.{vc}.virtualCells[{k}]"
            path = str(cell.get("cellType", "")).split(".")
            chain, last = path[0], path[-1]
            if chain not in node_of_type:
                raise ClusterError(f"{where}.cellType: chain {chain!r} does not exist in physicalCluster")
            if last not in types:
                raise ClusterError(f"{where}.cellType: cell type {last!r} is not defined in cellTypes")
            chains.setdefault(chain, []).extend(bins_of(chain, types[last], int(cell.get("cellNumber", 1))))
        for k, cell in enumerate((spec or {}).get("pinnedCells") or []):
            pid = str(cell.get("pinnedCellId"))
            if pid not in pinned:
                raise ClusterError(f"virtualClusters.{vc}.pinnedCells[{k}]: pinned cell {pid!r} not found")
            chain, tname = pinned[pid]
            chains.setdefault(chain, []).extend(bins_of(chain, types[tname], 1))
        vc_bins[vc] = chains
    return ClusterModel(nodes, vc_bins, config)
