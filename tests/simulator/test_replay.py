"""Small synthetic traces whose answers are known, replayed through the real machine."""

from __future__ import annotations

import pytest

from pai_hub.scheduler.base import GangRequest, PodRequest
from pai_hub.simulator import (
    QuotaFifoScheduler,
    SimJob,
    parse_cluster,
    parse_csv,
    run_simulation,
    simulate,
)
from pai_hub.simulator.metrics import distribution, percentile

from .conftest import SCHEDULERS_WITH_VCS, two_node_config


def job(name: str, t: float, d: float, gpus: int, vc: str, priority: int = 100, instances: int = 1) -> SimJob:
    return SimJob(name=name, user="u", vc=vc, submit_time=t, duration=d, gpus=gpus, instances=instances,
                  priority=priority)


def by_name(result):
    return {o.job.name: o for o in result.outcomes}


@pytest.mark.parametrize("scheduler", SCHEDULERS_WITH_VCS)
def test_two_vcs_one_full_queueing_and_utilisation_exact(scheduler):
    jobs = [job("a1", 0, 100, 4, "a"), job("a2", 0, 100, 4, "a"), job("b1", 10, 50, 2, "b")]
    result = run_simulation(jobs, two_node_config(), scheduler)
    o = by_name(result)
    assert [o[n].queueing for n in ("a1", "a2", "b1")] == [0, 100, 0]
    assert [o[n].jct for n in ("a1", "a2", "b1")] == [100, 200, 50]
    assert all(x.state == "SUCCEEDED" for x in result.outcomes)
    from pai_hub.simulator import make_report

    report = make_report(result)
    overall = report["overall"]
    assert report["makespan_s"] == 200
    assert overall["gpu_seconds"] == 4 * 100 + 4 * 100 + 2 * 50
    assert overall["gpu_utilisation"] == pytest.approx(900 / (8 * 200))
    assert overall["queueing_delay_s"] == {"mean": 33.333, "p50": 0.0, "p95": 90.0, "max": 100.0}
    assert overall["jct_s"]["mean"] == pytest.approx(116.667)
    assert report["vcs"]["a"]["gpu_utilisation"] == pytest.approx(800 / (4 * 200))
    assert report["vcs"]["a"]["queueing_delay_s"]["mean"] == 50.0
    assert report["vcs"]["b"]["queueing_delay_s"]["mean"] == 0.0
    assert overall["guarantee_violations"]["gangs"] == 0
    assert overall["preemptions"] == 0


def test_gang_scheduler_lets_a_vc_take_anothers_quota_and_that_is_a_violation():
    jobs = [job("a1", 0, 100, 4, "a"), job("a2", 0, 100, 4, "a"), job("b1", 10, 50, 2, "b")]
    report = simulate(jobs, two_node_config(), "gang")
    assert report["vcs"]["b"]["queueing_delay_s"]["mean"] == 90.0  # a2 took b's node at t=0
    assert report["vcs"]["b"]["guarantee_violations"] == {"gangs": 1, "decision_points": 1, "seconds": 90.0}
    assert report["vcs"]["a"]["guarantee_violations"]["gangs"] == 0


def test_fifo_is_strict_within_a_vc_and_orders_by_priority():
    jobs = [
        job("big-running", 0, 100, 2, "a"),
        job("waits-for-4", 1, 10, 4, "a"),
        job("small-behind", 2, 10, 1, "a"),  # would fit now, but FIFO: waits behind waits-for-4
        job("prod-later", 3, 10, 2, "a", priority=120),  # higher priority: ahead of both waiters
    ]
    o = by_name(run_simulation(jobs, two_node_config(), "fifo"))
    assert o["prod-later"].first_start == 3  # 2 + 2 GPUs = quota 4
    assert o["waits-for-4"].first_start == 100  # both running jobs gone by t=100
    assert o["small-behind"].first_start == 110
    assert o["small-behind"].queueing == 108


def test_hived_has_no_head_of_line_blocking():
    jobs = [job("big-running", 0, 100, 2, "a"), job("waits-for-4", 1, 10, 4, "a"), job("small", 2, 10, 1, "a")]
    o = by_name(run_simulation(jobs, two_node_config(), "hived"))
    assert o["small"].queueing == 0
    assert o["waits-for-4"].first_start == 100


