"""Buddy allocation of physical cells and the virtual -> physical mapping (notes/hived.md §2.6-2.7).

Free lists hold, per chain and level, the physical cells that are wholly free of VC bindings;
initially only the top cells. Taking a cell splits its ancestors (their other children join the
free lists); giving one back merges buddies again. List order matters for which cell is picked,
so removal swaps with the last element and additions append, exactly as HiveD does.
"""

from __future__ import annotations

from .cells import OPPORTUNISTIC, Cell

FreeLists = dict[int, list[Cell]]


def swap_remove(lst: list[Cell], c: Cell) -> None:
    i = lst.index(c)
    last = lst.pop()
    if i < len(lst):
        lst[i] = last


def remove_from_free(free: FreeLists, c: Cell) -> int:
    """Take ``c`` out of the free lists, splitting its ancestors; returns the highest level touched."""
    while True:
        p = c.parent
        if p is not None and not p.split:
            free[c.level].extend(p.children)
            for ch in p.children:
                ch.in_free = True
            p.split = True
            swap_remove(free[c.level], c)
            c.in_free = False
            c = p
            continue
        swap_remove(free[c.level], c)
        c.in_free = False
        return c.level


def add_to_free(free: FreeLists, c: Cell) -> None:
    """Give ``c`` back, merging it with its buddies when they are all free."""
    while True:
        p = c.parent
        if p is not None and all(b is c or b.in_free for b in p.children):
            lst = free[c.level]
            for b in p.children:
                if b is not c:
                    swap_remove(lst, b)
                    b.in_free = False
            p.split = False
            c = p
            continue
        free[c.level].append(c)
        c.in_free = True
        return


class Vertex:
    """A virtual cell to bind, with the children below it that need binding too."""

    __slots__ = ("cell", "children")

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.children: list[Vertex] = []


class Mapper:
    """One search for physical cells for a virtual placement; mutates nothing but its own copies."""

    def __init__(self, suggested: set[str] | None) -> None:
        self.suggested = suggested
        self.bindings: dict[Cell, Cell] = {}  # virtual leaf -> physical leaf
        self.top_bindings: dict[Cell, Cell] = {}  # preassigned virtual -> physical

    def usable(self, candidates: list[Cell], n: int) -> list[Cell] | None:
        sug = self.suggested
        out = []
        for c in candidates:
            if c.virtual is not None:
                continue
            if c.node is not None and c.n_bad:
                continue
            if sug is not None and not any(n_ in sug for n_ in c.nodes):
                continue
            out.append(c)
        if len(out) < n:
            return None
        if len(out) > 1:
            out.sort(key=lambda c: c.used_at.get(OPPORTUNISTIC, 0))
        return out

    def map_cells(self, vs: list[Vertex], candidates: list[Cell]) -> bool:
        usable = self.usable(candidates, len(vs))
        if usable is None:
            return False
        return self._assign(vs, 0, usable, set())

    def _assign(self, vs: list[Vertex], i: int, usable: list[Cell], taken: set[Cell]) -> bool:
        if i == len(vs):
            return True
        v = vs[i]
        for c in usable:
            if c in taken:
                continue
            if v.cell.level == 1:
                self.bindings[v.cell] = c
                ok = True
            else:
                ok = self.map_cells(v.children, c.children)
            if ok:
                taken.add(c)
                if self._assign(vs, i + 1, usable, taken):
                    return True
                taken.discard(c)
        return False

    def map_into(self, v: Vertex, c: Cell) -> bool:
        if v.cell.level == 1:
            self.bindings[v.cell] = c
            return True
        return self.map_cells(v.children, c.children)

    def buddy_alloc(self, v: Vertex, free: FreeLists, level: int) -> bool:
        if level == v.cell.level:
            usable = self.usable(free[level], 1)
            if usable is None:
                return False
            for c in usable:
                if self.map_into(v, c):
                    swap_remove(free[level], c)
                    self.top_bindings[v.cell] = c
                    return True
            return False
        usable = self.usable(free[level], 1) or []
        for c in usable:
            free[level - 1].extend(c.children)
            if self.buddy_alloc(v, free, level - 1):
                swap_remove(free[level], c)
                return True
            free[level - 1] = []
        return False

    def safe_relaxed_buddy_alloc(self, v: Vertex, free: FreeLists, vc_free: dict[int, int],
                                 child_number: list[int], top: int) -> bool:
        """Split only cells that no VC's still-unbound cells need, then try again (§2.6)."""
        lvl0 = v.cell.level
        splittable: dict[int, int] = {}
        higher = 0
        for lvl in range(top, lvl0, -1):
            s = len(free[lvl]) - vc_free.get(lvl, 0)
            if higher > 0:
                s += higher * child_number[lvl]  # children of a splittable cell one level up
            splittable[lvl] = s
            higher = s
        for lvl in range(lvl0 + 1, top + 1):
            k = min(len(free[lvl]), splittable[lvl])
            if k <= 0:
                continue
            taken = free[lvl][:k]
            del free[lvl][:k]
            cells = taken
            for _ in range(lvl, lvl0, -1):
                cells = [ch for c in cells for ch in c.children]
            free[lvl0][:0] = cells
            usable = self.usable(free[lvl0], 1)
            if usable is None:
                continue
            for c in usable:
                if self.map_into(v, c):
                    swap_remove(free[lvl0], c)
                    self.top_bindings[v.cell] = c
                    return True
        return False


def binding_paths(vleaves: list[Cell], bindings: dict[Cell, Cell]) -> tuple[list[Vertex], list[tuple[Cell, list[Vertex]]]]:
    """Split the unbound part of a virtual placement into preassigned roots and buddy groups under
    bound parents (``toBindingPaths``)."""
    vertices: dict[Cell, Vertex] = {}
    pre: list[Vertex] = []
    groups: dict[Cell, list[Vertex]] = {}
    for v in vleaves:
        if v.physical is not None:
            bindings[v] = v.physical
            continue
        child: Vertex | None = None
        c: Cell | None = v
        while c is not None and c.physical is None:
            existing = vertices.get(c)
            if existing is not None:
                if child is not None:
                    existing.children.append(child)
                child = None
                break
            vert = Vertex(c)
            vertices[c] = vert
            if child is not None:
                vert.children.append(child)
            child = vert
            if c.parent is None or c.parent.physical is not None:
                break
            c = c.parent
        if child is not None:  # a new root
            if child.cell.parent is None:
                pre.append(child)
            else:
                groups.setdefault(child.cell.parent, []).append(child)
    return pre, list(groups.items())


def total_left(free: FreeLists, child_number: list[int], level: int, top: int) -> int:
    """Cells of ``level`` obtainable from the free lists directly or by splitting."""
    total = 0
    mult = 1
    for lvl in range(level, top + 1):
        if lvl > level:
            mult *= child_number[lvl - 1]
        total += len(free[lvl]) * mult
    return total
