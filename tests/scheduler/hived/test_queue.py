"""The indexed waiting queue (pai_hub/scheduler/hived/queue.py): same decisions as the full walk,
at a cost that follows the shapes waiting, not the gangs."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pai_hub.scheduler.base import Decisions, GangRequest, PodRequest
from pai_hub.scheduler.hived import HivedScheduler, load_config
from pai_hub.scheduler.hived.queue import WAITING
from pai_hub.scheduler.hived.turn import Turn

from .reference_walk import FullWalkHivedScheduler
from .test_properties import configs

# (op, selector, priority, pods, leaf cells per pod, lazy, gangs in one submission)
steps = st.lists(st.tuples(st.sampled_from(["submit", "submit", "submit", "release", "cancel", "bad", "heal", "idle"]),
                           st.integers(0, 10_000), st.sampled_from([-1, 0, 0, 1, 2]), st.integers(1, 3),
                           st.integers(1, 8), st.booleans(), st.integers(1, 4)),
                 min_size=1, max_size=50)


def _decided(d: Decisions) -> tuple:
    return sorted((p.gang_id, p.pods) for p in d.placements), sorted(d.preemptions), sorted(d.lazy_preempted)


def _check_reasons(new: HivedScheduler, old: FullWalkHivedScheduler, told: dict[str, str]) -> None:
    """The first gang of each shape (and a preempting or invalid one) is told what the full walk
    told it; a later gang of a shape that it waits behind the first, with the same cause. What was
    handed out (``told``, from every turn's ``waiting_reasons``) is what ``waiting_reason`` says."""
    for gid in old._waiting:
        mine, theirs = new.waiting_reason(gid), old.waiting_reason(gid)
        sq = new._shapes.of.get(gid)
        if sq is None or sq.head == gid or mine == WAITING:
            assert mine == theirs, gid
        else:
            assert mine == sq.reason.behind and sq.reason.text == new.waiting_reason(sq.head), gid
        assert told.get(gid) == mine, gid


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), steps)
def test_the_indexed_queue_decides_what_the_full_walk_decided(cfg, sequence):
    """Every turn: the same placements, preemptions and lazy preemptions as the scheduler that
    sorted and walked the whole queue, and the same reasons (in their queued form for gangs behind
    the first of their shape)."""
    raw, gpus = cfg
    new, old = HivedScheduler(load_config(raw)), FullWalkHivedScheduler(load_config(raw))
    nodes = list(new.algo.node_leaves)
    vcs = list(new.algo.vcs)
    placed: list[str] = []
    waiting: list[str] = []
    told: dict[str, str] = {}
    n = 0
    for step, (op, x, prio, pods, size, lazy, count) in enumerate(sequence):
        both = (new, old)
        if op == "submit":
            for _ in range(count):  # several gangs of one shape: the queue's shortcut
                n += 1
                gang = GangRequest(f"g{n}", vcs[x % len(vcs)], prio,
                                   tuple(PodRequest("w", i, 1, 1, min(size, gpus)) for i in range(pods)),
                                   float(step), lazy_preemption=lazy and prio >= 0)
                for s in both:
                    s.submit(gang)
                waiting.append(gang.gang_id)
        elif op == "release" and placed:
            gid = placed.pop(x % len(placed))
            for s in both:
                s.release(gid)
        elif op == "cancel" and waiting:
            gid = waiting.pop(x % len(waiting))
            for s in both:
                s.cancel(gid)
        elif op == "bad":
            for s in both:
                s.set_health(nodes[x % len(nodes)], False)
        elif op == "heal":
            for s in both:
                s.set_health(nodes[x % len(nodes)], True)
        dn, do = new.schedule(float(step)), old.schedule(float(step))
        assert _decided(dn) == _decided(do), step
        for p in dn.placements:
            placed.append(p.gang_id)
            waiting.remove(p.gang_id)
        for victim in dn.preemptions:
            for s in both:
                s.release(victim)
            placed.remove(victim)
        waiting = [g for g in waiting if g in old._waiting]
        assert set(new._waiting) == set(old._waiting)
        told.update(dn.waiting_reasons)
        _check_reasons(new, old, told)
        assert {g: new.gang_state(g) for g in placed} == {g: old.gang_state(g) for g in placed}
    assert new.snapshot() == old.snapshot()


def _cluster(vcs: int = 4) -> dict:
    """vcs VCs of one 8-GPU node each."""
    return {"physicalCluster": {"cellTypes": {"NODE": {"childCellType": "GPU", "childCellNumber": 8, "isNodeLevel": True}},
                                "physicalCells": [{"cellType": "NODE", "cellAddress": f"n{i}"} for i in range(vcs)]},
            "virtualClusters": {f"vc{i}": {"virtualCells": [{"cellType": "NODE", "cellNumber": 1}]} for i in range(vcs)}}


