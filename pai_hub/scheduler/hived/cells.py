"""Cells: the physical cell trees of each chain and every VC's virtual cell trees.

One :class:`Cell` class serves both views. Bookkeeping kept incrementally on every cell:
``n_used`` (leaves in use) and ``used_at`` (priority -> leaves used at it). A cell's priority is
the highest priority it is used at (HiveD: max over children), :data:`FREE` when unused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config import ChainSpec, HivedConfig, PhysicalCellSpec

FREE = -2  # priority of a free cell
OPPORTUNISTIC = -1
MAX_PRIORITY = 1000


class Cell:
    __slots__ = (
        "address",
        "chain",
        "children",
        "doomed",
        "in_free",
        "index",
        "is_virtual",
        "leaf_count",
        "leaves",
        "level",
        "n_bad",
        "n_used",
        "node",
        "nodes",
        "parent",
        "physical",
        "pinned_vc",
        "preassigned",
        "reserving",
        "split",
        "used_at",
        "using",
        "vc",
        "virtual",
    )

    def __init__(self, chain: str, level: int, address: str, parent: Cell | None, virtual: bool) -> None:
        self.chain = chain
        self.level = level
        self.address = address
        self.parent = parent
        self.children: list[Cell] = []
        self.is_virtual = virtual
        self.leaf_count = 1
        self.leaves: list[Cell] = []  # leaves below, depth-first (only filled on view nodes and tops)
        self.n_used = 0
        self.used_at: dict[int, int] = {}
        self.n_bad = 0  # bad leaves below (physical)
        self.node: str | None = None  # the node of a cell at or below node level
        self.nodes: list[str] = []
        self.index = -1  # leaf device index (physical leaves)
        # physical
        self.virtual: Cell | None = None
        self.split = False
        self.in_free = False
        self.pinned_vc: str | None = None  # set when a VC owns this pinned cell
        self.using: Any = None  # group using this leaf
        self.reserving: Any = None  # group reserving this leaf (preemptor)
        # virtual
        self.vc: str | None = None
        self.preassigned: Cell | None = None
        self.physical: Cell | None = None
        self.doomed = False

    # -- derived ------------------------------------------------------------------------------
    @property
    def priority(self) -> int:
        u = self.used_at
        return max(u) if u else FREE

    @property
    def healthy(self) -> bool:
        if self.is_virtual:
            p = self.physical
            return p is None or p.n_bad == 0
        return self.n_bad == 0

    def used_at_or_above(self, p: int) -> int:
        if p <= OPPORTUNISTIC:
            return self.n_used
        return sum(v for k, v in self.used_at.items() if k >= p)

    def __repr__(self) -> str:
        return f"Cell({self.address})"


def update_used(leaves: Iterable[Cell], prio: int, delta: int) -> None:
    """Add ``delta`` leaves used at ``prio`` to each leaf and all its ancestors (aggregated per level)."""
    level: dict[Cell, int] = {}
    for c in leaves:
        while c is not None:
            level[c] = level.get(c, 0) + delta
            c = c.parent
    for c, k in level.items():
        c.n_used += k
        u = c.used_at
        n = u.get(prio, 0) + k
        if n:
            u[prio] = n
        else:
            del u[prio]


def dfs_leaves(cell: Cell) -> list[Cell]:
    out: list[Cell] = []
    stack = [cell]
    while stack:
        c = stack.pop()
        if c.children:
            stack.extend(reversed(c.children))
        else:
            out.append(c)
    return out


class ChainCells:
    """All cells of one chain (physical or one VC's virtual), per level, in creation order."""

    def __init__(self, spec: ChainSpec) -> None:
        self.spec = spec
        self.levels: dict[int, list[Cell]] = {lvl: [] for lvl in range(1, spec.top_level + 1)}

    def add_tree(self, top: Cell) -> None:
        stack = [top]
        order: list[Cell] = []
        while stack:  # pre-order; per level this keeps left-to-right order
            c = stack.pop()
            order.append(c)
            stack.extend(reversed(c.children))
        for c in order:
            self.levels[c.level].append(c)

    def view_nodes(self) -> list[Cell]:
        """HiveD's cluster view: node-level cells, then tops lower than node level (by level, descending)."""
        node_level = self.spec.node_level
        out = list(self.levels.get(node_level, []))
        for lvl in range(node_level - 1, 0, -1):
            out.extend(c for c in self.levels[lvl] if c.parent is None)
        return out


def _finish(cell: Cell, node_level: int) -> None:
    """Leaf counts, and leaf lists on view nodes and tops, for a freshly built tree."""
    stack = [cell]
    post: list[Cell] = []
    while stack:
        c = stack.pop()
        post.append(c)
        stack.extend(c.children)
    for c in reversed(post):
        if c.children:
            c.leaf_count = sum(ch.leaf_count for ch in c.children)
    for c in post:
        if c.level == node_level or c.parent is None:  # view nodes and tops
            c.leaves = dfs_leaves(c)


def build_physical(config: HivedConfig) -> tuple[dict[str, ChainCells], list[Cell], dict[str, Cell]]:
    """Physical trees: per chain its cells by level; the top cells in file order; pinned id -> cell."""
    chains = {name: ChainCells(spec) for name, spec in config.chains.items()}
    tops: list[Cell] = []
    pinned: dict[str, Cell] = {}

    def build(spec: PhysicalCellSpec, chain: ChainSpec, level: int, parent: Cell | None, node: str | None) -> Cell:
        c = Cell(chain.name, level, spec.address, parent, False)
        if level == chain.node_level:
            node = spec.address.rsplit("/", 1)[-1]
        c.node = node
        if spec.pinned_cell_id:
            pinned[spec.pinned_cell_id] = c
        if level == 1:
            c.index = int(spec.address.rsplit("/", 1)[-1])
        for ch in spec.children:
            c.children.append(build(ch, chain, level - 1, c, node))
        if node is None:
            seen: list[str] = []
            for ch in c.children:
                for n in ([ch.node] if ch.node else ch.nodes):
                    if n not in seen:
                        seen.append(n)
            c.nodes = seen
        else:
            c.nodes = [node]
        return c

    for top_spec in config.physical_cells:
        chain = config.chains[top_spec.cell_type]
        top = build(top_spec, chain, chain.top_level, None, None)
        _finish(top, chain.node_level)
        chains[chain.name].add_tree(top)
        tops.append(top)
    return chains, tops, pinned


def build_virtual_tree(spec: ChainSpec, level: int, address: str, vc: str) -> Cell:
    top = Cell(spec.name, level, address, None, True)

    def grow(c: Cell, idx: int) -> None:
        n = spec.child_number[c.level - 1]
        for i in range(n):
            child_idx = i if c.parent is None else idx * n + i
            ch = Cell(spec.name, c.level - 1, f"{c.address}/{child_idx}", c, True)
            ch.vc = vc
            ch.preassigned = top
            c.children.append(ch)
            grow(ch, child_idx)

    top.vc = vc
    top.preassigned = top
    grow(top, 0)
    _finish(top, spec.node_level)
    return top
