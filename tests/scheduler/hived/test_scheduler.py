"""HivedScheduler through the Scheduler contract: the feature demos of HiveD's example/feature
README (notes/hived.md §3.7), preemption, lazy preemption, pinned cells, bad nodes, restart."""

from __future__ import annotations

import pytest

from pai_hub.scheduler.base import GangRequest, PodRequest
from pai_hub.scheduler.hived import HivedScheduler

from .harness import HIVED

FEATURE = HIVED / "example/feature/file"
pytestmark = pytest.mark.needs_reference(FEATURE)


def cfg(n):
    return (FEATURE / f"hived-config-{n}.yaml").read_text()


def gang(gid, vc, pods, gpu=1, prio=0, sku=None, pinned=None, lazy=False, t=0.0, role="worker"):
    return GangRequest(gid, vc, prio, tuple(PodRequest(role, i, 1, 1024, gpu) for i in range(pods)), t, sku, pinned, lazy)


def used_leaves(s):
    out = []
    for g in s.algo.groups.values():
        out += [(p.node, p.index) for p in g.flat_phys()]
    return out


def test_gang_waits_without_blocking_smaller_one():
    s = HivedScheduler(cfg(2))
    s.submit(gang("big", "vc1", 6, sku="K80", t=1))
    s.submit(gang("small", "vc1", 4, sku="K80", t=2))
    d = s.schedule(0)
    assert [p.gang_id for p in d.placements] == ["small"]
    assert len({p.node for p in d.placements[0].pods}) == 1  # packed into the VC's one K80 node
    assert d.waiting_reasons["big"] == "VC vc1 has only 4 K80 in all; the job needs 6"
    assert s.waiting_reason("big") == d.waiting_reasons["big"]


def test_sku_type_and_any_type():
    s = HivedScheduler(cfg(2))
    for i in range(6):
        s.submit(gang(f"k{i}", "vc1", 1, sku="K80", t=i))
    d = s.schedule(0)
    assert len(d.placements) == 4 and "VC vc1: 0 of 4 K80 free, waiting for 1" in d.waiting_reasons.values()
    s2 = HivedScheduler(cfg(2))
    for i in range(6):
        s2.submit(gang(f"a{i}", "vc1", 1, t=i))
    d2 = s2.schedule(0)
    assert len(d2.placements) == 6
    assert {p.pods[0].node for p in d2.placements} == {"10.151.41.18", "10.151.41.26"} or len({p.pods[0].node for p in d2.placements}) == 2


def test_buddy_gpus():
    s = HivedScheduler(cfg(2))
    s.submit(gang("one", "vc1", 1, sku="K80"))
    s.schedule(0)
    s.submit(gang("buddy", "vc1", 1, gpu=2, sku="K80"))
    d = s.schedule(1)
    assert d.placements[0].pods[0].gpus == (2, 3)  # the other 2-GPU cell, not 1 and 2
    s2 = HivedScheduler(cfg(2))
    s2.submit(gang("pair", "vc1", 2, sku="K80"))  # itc-buddy: 2 tasks x 1 GPU -> one 2-GPU cell
    assert [p.gpus for p in s2.schedule(0).placements[0].pods] == [(0,), (1,)]


def test_opportunistic_uses_more_than_quota_and_guaranteed_does_not():
    s = HivedScheduler(cfg(1))
    for i in range(6):
        s.submit(gang(f"g{i}", "vc1", 1, t=i))
    d = s.schedule(0)
    assert len(d.placements) == 4 and len({p.pods[0].node for p in d.placements}) == 1
    s2 = HivedScheduler(cfg(1))
    for i in range(6):
        s2.submit(gang(f"o{i}", "vc1", 1, prio=-1, t=i))
    assert len(s2.schedule(0).placements) == 6


def test_intra_vc_immediate_preemption_and_reservation():
    s = HivedScheduler(cfg(3))
    s.submit(gang("test", "vc1", 4, sku="M60", prio=0))
    assert len(s.schedule(0).placements) == 1
    s.submit(gang("prod", "vc1", 4, sku="M60", prio=100))
    d = s.schedule(1)
    assert d.preemptions == ["test"] and not d.placements
    assert d.waiting_reasons["prod"].startswith("preempting 1 lower-priority job (test)")
    assert s.gang_state("test") == "BeingPreempted" and s.gang_state("prod") == "Preempting"
    # the reserved cells are not given to an equal-priority newcomer meanwhile
    s.submit(gang("other", "vc1", 1, sku="M60", prio=0))
    d = s.schedule(2)
    assert not d.placements and not d.preemptions
    s.release("test")
    d = s.schedule(3)
    assert [p.gang_id for p in d.placements] == ["prod"]


def test_lazy_preemption_downgrades_then_real_preemption():
    s = HivedScheduler(cfg(3))
    s.submit(gang("test", "vc1", 4, sku="K80", prio=0, lazy=True))
    s.schedule(0)
    s.submit(gang("prod", "vc1", 4, sku="K80", prio=100))
    d = s.schedule(1)
    assert d.lazy_preempted == ["test"] and not d.preemptions
    assert [p.gang_id for p in d.placements] == ["prod"]
    assert s.gang_state("test") == "Opportunistic"
    s.submit(gang("prod2", "default", 3, gpu=4, sku="K80", prio=100))
    d = s.schedule(2)
    assert d.preemptions == ["test"]


