"""HiveD configuration: ``physicalCluster`` (skuTypes, cellTypes, physicalCells) and ``virtualClusters``.

Read the way HiveD reads its ``hivedscheduler.yaml`` (notes/hived.md §1), plus OpenPAI's ``skuTypes``.
The shape of the file is checked by pydantic models, the rest (chains, addresses, pinned cells, VC
safety) by code after them. Every error is a :class:`HivedConfigError` naming the key path and the
reason (and what the key should hold); nothing here crashes on a bad config where HiveD panicked
with a nil dereference.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from ...protocol.field_errors import field_errors, keys_as_text


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
    _chains_by_leaf_type: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    _leaf_types: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    def leaf_types(self) -> tuple[str, ...]:
        """Every leaf cell type, in chain order. Asked for every opportunistic search; worked out
        once, as :meth:`chains_of_leaf_type` (a loaded config does not change)."""
        if self._leaf_types is None:
            self._leaf_types = tuple(dict.fromkeys(chain.leaf_type for chain in self.chains.values()))
        return self._leaf_types

    def chains_of_leaf_type(self, leaf_type: str) -> tuple[str, ...]:
        """Chains holding ``leaf_type``, in descending name order (what HiveD's own test fixes, §2.15).
        Asked for every gang placed; a config does not change once loaded, so it is worked out once."""
        found = self._chains_by_leaf_type.get(leaf_type)
        if found is None:
            found = self._chains_by_leaf_type[leaf_type] = tuple(
                sorted((c.name for c in self.chains.values() if c.leaf_type == leaf_type), reverse=True))
        return found


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


# -- the file's shape, as pydantic models ---------------------------------------------------------
# Unknown keys are ignored, as HiveD's Go YAML decoding ignores them (its config file also holds the
# scheduler's own settings). What the shape cannot say (chains, addresses, pinned cells, VC safety)
# is checked after it, in code, with the same key paths.

_HINTS = {
    "childCellType": "the type of the child cells",
    "childCellNumber": "how many child cells one cell of this type has",
    "cellType": "a dotted path starting with a chain, such as POOL.K80-NODE",
    "cellNumber": "how many cells of that type the virtual cluster gets",
    "isNodeLevel": "whether one cell of this type is one node",
    "gpu": "GPUs per leaf cell",
    "cpu": "CPUs per leaf cell",
    "memory": "memory per leaf cell, a quantity such as 8192Mi",
    "pinnedCellId": "the pinnedCellId of a cell in physicalCells",
}


def _number_as_text(value: Any) -> Any:
    """An id written as a number (``pinnedCellId: 7``) is that number's text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _none_as_empty_list(value: Any) -> Any:
    return [] if value is None else value


def _memory(value: Any) -> float:
    return parse_memory_mb(value, "")


_Count = Annotated[StrictInt, Field(ge=0)]
_Amount = Annotated[StrictFloat, Field(ge=0)]  # an int is a float here; a bool or "1" is not
_Name = Annotated[StrictStr, Field(min_length=1)]


class _Section(BaseModel):
    """A mapping of the file (fields are named by HiveD's camelCase keys); a key given with no value
    (``vc1:``) is an empty mapping."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class _SkuModel(_Section):
    gpu: _Amount = 0
    cpu: _Amount = 0
    memory: Annotated[float, BeforeValidator(_memory)] = 0


class _CellTypeModel(_Section):
    childCellType: _Name
    childCellNumber: Annotated[StrictInt, Field(ge=1)]
    isNodeLevel: StrictBool = False


class _PhysicalCellModel(_Section):
    cellType: StrictStr | None = None  # read on top cells only
    cellAddress: Any = None
    pinnedCellId: Any = None
    cellChildren: Annotated[list[_PhysicalCellModel], BeforeValidator(_none_as_empty_list)] = []


class _PhysicalClusterModel(_Section):
    skuTypes: Annotated[dict[str, _SkuModel], BeforeValidator(keys_as_text)] = {}
    cellTypes: Annotated[dict[str, _CellTypeModel], BeforeValidator(keys_as_text)] = {}
    physicalCells: Annotated[list[_PhysicalCellModel], BeforeValidator(_none_as_empty_list)] = []


class _VirtualCellModel(_Section):
    cellType: _Name
    cellNumber: _Count = 0


class _PinnedCellModel(_Section):
    pinnedCellId: Annotated[StrictStr, BeforeValidator(_number_as_text)]


class _VirtualClusterModel(_Section):
    virtualCells: Annotated[list[_VirtualCellModel], BeforeValidator(_none_as_empty_list)] = []
    pinnedCells: Annotated[list[_PinnedCellModel], BeforeValidator(_none_as_empty_list)] = []


class _HivedFileModel(_Section):
    physicalCluster: _PhysicalClusterModel = _PhysicalClusterModel()  # HiveD's default: an empty cluster
    virtualClusters: Annotated[dict[str, _VirtualClusterModel], BeforeValidator(keys_as_text)] = {}


def _validated(raw: Any) -> _HivedFileModel:
    """The file's shape, or a :class:`HivedConfigError` naming every wrong key (the first as ``path``)."""
    try:
        return _HivedFileModel.model_validate(raw)
    except ValidationError as exc:
        problems = field_errors(exc, _HINTS)
    path, reason = problems[0]
    if len(problems) > 1:
        reason += "; also " + "; ".join(f"{p}: {r}" if p else r for p, r in problems[1:])
    raise HivedConfigError(path, reason)


def load_config(source: str | dict[str, Any], *, check_safety: bool = True) -> HivedConfig:
    """Parse a HiveD config from YAML text or an already-loaded dict; raise :class:`HivedConfigError`."""
    if isinstance(source, str):
        try:
            raw = yaml.safe_load(source)
        except yaml.YAMLError as e:
            raise HivedConfigError("", f"Failed to read config file: {e}") from None
    else:
        raw = source
    if raw is None:
        raw = {}
    file = _validated(raw)
    pc = file.physicalCluster
    sku_types = {name: SkuType(float(s.gpu), float(s.cpu), s.memory) for name, s in pc.skuTypes.items()}
    cell_types = {name: CellTypeSpec(c.childCellType, c.childCellNumber, c.isNodeLevel)
                  for name, c in pc.cellTypes.items()}
    chains = _build_chains(cell_types)
    physical = _parse_physical_cells(pc.physicalCells, cell_types, chains)
    used_chains = {p.cell_type for p in physical}
    chains = {name: c for name, c in chains.items() if name in used_chains}
    pinned = _pinned_index(physical, chains)
    vcs = _parse_virtual_clusters(file.virtualClusters, chains, pinned)
    config = HivedConfig(sku_types, cell_types, physical, vcs, chains, raw)
    if check_safety:
        check_vc_safety(config)
    return config


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


def _parse_physical_cells(cells: list[_PhysicalCellModel], cell_types: dict[str, CellTypeSpec],
                          chains: dict[str, ChainSpec]) -> list[PhysicalCellSpec]:
    out: list[PhysicalCellSpec] = []
    seen_leaves: dict[tuple[str, int], str] = {}
    for i, spec in enumerate(cells):
        path = f"physicalCluster.physicalCells[{i}]"
        ctype = spec.cellType
        if ctype not in cell_types:
            known = ", ".join(cell_types) or "none"
            raise HivedConfigError(f"{path}.cellType",
                                   f"physicalCells contains unknown cellType: {ctype} (cellTypes defines: {known})")
        chain = chains[ctype]
        if chain.node_level == 0:
            raise HivedConfigError(f"{path}.cellType", f"top cell must be node-level or above: {ctype}")
        addr = spec.cellAddress
        address = str(i) if addr in (None, "") else str(addr)
        out.append(_build_physical(spec, chain, chain.top_level, address, i, None, path, seen_leaves))
    return out


def _build_physical(spec: _PhysicalCellModel, chain: ChainSpec, level: int, address: str, default_index: int,
                    node: str | None, path: str, seen_leaves: dict[tuple[str, int], str]) -> PhysicalCellSpec:
    pinned = str(spec.pinnedCellId) if spec.pinnedCellId else None
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
        if spec.cellChildren:
            raise HivedConfigError(f"{path}.cellChildren", f"a leaf cell ({cell.cell_type}) has no children")
        return cell
    n = chain.child_number[level - 1]
    children = spec.cellChildren
    if children and len(children) != n:
        raise HivedConfigError(f"{path}.cellChildren",
                               f"{cell.cell_type} has {n} children (childCellNumber) but {len(children)} are listed")
    if not children:
        children = [_PhysicalCellModel() for _ in range(n)]
    for j, child in enumerate(children):
        idx = default_index * n + j
        given = child.cellAddress
        caddr = f"{address}/{idx if given in (None, '') else given}"
        cell.children.append(_build_physical(child, chain, level - 1, caddr, idx, node,
                                             f"{path}.cellChildren[{j}]", seen_leaves))
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


def _parse_virtual_clusters(value: dict[str, _VirtualClusterModel], chains: dict[str, ChainSpec],
                            pinned: dict[str, tuple[str, int]]) -> dict[str, VirtualClusterSpec]:
    vcs: dict[str, VirtualClusterSpec] = {}
    pinned_owner: dict[str, str] = {}
    for vc, spec in value.items():
        path = f"virtualClusters.{vc}"
        out = VirtualClusterSpec()
        for i, cell in enumerate(spec.virtualCells):
            cpath = f"{path}.virtualCells[{i}]"
            parts = cell.cellType.split(".")
            chain_name, last = parts[0], parts[-1]
            if chain_name not in chains:
                raise HivedConfigError(f"{cpath}.cellType",
                                       f"Illegal initial VC assignment: Chain {chain_name} does not exists in physical "
                                       f"cluster (chains: {', '.join(chains) or 'none'})")
            chain = chains[chain_name]
            if chain.level_of(last) is None:
                raise HivedConfigError(f"{cpath}.cellType",
                                       f"cellType {last} in VirtualCells is not found in cell types definition of "
                                       f"chain {chain_name} (its types: {', '.join(reversed(chain.types))})")
            out.virtual_cells.append(VirtualCellSpec(chain_name, last, cell.cellNumber))
        for i, pc in enumerate(spec.pinnedCells):
            ppath = f"{path}.pinnedCells[{i}]"
            pid = str(pc.pinnedCellId)
            if pid not in pinned:
                raise HivedConfigError(f"{ppath}.pinnedCellId", f"pinned cell not found in physicalCells: VC: {vc}, ID: {pid}")
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