def _count_searches(s: HivedScheduler) -> list[int]:
    calls = [0]
    search = s.algo.search

    def counted(req, suggested=None):
        calls[0] += 1
        return search(req, suggested)

    s.algo.search = counted
    return calls


def _count_visits(monkeypatch) -> list[int]:
    visits = [0]
    visit = Turn.visit

    def counted(self, gid, sq):
        visits[0] += 1
        return visit(self, gid, sq)

    monkeypatch.setattr(Turn, "visit", counted)
    return visits


def test_a_turn_searches_per_shape_not_per_waiting_gang(monkeypatch):
    """10,000 waiting gangs that cannot fit, in 4 VCs x 2 sizes: a turn searches at most once per
    shape, a turn after a new submission searches nothing (the shapes' failures still hold), and a
    release in one VC re-searches only that VC's shapes."""
    s = HivedScheduler(load_config(_cluster()))
    for v in range(4):
        s.submit(GangRequest(f"run{v}", f"vc{v}", 0, (PodRequest("w", 0, 1, 1, 8),)))
    assert len(s.schedule(0).placements) == 4
    calls = _count_searches(s)
    visits = _count_visits(monkeypatch)
    for i in range(10_000):
        s.submit(GangRequest(f"w{i}", f"vc{i % 4}", 0, (PodRequest("w", 0, 1, 1, 1 + (i // 4) % 2),), float(i)))
    d = s.schedule(1)
    assert not d.placements and len(d.waiting_reasons) == 10_000
    assert calls[0] == 8 and visits[0] == 8  # one per shape, not one per gang
    assert s.waiting_reason("w7") == "VC vc3: 0 of 8 GPU free, waiting for 2"  # first of its shape
    assert s.waiting_reason("w9999") == ("waiting behind earlier jobs with the same request; the first of them: "
                                         "VC vc3 has fewer than 2 free GPU")

    calls[0] = 0
    s.submit(GangRequest("late", "vc2", 0, (PodRequest("w", 0, 1, 1, 1),), 1e9))
    d = s.schedule(2)
    assert calls[0] == 0 and list(d.waiting_reasons) == ["late"]

    s.release("run1")
    d = s.schedule(3)
    # only vc1's two shapes are searched again: one search per gang placed, one failure per shape
    assert [p.gang_id for p in d.placements] == ["w1", "w5", "w9", "w13", "w17", "w25"]
    assert calls[0] == 6 + 2
    assert len(d.waiting_reasons) <= 4  # vc1's old and new heads: the 2,494 gangs behind them keep theirs
    # the 2-GPU shape failed before w25 took the last GPU: that failure no longer holds, one search
    s.submit(GangRequest("late2", "vc0", 0, (PodRequest("w", 0, 1, 1, 1),), 1e9))
    assert s.schedule(4).placements == [] and calls[0] == 9
    s.submit(GangRequest("late3", "vc1", 0, (PodRequest("w", 0, 1, 1, 2),), 1e9))
    visits[0] = 0
    assert s.schedule(5).placements == [] and calls[0] == 9  # nothing changed for any shape
    assert visits[0] == 8  # each shape's head, none of the other 9,993 gangs


def test_a_queue_shortcut_is_dropped_when_its_vc_changes():
    """A shape whose last failure depended on its VC is searched again after any change there (here
    a cancelled preemption gives the cells back), and never for a change in another VC."""
    s = HivedScheduler(load_config(_cluster(2)))
    s.submit(GangRequest("low", "vc0", 0, (PodRequest("w", 0, 1, 1, 8),)))
    s.schedule(0)
    s.submit(GangRequest("big", "vc0", 0, (PodRequest("w", 0, 1, 1, 4),), 1.0))
    s.submit(GangRequest("other", "vc1", 0, (PodRequest("w", 0, 1, 1, 8),), 1.0))
    s.submit(GangRequest("other2", "vc1", 0, (PodRequest("w", 0, 1, 1, 8),), 2.0))
    assert [p.gang_id for p in s.schedule(1).placements] == ["other"]
    calls = _count_searches(s)
    s.release("other")
    assert [p.gang_id for p in s.schedule(2).placements] == ["other2"]
    assert calls[0] == 1  # vc0's shape was not searched again


def test_opportunistic_shapes_of_other_vcs_take_a_failure_found_in_the_same_turn():
    """An opportunistic search reads no VC: once one VC's opportunistic gang of some size failed in
    a turn, the same size in the other VCs fails alike while no cell changed, so they are not
    searched, and they are told exactly what the full walk (which searches each) tells them. A
    placement in between changes the cells: the next shape is searched itself."""
    new, old = HivedScheduler(load_config(_cluster())), FullWalkHivedScheduler(load_config(_cluster()))
    both = (new, old)
    told: dict[str, str] = {}
    for v in range(4):
        for s in both:
            s.submit(GangRequest(f"run{v}", f"vc{v}", 0, (PodRequest("w", 0, 1, 1, 8),)))
    assert [len(s.schedule(0).placements) for s in both] == [4, 4]
    calls = _count_searches(new)
    for i in range(12):
        for s in both:
            s.submit(GangRequest(f"o{i}", f"vc{i % 4}", -1, (PodRequest("w", 0, 1, 1, 1),), float(i)))
    dn, do = new.schedule(1), old.schedule(1)
    assert calls[0] == 1  # the first VC's head; the three other shapes took its failure
    assert dn.waiting_reasons == do.waiting_reasons and len(dn.waiting_reasons) == 12
    told.update(dn.waiting_reasons)
    _check_reasons(new, old, told)
    assert {new.waiting_reason(f"o{v}") for v in range(4)} == {
        "opportunistic: 0 of 32 GPU idle in the cluster, waiting for 1 more (opportunistic jobs only use idle cells)"}

    calls[0] = 0
    for s in both:
        s.release("run3")
        s.submit(GangRequest("half", "vc3", 0, (PodRequest("w", 0, 1, 1, 4),), 99.0))
    dn, do = new.schedule(2), old.schedule(2)
    assert _decided(dn) == _decided(do)
    assert sorted(p.gang_id for p in dn.placements) == ["half", "o0", "o1", "o2", "o3"]
    # every placement changed the cells, so each of o0..o3 was searched; o4 (vc0) then failed,
    # and the later VCs' shapes took its failure
    assert calls[0] == 1 + 4 + 1
    assert dn.waiting_reasons == do.waiting_reasons
    told.update(dn.waiting_reasons)
    _check_reasons(new, old, told)


def test_an_opportunistic_failure_is_not_shared_once_the_cells_changed():
    """One GPU idle: vc0's 2-GPU opportunistic gang fails, vc1's 1-GPU one takes the GPU, so vc2's
    2-GPU gang is searched again (0 idle now, not 1) and told what the full walk tells it."""
    new, old = HivedScheduler(load_config(_cluster())), FullWalkHivedScheduler(load_config(_cluster()))
    both = (new, old)
    for v in range(4):
        for s in both:
            s.submit(GangRequest(f"run{v}", f"vc{v}", 0, (PodRequest("w", 0, 1, 1, 8 - (v == 3)),)))
    assert [len(s.schedule(0).placements) for s in both] == [4, 4]
    calls = _count_searches(new)
    for gid, vc, gpus in (("a", "vc0", 2), ("b", "vc1", 1), ("c", "vc2", 2)):
        for s in both:
            s.submit(GangRequest(gid, vc, -1, (PodRequest("w", 0, 1, 1, gpus),), float(ord(gid))))
    dn, do = new.schedule(1), old.schedule(1)
    assert [p.gang_id for p in dn.placements] == ["b"] and _decided(dn) == _decided(do)
    assert calls[0] == 3
    assert dn.waiting_reasons == do.waiting_reasons
    assert new.waiting_reason("a") == ("opportunistic: 1 of 32 GPU idle in the cluster, waiting for 1 more "
                                       "(opportunistic jobs only use idle cells)")
    assert new.waiting_reason("c") == ("opportunistic: 0 of 32 GPU idle in the cluster, waiting for 2 more "
                                       "(opportunistic jobs only use idle cells)")


_ORDER_SCRIPT = """
from pai_hub.scheduler.base import GangRequest, PodRequest
from pai_hub.scheduler.hived import HivedScheduler, load_config
from tests.scheduler.hived.test_queue import _cluster
s = HivedScheduler(load_config(_cluster(2)))
s.submit(GangRequest("run", "vc0", 0, (PodRequest("w", 0, 1, 1, 8),)))
s.submit(GangRequest("low", "vc1", -1, (PodRequest("w", 0, 1, 1, 8),)))
s.schedule(0)
for i in range(40):  # gangs behind a shape's head, two invalid ones and a preemptor
    s.submit(GangRequest(f"g{i}", "vc0", 0, (PodRequest("w", 0, 1, 1, 1 + i % 3),), 1.0 + i))
s.submit(GangRequest("bad1", "nowhere", 0, (PodRequest("w", 0, 1, 1, 1),), 50.0))
s.submit(GangRequest("bad2", "nowhere", 0, (PodRequest("w", 0, 1, 1, 1),), 51.0))
s.submit(GangRequest("high", "vc1", 100, (PodRequest("w", 0, 1, 1, 8),), 52.0))
print(list(s.schedule(1).waiting_reasons.items()))
"""


def test_waiting_reasons_come_in_the_same_order_whatever_the_string_hashing():
    """The reasons a turn hands out (and so the machine's Waiting events and their ids) are in an
    order that does not depend on Python's per-process string hashing."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    outs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        run = subprocess.run([sys.executable, "-c", _ORDER_SCRIPT], env=env, cwd=root, capture_output=True,
                             text=True, timeout=120, check=True)
        outs.add(run.stdout)
    assert len(outs) == 1, outs
    assert "g39" in outs.pop()