def test_opportunistic_preempted_by_other_vc():
    s = HivedScheduler(cfg(3))
    s.submit(gang("oppo", "vc1", 2, gpu=4, sku="K80", prio=-1))
    assert len(s.schedule(0).placements) == 1
    s.submit(gang("prod", "default", 3, gpu=4, sku="K80", prio=100))
    d = s.schedule(1)
    assert d.preemptions == ["oppo"]
    assert d.waiting_reasons["prod"] == "preempting 1 opportunistic job (oppo)"
    s.release("oppo")
    assert [p.gang_id for p in s.schedule(2).placements] == ["prod"]


def test_pinned_cells():
    s = HivedScheduler(cfg(8))
    s.submit(gang("pinned", "vc1", 4, pinned="VC1-K80"))
    s.submit(gang("free", "vc1", 4, sku="K80"))
    d = s.schedule(0)
    nodes = {p.gang_id: {x.node for x in p.pods} for p in d.placements}
    assert nodes["pinned"] == {"10.151.41.25"} and "10.151.41.25" not in nodes["free"]
    s.submit(gang("more", "vc1", 1, pinned="VC1-K80"))
    assert s.schedule(1).waiting_reasons["more"] == "pinned cell VC1-K80 is busy: 0 of 4 K80 free, waiting for 1"


def test_bad_node_waits_then_runs():
    s = HivedScheduler(cfg(2))
    s.set_health("10.151.41.26", False)
    s.submit(gang("m60", "vc1", 1, sku="M60"))
    d = s.schedule(0)
    assert not d.placements and "unhealthy" in d.waiting_reasons["m60"]
    assert s.cluster_status()["nodes"]["10.151.41.26"]["healthy"] is False
    s.set_health("10.151.41.26", True)
    assert [p.gang_id for p in s.schedule(1).placements] == ["m60"]


def test_invalid_requests_wait_with_reason():
    s = HivedScheduler(cfg(2))
    s.submit(gang("x", "nope", 1))
    s.submit(gang("y", "default", 1, sku="M60"))
    s.submit(gang("z", "vc1", 1, sku="V100"))
    d = s.schedule(0)
    assert d.waiting_reasons == {"x": "VC nope does not exist", "y": "VC default has no M60 cells",
                                 "z": "the cluster has no V100 cells"}
    assert s.validate(gang("y", "default", 1, sku="M60")) == "VC default has no M60 cells"


def test_cpu_only_task_takes_one_leaf_of_its_sku():
    s = HivedScheduler(cfg(2))
    g = GangRequest("cpu", "vc1", 0, (PodRequest("w", 0, 6, 1000, 0),), 0, "K80")
    assert s.leaf_cells(g, g.pods[0]) == 2  # ceil(6 CPUs / 4 per K80 leaf)
    s.submit(g)
    d = s.schedule(0)
    assert len(d.placements[0].pods[0].gpus) == 2


def test_snapshot_restore_keeps_bindings():
    s = HivedScheduler(cfg(3))
    s.submit(gang("a", "vc1", 4, sku="K80", prio=10))
    s.submit(gang("b", "default", 2, gpu=4, sku="K80", prio=10))
    s.submit(gang("o", "vc1", 1, sku="M60", prio=-1))
    s.submit(gang("w", "vc1", 40, sku="K80"))
    d = s.schedule(0)
    before = {p.gang_id: p for p in d.placements}
    s.set_health("10.151.41.26", False)
    snap = s.snapshot()
    r = HivedScheduler(cfg(3))
    r.restore(snap)
    assert sorted(used_leaves(r)) == sorted(used_leaves(s))
    assert r.vc_status("vc1") == s.vc_status("vc1") and r.cluster_status() == s.cluster_status()
    assert r.waiting_reason("w") is not None
    for gid, pl in before.items():
        assert r.placement_of(r._gangs[gid], r.algo.groups[gid]) == pl
    # the restored scheduler keeps going: a release frees cells for new work
    r.release("a")
    r.submit(gang("c", "vc1", 4, sku="K80", prio=10))
    assert [p.gang_id for p in r.schedule(1).placements] == ["c"]


def test_bind_rebuilds_from_stored_placements():
    s = HivedScheduler(cfg(3))
    g = gang("a", "vc1", 4, sku="K80", prio=10)
    s.submit(g)
    pl = s.schedule(0).placements[0]
    r = HivedScheduler(cfg(3))
    r.bind(pl, g)
    assert sorted(used_leaves(r)) == sorted(used_leaves(s))
    assert r.vc_status("vc1")["K80"] == {"capacity": 4, "used": 4, "free": 0, "bad": 0, "opportunistic": 0}


def test_status_shapes():
    s = HivedScheduler(cfg(2))
    s.submit(gang("a", "vc1", 2, sku="K80"))
    s.submit(gang("o", "vc1", 1, sku="K80", prio=-1))
    s.schedule(0)
    st = s.vc_status("vc1")
    assert st["K80"] == {"capacity": 4, "used": 2, "free": 2, "bad": 0, "opportunistic": 1}
    assert st["M60"]["capacity"] == 4
    assert next(iter(st["nodes"].values()))["K80"] == {"capacity": 2, "used": 2, "free": 0}
    cs = s.cluster_status()
    assert cs["skus"]["K80"] == {"capacity": 16, "used": 3, "free": 13, "bad": 0}
    assert cs["vcs"]["default"]["K80"] == {"capacity": 8, "used": 0, "free": 8}
    assert sum(n["skus"].get("K80", {}).get("used", 0) for n in cs["nodes"].values()) == 3
