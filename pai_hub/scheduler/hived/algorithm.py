"""HiveD's algorithm: VCs of virtual cells bound lazily to physical cells by buddy allocation.

This module holds the state and the allocation bookkeeping (notes/hived.md §2.2-2.8); placement
search lives in :mod:`.topology` and :mod:`.buddy`, bad hardware in :mod:`.health`. Everything is
deterministic: ordered dicts, lists in config order, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base import SchedulerInvariantError
from .buddy import Mapper, add_to_free, binding_paths, remove_from_free, total_left
from .cells import (
    FREE,
    MAX_PRIORITY,
    OPPORTUNISTIC,
    Cell,
    ChainCells,
    build_physical,
    build_virtual_tree,
    dfs_leaves,
    update_used,
)
from .config import HivedConfig
from .health import HealthMixin
from .topology import Failure, TopologyView

ALLOCATED = "Allocated"
PREEMPTING = "Preempting"
BEING_PREEMPTED = "BeingPreempted"


@dataclass(frozen=True)
class GroupRequest:
    """One affinity group (= one gang): leaf cells per pod in the caller's pod order."""

    name: str
    vc: str
    priority: int
    pods: tuple[int, ...]
    leaf_type: str | None = None
    pinned: str | None = None
    lazy: bool = False


@dataclass
class Group:
    req: GroupRequest
    state: str
    phys: list[list[Cell]]
    virt: list[list[Cell]] | None
    chain: str
    lazy_by: str | None = None  # the preemptor that downgraded this group to opportunistic
    saved_virt: list[list[Cell]] | None = None

    @property
    def name(self) -> str:
        return self.req.name

    @property
    def cell_priority(self) -> int:
        return self.req.priority if self.virt is not None else OPPORTUNISTIC

    def flat_phys(self) -> list[Cell]:
        return [p for pod in self.phys for p in pod]

    def virt_of(self, p: Cell) -> Cell | None:
        if self.virt is None:
            return None
        for pod_p, pod_v in zip(self.phys, self.virt, strict=False):
            for a, b in zip(pod_p, pod_v, strict=False):
                if a is p:
                    return b
        return None


@dataclass
class Miss:
    """Why a search failed, in facts the reasons module turns into words."""

    scope: str  # "invalid" | "vc" | "pinned" | "cluster" | "mapping"
    text: str
    chain: str | None = None
    failure: Failure | None = None


@dataclass
class Result:
    phys: list[list[Cell]] | None = None
    virt: list[list[Cell]] | None = None
    chain: str | None = None
    misses: list[Miss] = field(default_factory=list)
    lazy: list[Group] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.phys is not None


