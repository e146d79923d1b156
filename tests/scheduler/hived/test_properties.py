"""Invariants of notes/hived.md §2.13 under random small configs and random operation sequences."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pai_hub.scheduler.base import GangRequest, PodRequest
from pai_hub.scheduler.hived import HivedScheduler, load_config
from pai_hub.scheduler.hived.algorithm import PREEMPTING
from pai_hub.scheduler.hived.cells import OPPORTUNISTIC


@st.composite
def configs(draw):
    gpus = draw(st.sampled_from([2, 4, 8]))
    per_rack = draw(st.integers(1, 3))
    racks = draw(st.integers(1, 3))
    spare = draw(st.integers(0, 2))
    cells = [{"cellType": "RACK", "cellChildren": [{"cellAddress": f"r{r}n{i}"} for i in range(per_rack)]} for r in range(racks)]
    cells += [{"cellType": "NODE", "cellAddress": f"s{i}"} for i in range(spare)]
    n_vcs = draw(st.integers(1, 3))
    racks_left, spare_left = racks, spare
    rack_counts = []
    for _ in range(n_vcs):
        r = draw(st.integers(0, racks_left))
        racks_left -= r
        rack_counts.append(r)
    nodes_left = racks_left * per_rack
    vcs = {}
    for v in range(n_vcs):
        vcells = []
        if rack_counts[v]:
            vcells.append({"cellType": "RACK", "cellNumber": rack_counts[v]})
        k = draw(st.integers(0, nodes_left))
        nodes_left -= k
        if k:
            vcells.append({"cellType": "RACK.NODE", "cellNumber": k})
        if spare:
            s = draw(st.integers(0, spare_left))
            spare_left -= s
            if s:
                vcells.append({"cellType": "NODE", "cellNumber": s})
        vcs[f"vc{v}"] = {"virtualCells": vcells}
    raw = {"physicalCluster": {"cellTypes": {
        "HALF": {"childCellType": "GPU", "childCellNumber": gpus // 2},
        "NODE": {"childCellType": "HALF", "childCellNumber": 2, "isNodeLevel": True},
        "RACK": {"childCellType": "NODE", "childCellNumber": per_rack}},
        "physicalCells": cells}, "virtualClusters": vcs}
    return raw, gpus


ops = st.lists(st.tuples(st.sampled_from(["submit", "submit", "submit", "release", "bad", "heal"]),
                         st.integers(0, 10_000), st.integers(-1, 3), st.integers(1, 3), st.integers(1, 8)),
               min_size=1, max_size=40)


def check_invariants(s: HivedScheduler, raw) -> None:
    algo = s.algo
    seen = {}
    for name, g in algo.groups.items():
        assert all(pod for pod in g.phys), "gang placed only in part"
        for pod in g.phys:
            assert len({p.node for p in pod}) == 1, "a pod spans nodes"
        for p in g.flat_phys():
            assert p not in seen, f"leaf {p.address} given to {seen[p]} and {name}"
            seen[p] = name
    # cell bookkeeping: used counts and priorities are the sums / max over children
    for cc in list(algo.pchains.values()) + [c for vc in algo.vc_cells.values() for c in vc.values()]:
        for cells in cc.levels.values():
            for c in cells:
                if c.children:
                    assert c.n_used == sum(ch.n_used for ch in c.children)
                    assert c.priority == max(ch.priority for ch in c.children)
                if c.is_virtual and c.physical is not None and not c.doomed and c.level == 1:
                    assert c.priority == c.physical.priority
    # VC safety: every chain/level keeps enough free-or-splittable cells for all VCs' unbound cells
    for chain, spec in algo.chains.items():
        for lvl in range(1, spec.top_level + 1):
            assert algo.total_left(chain, lvl) >= algo.all_vc_free(chain, lvl), (chain, lvl)
    # guaranteed use never exceeds the VC's cells
    for vc in algo.vcs:
        cap = len(algo.vc_leaf_cells(vc))
        used = sum(len(g.flat_phys()) for g in algo.groups.values() if g.req.vc == vc and g.virt is not None)
        assert used <= cap


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), ops)
def test_random_operations_keep_invariants(cfg, sequence):
    raw, gpus = cfg
    s = HivedScheduler(load_config(raw))
    nodes = list(s.algo.node_leaves)
    vcs = list(s.algo.vcs)
    placed: list[str] = []
    priority: dict[str, tuple[str, int]] = {}
    for step, (op, x, prio, pods, g) in enumerate(sequence):
        if op == "submit":
            gid = f"g{step}"
            vc = vcs[x % len(vcs)]
            size = min(g, gpus)
            s.submit(GangRequest(gid, vc, prio, tuple(PodRequest("w", i, 1, 1, size) for i in range(pods)), float(step)))
            priority[gid] = (vc, prio)
        elif op == "release" and placed:
            gid = placed.pop(x % len(placed))
            s.release(gid)
        elif op == "bad":
            s.set_health(nodes[x % len(nodes)], False)
        elif op == "heal":
            s.set_health(nodes[x % len(nodes)], True)
        d = s.schedule(float(step))
        for p in d.placements:
            placed.append(p.gang_id)
            req = next(gg for gg in [s._gangs[p.gang_id]])
            assert len(p.pods) == len(req.pods)  # all or nothing
        for victim in d.preemptions:
            vg = s.algo.groups[victim]
            preemptors = {pp.reserving.name for pp in vg.flat_phys() if pp.reserving is not None}
            assert preemptors
            for name in preemptors:
                pre = s.algo.groups[name]
                assert pre.state == PREEMPTING and pre.req.priority >= 0
                if vg.cell_priority != OPPORTUNISTIC:
                    assert vg.req.vc == pre.req.vc and vg.req.priority < pre.req.priority
            s.release(victim)  # the orchestrator stops the victim
            placed.remove(victim)
        assert set(d.waiting_reasons) <= set(s._waiting)  # only reasons that changed are reported
        assert all(d.waiting_reasons.values())
        assert all(s.waiting_reason(gid) for gid in s._waiting)
        check_invariants(s, raw)
    snap = s.snapshot()
    r = HivedScheduler(load_config(raw))
    r.restore(snap)
    assert sorted((p.node, p.index) for g in r.algo.groups.values() for p in g.flat_phys()) == \
        sorted((p.node, p.index) for g in s.algo.groups.values() if g.state != PREEMPTING for p in g.flat_phys())
    check_invariants(r, raw)


def test_doomed_cells_are_reconciled_after_the_whole_gang_is_bound():
    """Found by the property test: binding a 3-node gang dooms another VC's rack midway (two bad
    nodes), on the very rack the gang's third node was mapped to; the mapping must stay valid."""
    raw = {"physicalCluster": {
        "cellTypes": {"HALF": {"childCellType": "GPU", "childCellNumber": 1},
                      "NODE": {"childCellType": "HALF", "childCellNumber": 2, "isNodeLevel": True},
                      "RACK": {"childCellType": "NODE", "childCellNumber": 2}},
        "physicalCells": [{"cellType": "RACK", "cellChildren": [{"cellAddress": f"r{r}n0"}, {"cellAddress": f"r{r}n1"}]}
                          for r in range(3)]},
        "virtualClusters": {"vc0": {"virtualCells": [{"cellType": "RACK.NODE", "cellNumber": 3}]},
                            "vc1": {"virtualCells": [{"cellType": "RACK", "cellNumber": 1}]}}}
    s = HivedScheduler(load_config(raw))
    s.submit(GangRequest("a", "vc0", 0, (PodRequest("w", 0, 1, 1, 1),)))
    s.submit(GangRequest("b", "vc0", 0, (PodRequest("w", 0, 1, 1, 1),)))
    s.submit(GangRequest("wide", "vc0", 0, tuple(PodRequest("w", i, 1, 1, 2) for i in range(3))))
    assert {p.gang_id for p in s.schedule(0).placements} == {"a", "b"}
    s.release("a")
    s.set_health("r0n0", False)
    s.set_health("r1n0", False)
    s.release("b")
    placed = s.schedule(1).placements
    assert [p.gang_id for p in placed] == ["wide"]
    assert {pod.node for pod in placed[0].pods} == {"r2n0", "r2n1", "r0n1"}
    check_invariants(s, raw)
