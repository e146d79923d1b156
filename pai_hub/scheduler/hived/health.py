"""Bad hardware: node health and HiveD's doomed bad cells (notes/hived.md §2.9).

A cell is bad when any leaf below it is on a bad node. When one VC has more unbound cells of a
level than the cluster has healthy free cells of that level, one of its unbound cells is bound
("doomed") to a bad free cell, so the VC sees the loss instead of being promised cells that are
not there. The check is per VC. A doomed cell is freed again when the hardware heals or when
enough healthy cells come back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import SchedulerInvariantError
from .buddy import add_to_free, remove_from_free
from .cells import Cell

if TYPE_CHECKING:
    from .algorithm import HivedAlgorithm


class HealthMixin:
    def init_health(self: HivedAlgorithm) -> None:
        self.bad_nodes: set[str] = set()
        self.bad_leaves: dict[str, int] = dict.fromkeys(self.chains, 0)
        self.doomed: list[Cell] = []
        self._reconciling = False

    def hived_start_sequence(self: HivedAlgorithm) -> None:
        """HiveD starts with every node bad and heals them one by one (chain, top cell, node
        order). That binds and frees doomed cells and so reorders free lists; replaying it lets
        the Go test's exact placements be reproduced (§2.15)."""
        for node in self.nodes:
            self.set_node_health(node, False)
        for node in self.nodes:
            self.set_node_health(node, True)

    def set_node_health(self: HivedAlgorithm, node: str, healthy: bool) -> None:
        leaves = self.node_leaves.get(node)
        if leaves is None:
            raise KeyError(node)
        if healthy == (node not in self.bad_nodes):
            return
        # a virtual cell's health is its physical cell's: every VC may see the change
        self.changed(leaves)
        for vc in self.vc_version:
            self.vc_version[vc] += 1
        if healthy:
            self.bad_nodes.discard(node)
        else:
            self.bad_nodes.add(node)
        delta = -1 if healthy else 1
        for leaf in leaves:
            c: Cell | None = leaf
            while c is not None:
                c.n_bad += delta
                c = c.parent
            self.bad_leaves[leaf.chain] += delta
        if healthy:
            for pre in list(self.doomed):
                if pre.physical is not None and pre.physical.n_bad == 0:
                    self._undoom(pre)
        for chain in self.node_chains[node]:
            self.reconcile_doomed(chain)

    def reconcile_doomed(self: HivedAlgorithm, chain: str) -> None:
        if self._reconciling or (not self.bad_leaves.get(chain) and not any(d.chain == chain for d in self.doomed)):
            return
        self._reconciling = True
        try:
            free = self.free[chain]
            for level in self.demand_levels[chain]:
                for vc in self.vcs:
                    counts = self.vc_free[vc].get(chain)
                    if counts is None or level not in counts:
                        continue
                    while True:
                        n_free = counts[level]
                        bad = [c for c in free[level] if c.n_bad]
                        healthy = self.total_left(chain, level) - len(bad)
                        mine = [d for d in self.doomed if d.vc == vc and d.chain == chain and d.level == level]
                        if mine and n_free < healthy:
                            self._undoom(mine[-1])
                            continue
                        if n_free > healthy and bad:
                            pre = next(c for c in self.vc_pre[vc][chain][level] if c.physical is None)
                            self._doom(pre, bad[0])
                            continue
                        break
        finally:
            self._reconciling = False

    def _doom(self: HivedAlgorithm, pre: Cell, pc: Cell) -> None:
        self.changed([pre, pc])
        stack = [(pre, pc)]
        node_level = self.chains[pc.chain].node_level
        while stack:  # bind down to node level so the VC view sees which nodes are bad
            v, p = stack.pop()
            v.physical = p
            p.virtual = v
            if v.level > node_level:
                stack.extend(zip(v.children, p.children, strict=False))
        self.vc_free[pre.vc][pre.chain][pre.level] -= 1
        remove_from_free(self.free[pc.chain], pc)
        pre.doomed = True
        self.doomed.append(pre)

    def _undoom(self: HivedAlgorithm, pre: Cell) -> None:
        pc = pre.physical
        if pc is None:
            raise SchedulerInvariantError(f"doomed cell {pre.address} is not bound")
        self.changed([pre, pc])
        self._unbind_subtree(pre)
        pre.doomed = False
        self.doomed.remove(pre)
        self.vc_free[pre.vc][pre.chain][pre.level] += 1
        add_to_free(self.free[pc.chain], pc)

    def _clear_doomed(self: HivedAlgorithm, pre: Cell) -> None:
        """A job was placed inside a doomed cell (on its healthy part): it is an ordinary bound cell now."""
        self.changed([pre])
        pre.doomed = False
        self.doomed.remove(pre)
