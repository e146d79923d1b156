"""HiveD configuration: ``physicalCluster`` (skuTypes, cellTypes, physicalCells) and ``virtualClusters``.

Read the way HiveD reads its ``hivedscheduler.yaml`` (notes/hived.md §1), plus OpenPAI's ``skuTypes``.
Every error is a :class:`HivedConfigError` naming the key path and the reason; nothing here crashes
on a bad config where HiveD panicked with a nil dereference.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml


class HivedConfigError(ValueError):
    """An invalid HiveD config: ``path`` is the key path (``virtualClusters.vc1.virtualCells[0].cellType``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class SkuType:
    """OpenPAI's resources of one leaf cell: GPUs, CPUs and memory (MiB)."""

    gpu: float
    cpu: float
    memory_mb: float


@dataclass(frozen=True)
class CellTypeSpec:
    child_cell_type: str
    child_cell_number: int
    is_node_level: bool = False


@dataclass
class PhysicalCellSpec:
    """One physical cell with its inferred address (``parent/child``) and children."""

    cell_type: str
    address: str
    pinned_cell_id: str | None = None
    children: list[PhysicalCellSpec] = field(default_factory=list)


@dataclass(frozen=True)
class VirtualCellSpec:
    chain: str
    cell_type: str
    cell_number: int


@dataclass
class VirtualClusterSpec:
    virtual_cells: list[VirtualCellSpec] = field(default_factory=list)
    pinned_cells: list[str] = field(default_factory=list)


@dataclass
class ChainSpec:
    """A cell chain (named after its top cell type): level 1 = leaf ... ``top_level``."""

    name: str
    types: list[str]  # index level-1 -> cell type name
    child_number: list[int]  # index level-1 -> children of a cell at that level (0 for leaves)
    leaf_number: list[int]  # index level-1 -> leaves inside a cell at that level
    node_level: int  # the level whose cells are one node each
    leaf_type: str

    @property
    def top_level(self) -> int:
        return len(self.types)

    def level_of(self, cell_type: str) -> int | None:
        try:
            return self.types.index(cell_type) + 1
        except ValueError:
            return None


@dataclass
class HivedConfig:
    sku_types: dict[str, SkuType]
    cell_types: dict[str, CellTypeSpec]
    physical_cells: list[PhysicalCellSpec]
    virtual_clusters: dict[str, VirtualClusterSpec]
    chains: dict[str, ChainSpec]
    raw: dict[str, Any]

    def leaf_types(self) -> list[str]:
        seen: list[str] = []
        for chain in self.chains.values():
            if chain.leaf_type not in seen:
                seen.append(chain.leaf_type)
        return seen

    def chains_of_leaf_type(self, leaf_type: str) -> list[str]:
        """Chains holding ``leaf_type``, in descending name order (what HiveD's own test fixes, §2.15)."""
        return sorted((c.name for c in self.chains.values() if c.leaf_type == leaf_type), reverse=True)


_MEM_UNITS = {"": 1 / (1024 * 1024), "ki": 1 / 1024, "mi": 1, "gi": 1024, "ti": 1024 * 1024,
              "k": 1000 / (1024 * 1024), "m": 1e6 / (1024 * 1024), "g": 1e9 / (1024 * 1024)}


def parse_memory_mb(value: Any, path: str) -> float:
    """``8192Mi`` / ``8Gi`` / a bare number of MiB -> MiB."""
    if isinstance(value, bool):
        raise HivedConfigError(path, f"memory must be a quantity such as 8192Mi, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTkmgt]i?)?\s*", str(value))
    if not m:
        raise HivedConfigError(path, f"memory must be a quantity such as 8192Mi, got {value!r}")
    unit = (m.group(2) or "").lower()
    if unit == "" and str(value).strip().isdigit():  # bare integer string: bytes in K8s terms
        return float(m.group(1)) * _MEM_UNITS[""]
    return float(m.group(1)) * _MEM_UNITS[unit]


def leaf_cells_for(gpu: float, cpu: float, memory_mb: float, sku: SkuType | None) -> int:
    """OpenPAI's leafCellNumber: ``max(ceil(gpu/sku.gpu), ceil(cpu/sku.cpu), ceil(mem/sku.memory))``.

    Zero requests are skipped; a request of a resource the SKU has none of is an error. Without
    a SKU the GPU count is used. A pod never takes fewer than one leaf cell (HiveD requires
    ``leafCellNumber > 0``), so a CPU-only pod takes one leaf cell of its SKU.
    """
    if sku is None:
        return max(1, math.ceil(gpu))
    need = 1
    for req, have, name in ((gpu, sku.gpu, "GPU"), (cpu, sku.cpu, "CPU"), (memory_mb, sku.memory_mb, "memory")):
        if req <= 0:
            continue
        if have <= 0:
            raise ValueError(f"the SKU has no {name} but the task asks for {req:g}")
        need = max(need, math.ceil(req / have - 1e-9))
    return need


def _as_mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HivedConfigError(path, f"must be a mapping, got {type(value).__name__}")
    return value


def _as_list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise HivedConfigError(path, f"must be a list, got {type(value).__name__}")
    return value


def _as_int(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HivedConfigError(path, f"must be an integer, got {value!r}")
    if value < minimum:
        raise HivedConfigError(path, f"must be at least {minimum}, got {value}")
    return value


def load_config(source: str | dict[str, Any], *, check_safety: bool = True) -> HivedConfig:
    """Parse a HiveD config from YAML text or an already-loaded dict; raise :class:`HivedConfigError`."""
    if isinstance(source, str):
        try:
            raw = yaml.safe_load(source)
        except yaml.YAMLError as e:
            raise HivedConfigError("", f"Failed to read config file: {e}") from None
    else:
        raw = source
    raw = _as_mapping(raw, "")
    pc = _as_mapping(raw.get("physicalCluster"), "physicalCluster")  # HiveD's default: an empty cluster
    sku_types = _parse_skus(pc.get("skuTypes"))
    cell_types = _parse_cell_types(pc.get("cellTypes"))
    chains = _build_chains(cell_types)
    physical = _parse_physical_cells(pc.get("physicalCells"), cell_types, chains)
    used_chains = {p.cell_type for p in physical}
    chains = {name: c for name, c in chains.items() if name in used_chains}
    pinned = _pinned_index(physical, chains)
    vcs = _parse_virtual_clusters(raw.get("virtualClusters"), chains, pinned)
    config = HivedConfig(sku_types, cell_types, physical, vcs, chains, raw)
    if check_safety:
        check_vc_safety(config)
    return config


def _parse_skus(value: Any) -> dict[str, SkuType]:
    skus: dict[str, SkuType] = {}
    for name, spec in _as_mapping(value, "physicalCluster.skuTypes").items():
        path = f"physicalCluster.skuTypes.{name}"
        spec = _as_mapping(spec, path)
        vals = []
        for key in ("gpu", "cpu"):
            v = spec.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise HivedConfigError(f"{path}.{key}", f"must be a non-negative number, got {v!r}")
            vals.append(float(v))
        mem = parse_memory_mb(spec.get("memory", 0), f"{path}.memory")
        skus[str(name)] = SkuType(vals[0], vals[1], mem)
    return skus


def _parse_cell_types(value: Any) -> dict[str, CellTypeSpec]:
    types: dict[str, CellTypeSpec] = {}
    for name, spec in _as_mapping(value, "physicalCluster.cellTypes").items():
        path = f"physicalCluster.cellTypes.{name}"
        spec = _as_mapping(spec, path)
        child = spec.get("childCellType")
        if not isinstance(child, str) or not child:
            raise HivedConfigError(f"{path}.childCellType", "is required (the type of the child cells)")
        number = _as_int(spec.get("childCellNumber"), f"{path}.childCellNumber", 1)
        node = spec.get("isNodeLevel", False)
        if not isinstance(node, bool):
            raise HivedConfigError(f"{path}.isNodeLevel", f"must be true or false, got {node!r}")
        types[str(name)] = CellTypeSpec(child, number, node)
    return types


def _build_chains(cell_types: dict[str, CellTypeSpec]) -> dict[str, ChainSpec]:
    chains: dict[str, ChainSpec] = {}
    for top in cell_types:
        seq = [top]
        while seq[-1] in cell_types:
            nxt = cell_types[seq[-1]].child_cell_type
            if nxt in seq:
                raise HivedConfigError(f"physicalCluster.cellTypes.{seq[-1]}.childCellType",
                                       f"cell types form a cycle through {nxt}")
            seq.append(nxt)
        types = list(reversed(seq))  # level 1 = leaf
        child_number = [0] + [cell_types[t].child_cell_number for t in types[1:]]
        leaf_number = [1]
        for n in child_number[1:]:
            leaf_number.append(leaf_number[-1] * n)
        node_levels = [i + 1 for i, t in enumerate(types) if t in cell_types and cell_types[t].is_node_level]
        if len(node_levels) > 1:
            raise HivedConfigError(f"physicalCluster.cellTypes.{top}",
                                   f"has more than one node-level cell type below it: {[types[i - 1] for i in node_levels]}")
        node_level = node_levels[0] if node_levels else 0
        chains[top] = ChainSpec(top, types, child_number, leaf_number, node_level, types[0])
    return chains


def _parse_physical_cells(value: Any, cell_types: dict[str, CellTypeSpec],
                          chains: dict[str, ChainSpec]) -> list[PhysicalCellSpec]:
    out: list[PhysicalCellSpec] = []
    seen_leaves: dict[tuple[str, int], str] = {}
    for i, spec in enumerate(_as_list(value, "physicalCluster.physicalCells")):
        path = f"physicalCluster.physicalCells[{i}]"
        spec = _as_mapping(spec, path)
        ctype = spec.get("cellType")
        if not isinstance(ctype, str) or ctype not in cell_types:
            raise HivedConfigError(f"{path}.cellType", f"physicalCells contains unknown cellType: {ctype}")
        chain = chains[ctype]
        if chain.node_level == 0:
            raise HivedConfigError(f"{path}.cellType", f"top cell must be node-level or above: {ctype}")
        addr = spec.get("cellAddress")
        address = str(i) if addr in (None, "") else str(addr)
        out.append(_build_physical(spec, chain, chain.top_level, address, i, None, path, seen_leaves))
    return out


def _build_physical(spec: dict[str, Any], chain: ChainSpec, level: int, address: str, default_index: int,
                    node: str | None, path: str, seen_leaves: dict[tuple[str, int], str]) -> PhysicalCellSpec:
    pinned = spec.get("pinnedCellId") or None
    if pinned is not None:
        pinned = str(pinned)
    cell = PhysicalCellSpec(chain.types[level - 1], address, pinned)
    if level == chain.node_level:
        node = address.rsplit("/", 1)[-1]
        default_index = 0  # leaf indices restart inside a node
    if level == 1:
        last = address.rsplit("/", 1)[-1]
        try:
            index = int(last)
        except ValueError:
            raise HivedConfigError(f"{path}.cellAddress",
                                   f"a leaf cell's address must be an integer (its device index), got {last!r}") from None
        key = (node or "", index)
        if key in seen_leaves:
            raise HivedConfigError(f"{path}.cellAddress",
                                   f"leaf {index} of node {node} is defined twice ({seen_leaves[key]} and {address})")
        seen_leaves[key] = address
        if spec.get("cellChildren"):
            raise HivedConfigError(f"{path}.cellChildren", f"a leaf cell ({cell.cell_type}) has no children")
        return cell
    n = chain.child_number[level - 1]
    children = _as_list(spec.get("cellChildren"), f"{path}.cellChildren")
    if children and len(children) != n:
        raise HivedConfigError(f"{path}.cellChildren",
                               f"{cell.cell_type} has {n} children (childCellNumber) but {len(children)} are listed")
    if not children:
        children = [{} for _ in range(n)]
    for j, child in enumerate(children):
        cpath = f"{path}.cellChildren[{j}]"
        child = _as_mapping(child, cpath)
        idx = default_index * n + j
        given = child.get("cellAddress")
        caddr = f"{address}/{idx if given in (None, '') else given}"
        cell.children.append(_build_physical(child, chain, level - 1, caddr, idx, node, cpath, seen_leaves))
    return cell


def _pinned_index(physical: list[PhysicalCellSpec], chains: dict[str, ChainSpec]) -> dict[str, tuple[str, int]]:
    """pinnedCellId -> (chain, level)."""
    out: dict[str, tuple[str, int]] = {}

    def walk(c: PhysicalCellSpec, chain: ChainSpec, level: int, path: str) -> None:
        if c.pinned_cell_id:
            if c.pinned_cell_id in out:
                raise HivedConfigError(f"{path}.pinnedCellId", f"pinnedCellId {c.pinned_cell_id} is used twice")
            out[c.pinned_cell_id] = (chain.name, level)
        for j, ch in enumerate(c.children):
            walk(ch, chain, level - 1, f"{path}.cellChildren[{j}]")

    for i, top in enumerate(physical):
        ch = chains[top.cell_type]
        walk(top, ch, ch.top_level, f"physicalCluster.physicalCells[{i}]")
    return out


def _parse_virtual_clusters(value: Any, chains: dict[str, ChainSpec],
                            pinned: dict[str, tuple[str, int]]) -> dict[str, VirtualClusterSpec]:
    vcs: dict[str, VirtualClusterSpec] = {}
    pinned_owner: dict[str, str] = {}
    for vc, spec in _as_mapping(value, "virtualClusters").items():
        vc = str(vc)
        path = f"virtualClusters.{vc}"
        spec = _as_mapping(spec, path)
        out = VirtualClusterSpec()
        for i, cell in enumerate(_as_list(spec.get("virtualCells"), f"{path}.virtualCells")):
            cpath = f"{path}.virtualCells[{i}]"
            cell = _as_mapping(cell, cpath)
            ctype = cell.get("cellType")
            if not isinstance(ctype, str) or not ctype:
                raise HivedConfigError(f"{cpath}.cellType", "is required (a dotted path starting with a chain)")
            parts = ctype.split(".")
            chain_name, last = parts[0], parts[-1]
            if chain_name not in chains:
                raise HivedConfigError(f"{cpath}.cellType",
                                       f"Illegal initial VC assignment: Chain {chain_name} does not exists in physical cluster")
            chain = chains[chain_name]
            if chain.level_of(last) is None:
                raise HivedConfigError(f"{cpath}.cellType",
                                       f"cellType {last} in VirtualCells is not found in cell types definition of chain {chain_name}")
            number = _as_int(cell.get("cellNumber", 0), f"{cpath}.cellNumber", 0)
            out.virtual_cells.append(VirtualCellSpec(chain_name, last, number))
        for i, pc in enumerate(_as_list(spec.get("pinnedCells"), f"{path}.pinnedCells")):
            ppath = f"{path}.pinnedCells[{i}]"
            pc = _as_mapping(pc, ppath)
            pid = pc.get("pinnedCellId")
            if pid is None or str(pid) not in pinned:
                raise HivedConfigError(f"{ppath}.pinnedCellId", f"pinned cell not found in physicalCells: VC: {vc}, ID: {pid}")
            pid = str(pid)
            if pid in pinned_owner:
                raise HivedConfigError(f"{ppath}.pinnedCellId",
                                       f"pinned cell {pid} is already assigned to VC {pinned_owner[pid]}")
            pinned_owner[pid] = vc
            out.pinned_cells.append(pid)
        vcs[vc] = out
    return vcs


def _pinned_levels(config: HivedConfig) -> dict[str, tuple[str, int]]:
    return _pinned_index(config.physical_cells, config.chains)


def check_vc_safety(config: HivedConfig) -> None:
    """HiveD's initial VC-safety check (``initCellNums``): the VCs together must fit the cluster.

    Per chain, top level down: ``avail[top]`` = number of top cells; ``left = avail - need``
    (need = all VCs' cells of that level, pinned included); ``avail[level-1] = left * children``.
    Raises :class:`HivedConfigError` when some level is over-committed.
    """
    pinned = _pinned_levels(config)
    need: dict[str, dict[int, int]] = {c: {} for c in config.chains}
    where: dict[tuple[str, int], list[str]] = {}
    for vc, spec in config.virtual_clusters.items():
        for cell in spec.virtual_cells:
            lvl = config.chains[cell.chain].level_of(cell.cell_type)
            assert lvl is not None
            need[cell.chain][lvl] = need[cell.chain].get(lvl, 0) + cell.cell_number
            where.setdefault((cell.chain, lvl), []).append(vc)
        for pid in spec.pinned_cells:
            chain, lvl = pinned[pid]
            need[chain][lvl] = need[chain].get(lvl, 0) + 1
            where.setdefault((chain, lvl), []).append(vc)
    tops: dict[str, int] = {}
    for top in config.physical_cells:
        tops[top.cell_type] = tops.get(top.cell_type, 0) + 1
    for name, chain in config.chains.items():
        avail = tops.get(name, 0)
        for lvl in range(chain.top_level, 0, -1):
            want = need[name].get(lvl, 0)
            left = avail - want
            if left < 0:
                vcs = ", ".join(sorted(set(where.get((name, lvl), []))))
                raise HivedConfigError(
                    "virtualClusters",
                    f"Illegal initial VC assignment: Insufficient physical cells at chain {name} level {lvl}: "
                    f"{want} needed, {avail} available (cell type {chain.types[lvl - 1]}, asked by {vcs})")
            if lvl > 1:
                avail = left * chain.child_number[lvl - 1]