def fragmenting_trace() -> list[SimJob]:
    # a's 1-GPU job lands on n0; b's 3-GPU job fills n0 (best fit), b's 1-GPU job goes to n1.
    # When a's job ends, a's quota (one 4-GPU node) is unused, but only 1 + 3 GPUs are free.
    return [job("a-small", 0, 10, 1, "a"), job("b-3", 1, 100, 3, "b"), job("b-1", 2, 100, 1, "b"),
            job("a-4", 11, 10, 4, "a")]


def test_quota_fifo_fragmentation_is_a_guarantee_violation():
    report = simulate(fragmenting_trace(), two_node_config(), "fifo")
    a = report["vcs"]["a"]
    assert a["guarantee_violations"] == {"gangs": 1, "decision_points": 1, "seconds": 90.0}
    assert a["queueing_delay_s"]["max"] == 90.0  # a-4 waits until b's jobs end at 101


def test_hived_keeps_the_guarantee_where_quota_fifo_fragments():
    report = simulate(fragmenting_trace(), two_node_config(), "hived")
    assert report["overall"]["guarantee_violations"]["gangs"] == 0
    assert report["vcs"]["a"]["queueing_delay_s"]["max"] == 0.0


def test_hived_preempts_opportunistic_jobs_and_the_victim_is_requeued():
    jobs = [job("oppo-1", 0, 100, 4, "b", priority=-1), job("oppo-2", 0, 100, 4, "b", priority=-1),
            job("prod", 10, 50, 4, "a")]
    result = run_simulation(jobs, two_node_config(), "hived")
    o = by_name(result)
    assert o["prod"].queueing == 0 and o["prod"].jct == 50
    victims = [o[n] for n in ("oppo-1", "oppo-2") if o[n].preempted]
    assert len(victims) == 1
    v = victims[0]
    assert v.attempts == 2 and v.state == "SUCCEEDED"
    assert v.queueing == 50  # requeued at 10, placed when prod ends at 60
    assert v.jct == 160 and v.gpu_seconds == 4 * 10 + 4 * 100
    from pai_hub.simulator import make_report

    report = make_report(result)
    assert report["overall"]["preemptions"] == 1 and report["vcs"]["b"]["preemptions"] == 1
    assert report["overall"]["guarantee_violations"]["gangs"] == 0


@pytest.mark.parametrize("scheduler", SCHEDULERS_WITH_VCS)
def test_multi_task_gangs_start_together(scheduler):
    jobs = [job("g", 0, 30, 2, "a", instances=2), job("h", 0, 30, 4, "a", instances=1)]
    o = by_name(run_simulation(jobs, two_node_config(), scheduler))
    assert o["g"].queueing == 0 and o["g"].gpu_seconds == 2 * 2 * 30
    assert o["h"].queueing == 30


def test_csv_trace_replays():
    jobs = parse_csv("submit_time,duration,gpus,instances,vc,priority\n0,5,1,1,a,prod\n1,5,1,1,b,oppo\n")
    report = simulate(jobs, two_node_config(), "fifo")
    assert report["overall"]["finished"] == 2 and report["makespan_s"] == 6


def test_gang_that_can_never_fit_does_not_block_its_vc():
    sched = QuotaFifoScheduler([("n0", 4, "GPU")], {"a": 4})
    sched.submit(GangRequest("1.0", "a", 10, (PodRequest("w", 0, 0, 0, 8),), 0.0))
    sched.submit(GangRequest("2.0", "a", 10, (PodRequest("w", 0, 0, 0, 1),), 1.0))
    d = sched.schedule(0)
    assert [p.gang_id for p in d.placements] == ["2.0"]
    assert "quota is 4" in sched.waiting_reason("1.0")


def test_unfinished_jobs_are_counted():
    cluster = parse_cluster(two_node_config())
    report = simulate([job("too-big", 0, 5, 8, "a")], cluster, "fifo")
    assert report["overall"]["unfinished"] == 1 and report["overall"]["finished"] == 0


def test_percentiles():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([0, 0, 100], 95) == pytest.approx(90.0)
    assert distribution([]) == {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