class HivedAlgorithm(HealthMixin):
    def __init__(self, config: HivedConfig, *, hived_start: bool = False) -> None:
        self.config = config
        self.chains = config.chains
        self.pchains, self.tops, self.pinned_phys = build_physical(config)
        self.free: dict[str, dict[int, list[Cell]]] = {
            name: {lvl: [] for lvl in range(1, spec.top_level + 1)} for name, spec in self.chains.items()
        }
        for top in self.tops:
            self.free[top.chain][top.level].append(top)
            top.in_free = True
        self.node_leaves: dict[str, list[Cell]] = {}
        self.leaf_at: dict[tuple[str, int], list[Cell]] = {}
        self.nodes: list[str] = []
        for top in self.tops:
            for leaf in dfs_leaves(top):
                if leaf.node not in self.node_leaves:
                    self.node_leaves[leaf.node] = []
                    self.nodes.append(leaf.node)
                self.node_leaves[leaf.node].append(leaf)
                self.leaf_at.setdefault((leaf.node, leaf.index), []).append(leaf)
        self.node_chains: dict[str, list[str]] = {}
        for n, leaves in self.node_leaves.items():
            self.node_chains[n] = list(dict.fromkeys(leaf.chain for leaf in leaves))
        # virtual clusters
        self.vcs = list(config.virtual_clusters)
        self.vc_cells: dict[str, dict[str, ChainCells]] = {}
        self.vc_pre: dict[str, dict[str, dict[int, list[Cell]]]] = {}
        self.vc_views: dict[tuple[str, str], TopologyView] = {}
        self.pinned_virtual: dict[str, dict[str, Cell]] = {}
        self.pinned_views: dict[tuple[str, str], TopologyView] = {}
        self.vc_free: dict[str, dict[str, dict[int, int]]] = {}
        self.demand_levels: dict[str, list[int]] = {c: [] for c in self.chains}
        for vc, spec in config.virtual_clusters.items():
            k = 0
            cells: dict[str, ChainCells] = {}
            pre: dict[str, dict[int, list[Cell]]] = {}
            free_n: dict[str, dict[int, int]] = {}
            for vcell in spec.virtual_cells:
                cspec = self.chains[vcell.chain]
                lvl = cspec.level_of(vcell.cell_type)
                if lvl is None:  # the config's validation refuses such a VC
                    raise SchedulerInvariantError(f"VC {vc}: cell type {vcell.cell_type} is not in chain {vcell.chain}")
                for _ in range(vcell.cell_number):
                    top = build_virtual_tree(cspec, lvl, f"{vc}/{k}", vc)
                    k += 1
                    cells.setdefault(vcell.chain, ChainCells(cspec)).add_tree(top)
                    pre.setdefault(vcell.chain, {}).setdefault(lvl, []).append(top)
                    free_n.setdefault(vcell.chain, {}).setdefault(lvl, 0)
                    free_n[vcell.chain][lvl] += 1
                    if lvl not in self.demand_levels[vcell.chain]:
                        self.demand_levels[vcell.chain].append(lvl)
            self.vc_cells[vc] = cells
            self.vc_pre[vc] = pre
            self.vc_free[vc] = free_n
            for chain, cc in cells.items():
                self.vc_views[(vc, chain)] = TopologyView(cc.view_nodes(), True)
            self.pinned_virtual[vc] = {}
            for pid in spec.pinned_cells:
                pc = self.pinned_phys[pid]
                cspec = self.chains[pc.chain]
                top = build_virtual_tree(cspec, pc.level, f"{vc}/{k}", vc)
                k += 1
                self.pinned_virtual[vc][pid] = top
                cc = ChainCells(cspec)
                cc.add_tree(top)
                self.pinned_views[(vc, pid)] = TopologyView(cc.view_nodes(), True)
                pc.pinned_vc = vc
                remove_from_free(self.free[pc.chain], pc)
                pc.virtual = top
                top.physical = pc
        for lv in self.demand_levels.values():
            lv.sort(reverse=True)
        self._opp_failed: dict[tuple[str, tuple[int, ...]], tuple[int, Miss]] = {}  # see _opportunistic
        self.chain_tops: dict[str, list[Cell]] = {c: [t for t in self.tops if t.chain == c] for c in self.chains}
        self.chain_leaves: dict[str, int] = {c: sum(t.leaf_count for t in tops) for c, tops in self.chain_tops.items()}
        self.sku_words: dict[tuple[str, ...], str] = {}  # the words reasons.py names chains' leaf types with
        # every VC's top cells per chain: their counters sum up the whole VC (a cheap capacity check)
        self.vc_tops: dict[tuple[str, str], list[Cell]] = {
            (vc, chain): [t for lvl in sorted(levels, reverse=True) for t in levels[lvl]]
            for vc, chains in self.vc_pre.items() for chain, levels in chains.items()}
        self.opp_views = {name: TopologyView(cc.view_nodes(), False) for name, cc in self.pchains.items()}
        self.groups: dict[str, Group] = {}
        # Change counters, read by the waiting queue to know whether a search that failed would fail
        # again (pai_hub/scheduler/hived/queue.py): ``version`` moves on every change of any cell or
        # group, ``vc_version`` on every change of a VC's virtual cells (all a search inside the VC
        # reads), ``chain_version`` on every change of a chain's physical cells (all an opportunistic
        # search reads).
        self.version = 0
        self.vc_version: dict[str, int] = dict.fromkeys(self.vcs, 0)
        self.chain_version: dict[str, int] = dict.fromkeys(self.chains, 0)
        self.init_health()
        if hived_start:
            self.hived_start_sequence()

    # -- validation -------------------------------------------------------------------------------
    def validate(self, req: GroupRequest) -> str | None:
        """A reason the request can never be scheduled as written, or None."""
        if req.vc not in self.vc_cells:
            return f"VC {req.vc} does not exist"
        if req.priority < OPPORTUNISTIC:
            return f"priority {req.priority} is less than -1"
        if req.priority > MAX_PRIORITY:
            return f"priority {req.priority} is greater than {MAX_PRIORITY}"
        if not req.pods or any(n <= 0 for n in req.pods):
            return "every task needs at least one leaf cell"
        if req.pinned:
            if req.pinned not in self.pinned_virtual[req.vc]:
                return f"VC {req.vc} does not have pinned cell {req.pinned}"
            if req.priority < 0:
                return "an opportunistic job cannot use a pinned cell"
            return None
        if req.leaf_type:
            chains = self.config.chains_of_leaf_type(req.leaf_type)
            if not chains:
                return f"the cluster has no {req.leaf_type} cells"
            if req.priority >= 0 and not any(c in self.vc_cells[req.vc] for c in chains):
                return f"VC {req.vc} has no {req.leaf_type} cells"
        elif req.priority >= 0 and not self.vc_cells[req.vc]:
            return f"VC {req.vc} has no cells outside its pinned cells"
        return None

    # -- search -------------------------------------------------------------------------------------
    def search(self, req: GroupRequest, suggested: set[str] | None = None) -> Result:
        """Find a placement for a new group (``scheduleNewAffinityGroup``); mutates nothing except
        lazy preemptions, which the result lists (the caller keeps or reverts them)."""
        res = Result()
        if suggested is not None:
            # views get sorted by another key: no cache of a sorted view or of a failure holds
            self.version += 1
            for counters in (self.vc_version, self.chain_version):
                for k in counters:
                    counters[k] += 1
        bad = self.validate(req)
        if bad:
            res.misses.append(Miss("invalid", bad))
            return res
        # the pods in ascending size, the order the views place them in: worked out once per
        # search, not once per chain tried
        order = sorted(range(len(req.pods)), key=req.pods.__getitem__)
        pods = tuple(req.pods[i] for i in order)
        if req.pinned:
            self._guaranteed(req, None, req.pinned, suggested, res, order, pods)
            return res
        types = (req.leaf_type,) if req.leaf_type else self.config.leaf_types()
        for lt in types:
            for chain in self.config.chains_of_leaf_type(lt):
                if req.priority < 0:
                    self._opportunistic(req, chain, suggested, res, order, pods)
                elif chain in self.vc_cells[req.vc]:
                    self._guaranteed(req, chain, None, suggested, res, order, pods)
                else:
                    continue
                if res.ok:
                    return res
        return res

    def _opportunistic(self, req: GroupRequest, chain: str, suggested: set[str] | None, res: Result,
                       order: list[int], pods: tuple[int, ...]) -> None:
        """``pods``: the leaf cells per pod in ascending order; ``order``: their indices in ``req.pods``."""
        view = self.opp_views[chain]
        stamp = self.chain_version[chain]
        memo_key = (chain, pods)
        known = self._opp_failed.get(memo_key) if suggested is None else None
        if known is not None and known[0] == stamp:
            # the same pods failed on this chain and none of its cells changed since: the search
            # would fail the same way (and its sort would leave the view as it is); the miss it
            # gave is handed out again (misses are read, never changed)
            res.misses.append(known[1])
            return
        if suggested is None and not self.bad_nodes and \
                sum(t.leaf_count - t.n_used for t in self.chain_tops[chain]) < sum(pods):
            view.sort(OPPORTUNISTIC, None, stamp)  # the order the full search would leave
            leaves, fail = None, Failure("capacity")
        else:
            leaves, fail, _ = view.schedule(pods, OPPORTUNISTIC, suggested, stamp)
        if leaves is None:
            miss = Miss("cluster", f"{fail.text()} when scheduling in physical cluster", chain, fail)
            if suggested is None:
                self._opp_failed[memo_key] = (stamp, miss)
            res.misses.append(miss)
            return
        phys: list[list[Cell]] = [[] for _ in req.pods]
        for j, i in enumerate(order):
            phys[i] = leaves[j]
        res.phys, res.chain = phys, chain

    def _guaranteed(self, req: GroupRequest, chain: str | None, pinned: str | None,
                    suggested: set[str] | None, res: Result, order: list[int], pods: tuple[int, ...]) -> None:
        if pinned:
            view = self.pinned_views[(req.vc, pinned)]
            tops = [self.pinned_virtual[req.vc][pinned]]
            chain = tops[0].chain
        else:
            view = self.vc_views[(req.vc, chain)]
            tops = self.vc_tops[(req.vc, chain)]
        if chain is None:
            raise SchedulerInvariantError(f"{req.name}: a guaranteed search needs a chain or a pinned cell")
        stamp = self.vc_version[req.vc]
        if suggested is None and not self.bad_nodes and \
                sum(t.leaf_count - t.used_at_or_above(req.priority) for t in tops) < sum(pods):
            # fewer free cells in the whole VC than the gang needs: the search below would visit
            # every node to find that out; the VC's top cells count them in a few additions
            view.sort(req.priority, None, stamp)  # the order the full search would leave
            vleaves, fail = None, Failure("capacity")
        else:
            vleaves, fail, _ = view.schedule(pods, req.priority, suggested, stamp)
        if vleaves is None:
            res.misses.append(Miss("pinned" if pinned else "vc", f"{fail.text()} when scheduling in VC {req.vc}", chain, fail))
            return
        flat = [v for pod in vleaves for v in pod]
        lazy = self._try_lazy_preempt(flat, req)
        mapper = Mapper(suggested)
        if not self._map(flat, chain, mapper):
            for g in lazy:
                self._revert_lazy(g)
            res.misses.append(Miss("mapping", "Mapping the virtual placement would need to use at least one bad or "
                                   "non-suggested node", chain))
            return
        phys: list[list[Cell]] = [[] for _ in req.pods]
        virt: list[list[Cell]] = [[] for _ in req.pods]
        for j, i in enumerate(order):
            virt[i] = vleaves[j]
            phys[i] = [mapper.bindings[v] for v in vleaves[j]]
        res.phys, res.virt, res.chain = phys, virt, chain
        res.lazy.extend(lazy)

    def _map(self, vleaves: list[Cell], chain: str, mapper: Mapper) -> bool:
        pre, groups = binding_paths(vleaves, mapper.bindings)
        if pre:
            spec = self.chains[chain]
            top = spec.top_level
            free = {lvl: list(lst) for lvl, lst in self.free[chain].items()}
            vc_free = {lvl: self.all_vc_free(chain, lvl) for lvl in range(1, top + 1)}
            for v in pre:
                lvl = v.cell.level
                start = next((k for k in range(lvl, top + 1) if free[k]), None)
                if start is not None and mapper.buddy_alloc(v, free, start):
                    vc_free[lvl] -= 1
                    continue
                if mapper.safe_relaxed_buddy_alloc(v, free, vc_free, spec.child_number, top):
                    vc_free[lvl] -= 1
                    continue
                return False
        for parent, vs in groups:
            if parent.physical is None:
                raise SchedulerInvariantError(f"virtual cell {parent.address} has children to map but is not bound itself")
            if not mapper.map_cells(vs, parent.physical.children):
                return False
        return True

    def all_vc_free(self, chain: str, level: int) -> int:
        return sum(self.vc_free[vc].get(chain, {}).get(level, 0) for vc in self.vcs)

    def total_left(self, chain: str, level: int) -> int:
        spec = self.chains[chain]
        return total_left(self.free[chain], spec.child_number, level, spec.top_level)

    # -- lazy preemption ------------------------------------------------------------------------
    def _try_lazy_preempt(self, vleaves: list[Cell], req: GroupRequest) -> list[Group]:
        out: list[Group] = []
        for v in vleaves:
            p = v.physical
            if p is None:
                continue
            g = p.using
            if g is not None and g.req.lazy and g.virt is not None and g.state == ALLOCATED and g not in out \
                    and p.reserving is None:
                self._lazy_preempt(g, req.name)
                out.append(g)
        return out

    def _lazy_preempt(self, g: Group, by: str) -> None:
        phys = g.flat_phys()
        self._release(phys)
        update_used(phys, OPPORTUNISTIC, 1)
        g.saved_virt, g.virt, g.lazy_by = g.virt, None, by

    def _revert_lazy(self, g: Group) -> None:
        phys = g.flat_phys()
        if g.saved_virt is None:
            raise SchedulerInvariantError(f"{g.name} is reverted from lazy preemption but was never lazily preempted")
        update_used(phys, OPPORTUNISTIC, -1)
        self._alloc(phys, [v for pod in g.saved_virt for v in pod], g.req.priority)
        g.virt, g.saved_virt, g.lazy_by = g.saved_virt, None, None

    # -- cell bookkeeping -------------------------------------------------------------------------
    def changed(self, cells: list[Cell]) -> None:
        """``cells`` (physical or virtual) are about to change: move the counters that cover them."""
        self.version += 1
        for c in cells:
            if c.is_virtual:
                self.vc_version[c.vc] += 1
            else:
                self.chain_version[c.chain] += 1

    def _alloc(self, phys: list[Cell], virt: list[Cell] | None, prio: int) -> None:
        self.changed(phys)
        if virt is not None:
            self.changed(virt)
            touched: set[str] = set()
            for p, v in zip(phys, virt, strict=False):
                if p.virtual is None:
                    pre = v.preassigned
                    newly = pre.physical is None
                    self._bind(p, v)
                    if newly:
                        self._allocate_preassigned(pre, reconcile=False)
                        touched.add(p.chain)
                elif p.virtual is not v:
                    raise RuntimeError(f"{p.address} is bound to {p.virtual.address}, not {v.address}")
                pre = v.preassigned
                if pre.doomed:
                    self._clear_doomed(pre)
            update_used(virt, prio, 1)
            # Doomed bad cells are reconciled once the whole mapping is in place: doing it between
            # two bindings of one gang could doom a cell the next binding was computed to use.
            for chain in touched:
                self.reconcile_doomed(chain)
        update_used(phys, prio, 1)

    def _release(self, phys: list[Cell]) -> None:
        self.changed(phys)
        self.changed([p.virtual for p in phys if p.virtual is not None])
        by_prio: dict[int, list[Cell]] = {}
        for p in phys:
            by_prio.setdefault(p.priority, []).append(p)
        for prio, ps in by_prio.items():
            if prio == FREE:
                raise SchedulerInvariantError(f"releasing free cells: {', '.join(p.address for p in ps)}")
            update_used(ps, prio, -1)
            vs = [p.virtual for p in ps if p.virtual is not None]
            if vs:
                update_used(vs, prio, -1)
        pres: dict[Cell, Cell] = {}
        for p in phys:
            v = p.virtual
            if v is None:
                continue
            pre = v.preassigned
            if pre not in pres:
                pres[pre] = pre.physical
            self._unbind_climb(p)
        for pre, pc in pres.items():
            if pc.pinned_vc is not None or pre.n_used:
                continue
            if pre.physical is not None:
                self._unbind_subtree(pre)
            self._release_preassigned(pre, pc)

    @staticmethod
    def _bind(p: Cell, v: Cell) -> None:
        while True:
            p.virtual = v
            v.physical = p
            vp = v.parent
            if vp is None or vp.physical is not None:
                return
            p, v = p.parent, vp

    @staticmethod
    def _unbind_climb(p: Cell) -> None:
        c: Cell | None = p
        while c is not None:
            if c.pinned_vc is not None:
                return
            v = c.virtual
            if v is None:
                return
            c.virtual = None
            v.physical = None
            if v.parent is None:
                return
            par = c.parent
            if par is None or any(ch.virtual is not None for ch in par.children):
                return
            c = par

    @staticmethod
    def _unbind_subtree(v: Cell) -> None:
        stack = [v]
        while stack:
            c = stack.pop()
            if c.physical is not None:
                c.physical.virtual = None
                c.physical = None
                stack.extend(c.children)

    def _allocate_preassigned(self, pre: Cell, reconcile: bool = True) -> None:
        pc = pre.physical
        if pc is None:
            raise SchedulerInvariantError(f"preassigned cell {pre.address} is not bound")
        self.vc_free[pre.vc][pre.chain][pre.level] -= 1
        remove_from_free(self.free[pc.chain], pc)
        if reconcile:
            self.reconcile_doomed(pc.chain)

    def _release_preassigned(self, pre: Cell, pc: Cell) -> None:
        self.vc_free[pre.vc][pre.chain][pre.level] += 1
        add_to_free(self.free[pc.chain], pc)
        self.reconcile_doomed(pc.chain)

    # -- groups -------------------------------------------------------------------------------------
    def allocate(self, req: GroupRequest, res: Result) -> Group:
        """Place a new group on ``res`` (no victims in the way)."""
        g = self._new_group(req, res, ALLOCATED, "allocated")
        phys = g.flat_phys()
        for p in phys:
            if p.using is not None or p.reserving is not None:
                raise SchedulerInvariantError(f"{req.name}: cell {p.address} is not free")
            p.using = g
        self._take(g, res, phys)
        return g

    def _new_group(self, req: GroupRequest, res: Result, state: str, verb: str) -> Group:
        """A group of ``state`` on the cells ``res`` found; a search that found none is a bug."""
        self.version += 1
        if res.phys is None or res.chain is None:
            raise SchedulerInvariantError(f"{req.name}: {verb} from a search that found no cells")
        return Group(req, state, res.phys, res.virt, res.chain)

    def _take(self, g: Group, res: Result, phys: list[Cell]) -> None:
        """Count a new group's cells as taken, at its priority in the virtual cells the search
        mapped them to, or as opportunistic when it found none; from now on the group is known."""
        if res.virt is not None:
            self._alloc(phys, [v for pod in res.virt for v in pod], g.req.priority)
        else:
            self._alloc(phys, None, OPPORTUNISTIC)
        self.groups[g.req.name] = g

    def victims_of(self, phys: list[list[Cell]], me: Group | None = None) -> tuple[list[Group], list[Group]]:
        victims: dict[str, Group] = {}
        preemptors: dict[str, Group] = {}
        for pod in phys:
            for p in pod:
                if p.using is not None and p.using is not me:
                    victims.setdefault(p.using.name, p.using)
                if p.reserving is not None and p.reserving is not me:
                    preemptors.setdefault(p.reserving.name, p.reserving)
        return list(victims.values()), list(preemptors.values())

    def create_preempting(self, req: GroupRequest, res: Result) -> Group:
        g = self._new_group(req, res, PREEMPTING, "preempting")
        phys = g.flat_phys()
        for p in phys:
            if p.reserving is not None:
                raise SchedulerInvariantError(f"{req.name}: cell {p.address} is already reserved by {p.reserving.name}")
            if p.using is not None:
                p.using.state = BEING_PREEMPTED
                self._release([p])
            p.reserving = g
        self._take(g, res, phys)
        return g

    def finish_preempting(self, g: Group) -> None:
        """All victims are gone: the reserved cells become the preemptor's."""
        self.version += 1
        for p in g.flat_phys():
            if p.using is not None:
                raise SchedulerInvariantError(f"{g.name}: cell {p.address} is still used by {p.using.name}")
            p.reserving = None
            p.using = g
        g.state = ALLOCATED

    def cancel_preempting(self, g: Group) -> list[Group]:
        """Give up a preemption: Reserving cells go back to their users, Reserved ones are freed."""
        self.version += 1
        restored: dict[str, Group] = {}
        for p in g.flat_phys():
            victim = p.using
            self._release([p])
            p.reserving = None
            if victim is not None:
                v = victim.virt_of(p)
                self._alloc([p], [v] if v is not None else None, victim.cell_priority)
                restored[victim.name] = victim
        for victim in restored.values():
            if victim.state == BEING_PREEMPTED and not any(p.reserving for p in victim.flat_phys()):
                victim.state = ALLOCATED
        del self.groups[g.name]
        return list(restored.values())

    def delete(self, name: str) -> None:
        """All pods of a group are gone (``deleteAllocatedAffinityGroup`` / ``DeleteUnallocatedPod``)."""
        self.version += 1
        g = self.groups.get(name)
        if g is None:
            return
        if g.state == PREEMPTING:
            self.cancel_preempting(g)
            return
        release = []
        for p in g.flat_phys():
            if p.using is g:
                p.using = None
                if p.reserving is None:
                    release.append(p)
        self._release(release)
        del self.groups[name]

    def add_allocated(self, req: GroupRequest, phys: list[list[Cell]],
                      pre_types: list[list[str | None]] | None = None) -> Group:
        """Record a group placed earlier (restart / bind info), deriving its virtual cells (§2.7).

        ``pre_types`` are the cell types of the VC cells each leaf belonged to (HiveD's
        ``preassignedCellTypes``); without them the highest level that fits is used. If the VC can
        no longer hold the group, it runs on as opportunistic (lazily preempted)."""
        self.version += 1
        chain = phys[0][0].chain if phys and phys[0] else ""
        g = Group(req, ALLOCATED, phys, None, chain)
        flat = g.flat_phys()
        for p in flat:
            if p.using is not None or p.reserving is not None:
                raise ValueError(f"leaf {p.node}/{p.index} is already in use by {(p.using or p.reserving).name}")
        for p in flat:
            p.using = g
        if req.priority >= 0:
            done_p: list[Cell] = []
            done_v: list[Cell] = []
            ok = True
            types = [t for pod in pre_types for t in pod] if pre_types else [None] * len(flat)
            for p, t in zip(flat, types, strict=False):
                v = self._physical_to_virtual(p, req, t)
                if v is None:
                    ok = False
                    break
                self._alloc([p], [v], req.priority)
                done_p.append(p)
                done_v.append(v)
            if ok and self.safety_ok(chain):
                it = iter(done_v)
                g.virt = [[next(it) for _ in pod] for pod in phys]
                self.groups[req.name] = g
                return g
            if done_p:
                self._release(done_p)
            g.lazy_by = req.name
        self._alloc(flat, None, OPPORTUNISTIC)
        self.groups[req.name] = g
        return g

    def pre_types(self, g: Group) -> list[list[str | None]]:
        """The VC cell type each leaf of ``g`` belongs to (None for opportunistic leaves)."""
        if g.virt is None:
            return [[None for _ in pod] for pod in g.phys]
        return [[self.chains[v.chain].types[v.preassigned.level - 1] for v in pod] for pod in g.virt]

    def _physical_to_virtual(self, p: Cell, req: GroupRequest, pre_type: str | None = None) -> Cell | None:
        if p.virtual is not None:
            return None  # bound leaf = in use (or reserved) by someone
        path = [p]
        a = p
        while a.parent is not None and a.virtual is None and a.pinned_vc is None:
            a = a.parent
            path.append(a)
        if a.virtual is not None:
            if a.virtual.vc != req.vc or (req.pinned and a.virtual.preassigned is not self.pinned_virtual[req.vc].get(req.pinned)):
                return None
            v = a.virtual
            path.pop()
        else:
            if req.pinned:
                return None
            pres = self.vc_pre[req.vc].get(p.chain, {})
            levels = sorted(pres, reverse=True)
            if pre_type is not None:
                lvl = self.chains[p.chain].level_of(pre_type)
                if lvl is None or lvl not in pres:
                    return None  # "preassigned cell type not found in chain"
                levels = [lvl]
            v = None
            for lvl in levels:
                anc = p
                while anc.level < lvl and anc.parent is not None:
                    anc = anc.parent
                if anc.level != lvl:
                    continue
                v = next((c for c in pres[lvl] if c.physical is None), None)
                if v is None:
                    v = self._lowest_priority_cell(pres[lvl], req)
                if v is not None and not _obtainable(anc):
                    v = None
                if v is not None:
                    path = path[: path.index(anc)]
                    break
            if v is None:
                return None
        for _c in reversed(path):  # descend choosing unbound virtual children
            v = next((ch for ch in v.children if ch.physical is None and not ch.n_used), None)
            if v is None:
                return None
        return v

    def _lowest_priority_cell(self, cells: list[Cell], req: GroupRequest) -> Cell | None:
        """After a reconfiguration: take the VC cell used at the lowest priority below ``req``'s,
        lazily preempting the groups inside it (``getLowestPriorityVirtualCell``)."""
        cands = [c for c in cells if c.priority < req.priority and not c.doomed and c.physical is not None
                 and c.physical.pinned_vc is None]
        if not cands:
            return None
        best = min(cands, key=lambda c: c.priority)
        users = {}
        for g in list(self.groups.values()):
            if g.virt is not None and any(v.preassigned is best for pod in g.virt for v in pod):
                users[g.name] = g
        for g in users.values():
            self._lazy_preempt(g, req.name)
        return best if best.physical is None else None

    def safety_ok(self, chain: str) -> bool:
        spec = self.chains.get(chain)
        if spec is None:
            return True
        return all(self.total_left(chain, lvl) >= self.all_vc_free(chain, lvl) for lvl in range(1, spec.top_level + 1))

    # -- inspection ---------------------------------------------------------------------------------
    def leaf_state(self, p: Cell) -> str:
        if p.using is not None:
            return "Reserving" if p.reserving is not None else "Used"
        return "Reserved" if p.reserving is not None else "Free"

    def vc_leaf_cells(self, vc: str) -> list[Cell]:
        out = [leaf for cc in self.vc_cells.get(vc, {}).values() for leaf in cc.levels[1]]
        for top in self.pinned_virtual.get(vc, {}).values():
            out.extend(dfs_leaves(top))
        return out





def _obtainable(c: Cell) -> bool:
    while True:
        if c.in_free:
            return True
        if c.virtual is not None or c.parent is None or c.parent.split:
            return False
        c = c.parent
