"""The state machine alone: virtual time, real scheduler and protocol, no processes."""

from __future__ import annotations

import pytest

from pai_hub import protocol
from pai_hub.core import GpuInfo, NodeInfo
from pai_hub.orchestrator.machine import Machine, platform_retry_delay
from pai_hub.orchestrator.records import EXIT_START_FAILED, EXIT_TASK_LOST, JobRecord
from pai_hub.orchestrator.specs import build_task_spec
from pai_hub.scheduler.gang import GangScheduler
from pai_runtime.ports import hashed_ports
from tests.server import job_yaml

NODE = NodeInfo("n1", "10.0.0.1", 8, 16384, tuple(GpuInfo(i, f"g{i}", "sim", 1, True) for i in range(4)))


def make_machine() -> Machine:
    sched = GangScheduler({NODE.name: (NODE.cpu, NODE.memory_mb, tuple(g.index for g in NODE.gpus))})
    return Machine(sched, [NODE], build_task_spec, hashed_ports)


def submit(m: Machine, text: str, now: float = 0.0) -> JobRecord:
    job = protocol.load(text)
    plan = protocol.render(job, username="u")
    record = JobRecord(id=0, framework_name=plan.framework_name, username="u", name=plan.name,
                       virtual_cluster="default", state="WAITING", config_yaml=text,
                       protocol=protocol.masked_config(job), secrets={}, submitted_at=now)
    m.submit(record, plan, now)
    m.schedule(now)
    return record


def run_all(m: Machine, now: float = 1.0) -> list[str]:
    fx = m.take_effects()
    for launch in fx.starts:
        m.task_running(launch.task_id, now, now)
    return [s.task_id for s in fx.starts]


def test_gang_is_placed_whole_and_tasks_get_distinct_gpus():
    m = make_machine()
    submit(m, job_yaml("g", ["true"], instances=2, gpu=2))
    fx = m.take_effects()
    assert len(fx.starts) == 2
    gpus = sorted(g for s in fx.starts for g in s.gpus)
    assert gpus == [0, 1, 2, 3]
    spec = fx.starts[0].spec
    assert {p["index"] for p in spec["peers"]} == {0, 1} and all(p["ip"] == "10.0.0.1" for p in spec["peers"])


def test_gang_waits_whole_with_a_reason_then_runs_when_gpus_free():
    m = make_machine()
    first = submit(m, job_yaml("a", ["true"], gpu=3))
    [a_task] = run_all(m)
    second = submit(m, job_yaml("b", ["true"], instances=2, gpu=1))
    assert not m.take_effects().starts
    assert second.state == "WAITING" and "1 of 4 free" in (second.waiting_reason or "")
    m.task_exited(a_task, 0, 1.0, 2.0, 2.0)
    m.schedule(2.0)
    assert first.state == "SUCCEEDED"
    assert len(m.take_effects().starts) == 2


def test_min_failed_two_tolerates_one_failure():
    m = make_machine()
    job = submit(m, job_yaml("t", ["x"], instances=3, completion="    completion:\n      minFailedInstances: 2"))
    t0, t1, t2 = run_all(m)
    m.task_exited(t0, 1, 1, 2, 2)
    assert job.state == "RUNNING"
    m.task_exited(t1, 0, 1, 2, 2)
    m.task_exited(t2, 0, 1, 2, 2)
    assert job.state == "SUCCEEDED"


def test_failure_stops_the_rest_and_fails_with_trigger_code():
    m = make_machine()
    job = submit(m, job_yaml("t", ["x"], instances=2))
    t0, t1 = run_all(m)
    m.task_exited(t0, 9, 1, 2, 2)
    fx = m.take_effects()
    assert [s[0] for s in fx.stops] == [t1]
    assert job.state == "RUNNING"  # completed, waiting for the other task to be stopped
    m.task_exited(t1, 143, 1, 3, 3)
    assert (job.state, job.exit_code) == ("FAILED", 9)
    assert job.exit_trigger == {"taskRole": "worker", "taskIndex": 0, "exitCode": 9}


def test_lost_task_is_a_transient_platform_retry():
    m = make_machine()
    job = submit(m, job_yaml("t", ["x"]))
    [t] = run_all(m)
    m.task_exited(t, -1101, 1, 2, 2)
    assert job.state == "WAITING" and job.retries_platform == 1 and job.retries_user == 0


def test_lost_before_start_is_launched_again_not_retried():
    m = make_machine()
    job = submit(m, job_yaml("t", ["x"]))
    fx = m.take_effects()
    [launch] = fx.starts
    m.task_exited(launch.task_id, -1101, None, 1, 1)  # backend never saw it
    again = m.take_effects().starts
    assert [s.task_id for s in again] == [launch.task_id]
    assert job.attempt_id == 0 and job.retries == 0


@pytest.mark.parametrize(("retry_count", "attempts"), [(0, 1), (2, 3)])
def test_job_retry_count(retry_count, attempts):
    m = make_machine()
    job = submit(m, job_yaml("t", ["x"], extra=f"jobRetryCount: {retry_count}"))
    for _ in range(attempts):
        [t] = run_all(m)
        m.task_exited(t, 1, 1, 2, 2)
        m.schedule(2)
    assert (job.state, job.retries_user, job.attempt_id) == ("FAILED", retry_count, retry_count)


def test_restore_rebinds_gpus_and_resumes_completion():
    m = make_machine()
    job = submit(m, job_yaml("t", ["x"], instances=2, gpu=2))
    t0, t1 = run_all(m)
    m.task_exited(t0, 0, 1, 2, 2)
    fx = m.take_effects()
    assert not fx.stops
    # a new machine from what the store would hold
    m2 = make_machine()
    tasks = [m.live.get(t1), next(t for t in m.tasks[job.id] if t.task_id == t0)]
    to_adopt = m2.restore([job], [m.attempts[job.id]], tasks,
                          lambda j: protocol.render(protocol.load_dict(j.protocol), username="u"), 3)
    assert to_adopt == [t1]
    other = submit(m2, job_yaml("other", ["x"], gpu=1), now=3)
    assert other.state == "WAITING"  # the 4 GPUs are still held by the restored job
    m2.task_exited(t1, 0, 1, 4, 4)
    m2.schedule(4)
    assert job.state == "SUCCEEDED" and other.state == "WAITING"
    assert m2.take_effects().starts  # other now placed


def test_debug_reservation_holds_cells_across_restart_until_expiry():
    m = make_machine()
    job = submit(m, job_yaml("dbg", ["x"], gpu=4, extra="extras:\n  debugReservation: {minutes: 1}"))
    [t] = run_all(m)
    m.task_exited(t, 2, 1, 2, 2, exit_info={"behavior": "UNKNOWN"})
    m.schedule(2)
    assert job.state == "FAILED" and m.next_deadline() == 62
    other = submit(m, job_yaml("other", ["x"], gpu=1), now=3)
    assert other.state == "WAITING"  # the failed job's GPUs are still held
    m2 = make_machine()
    m2.restore([job], [m.attempts[job.id]], list(m.tasks[job.id]),
               lambda j: protocol.render(protocol.load_dict(j.protocol), username="u"), 10)
    assert m2.next_deadline() == 62
    again = submit(m2, job_yaml("other2", ["x"], gpu=1), now=10)
    assert again.state == "WAITING"
    m2.expire_debug(62)
    m2.schedule(62)
    assert m2.take_effects().starts and m2.next_deadline() is None


def test_permanent_failure_is_not_retried_transient_is_capped():
    m = make_machine()
    job = submit(m, job_yaml("p", ["x"], extra="jobRetryCount: 5"))
    [t] = run_all(m)
    m.task_exited(t, 1, 1, 2, 2, exit_info={"behavior": "PERMANENT", "retryable": False})
    assert (job.state, job.retries) == ("FAILED", 0)
    m.max_platform_retries = 2
    job = submit(m, job_yaml("t", ["x"]))
    now = 2.0
    for retry in range(1, 4):
        [t] = run_all(m, now)
        m.task_exited(t, 137, now, now, now, exit_info={"behavior": "TRANSIENT"})
        if retry == 3:
            break
        # platform retries back off: the next attempt asks for cells only after 1 s, then 2 s
        until = m.next_deadline()
        assert until == now + platform_retry_delay(retry) == now + 2 ** (retry - 1)
        m.schedule(until - 0.01)
        assert not m.take_effects().starts and job.state == "WAITING" and "platform failure" in job.waiting_reason
        now = until
        m.schedule(now)
    assert (job.state, job.retries_platform) == ("FAILED", 2)


def test_platform_retry_delay_doubles_and_is_bounded():
    assert [platform_retry_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert platform_retry_delay(10**6) == 60


def test_a_job_stopped_while_its_retry_backs_off_stops_at_once():
    m = make_machine()
    job = submit(m, job_yaml("lost", ["x"]))
    [t] = run_all(m)
    m.task_exited(t, EXIT_TASK_LOST, 1, 2, 2, "no trace of the task's supervisor")
    assert job.id in m.held and job.state == "WAITING"
    m.stop(job.id, 2.5)
    assert job.state == "STOPPED" and not m.held
    m.schedule(10)
    assert not m.take_effects().starts


def test_a_start_failure_fails_the_job_once_with_its_cause():
    m = make_machine()
    job = submit(m, job_yaml("nodir", ["x"], extra="jobRetryCount: 3"))
    [t] = run_all(m)
    m.task_exited(t, EXIT_START_FAILED, None, 2, 2, "cannot create task directory /r/tasks/1: Permission denied")
    assert (job.state, job.retries_platform, job.retries_user) == ("FAILED", 0, 0)
    assert job.exit_diagnostics == ("task worker[0] failed with exit code -200: cannot create task directory "
                                    "/r/tasks/1: Permission denied")


def test_a_job_that_ended_leaves_the_machine_after_its_turn_and_its_name_stays_taken():
    m = make_machine()
    job = submit(m, job_yaml("once", ["true"], instances=2))
    tasks = run_all(m)
    for task_id in tasks:
        m.task_exited(task_id, 0, 1.0, 2.0, 2.0)
    assert job.state == "SUCCEEDED" and m.jobs, "held until its turn's effects are taken"
    fx = m.take_effects()
    assert fx.jobs[job.id].state == "SUCCEEDED"  # the effects still carry it to the store
    assert not (m.jobs or m.tasks or m.attempts or m.plans or m.live or m.completing)
    assert "u~once" in m.names and m.names.get("u~once") is None
    m.stop(job.id, 3.0)  # a stop for a job that left memory changes nothing
    assert not m.take_effects()


def test_a_job_kept_for_debugging_stays_until_its_reservation_ends():
    sched = GangScheduler({NODE.name: (NODE.cpu, NODE.memory_mb, tuple(g.index for g in NODE.gpus))})
    m = Machine(sched, [NODE], build_task_spec, hashed_ports, debug_default_minutes=5)
    job = submit(m, job_yaml("broken", ["false"], gpu=1))
    [task_id] = run_all(m)
    m.task_exited(task_id, 1, 1.0, 2.0, 2.0)
    m.take_effects()
    assert job.state == "FAILED" and m.jobs[job.id] is job and m.debugging
    assert m.release_debug(job.id, 3.0)
    m.take_effects()
    assert not m.jobs and not m.tasks and "u~broken" in m.names


def test_restore_holds_live_jobs_only_and_never_reuses_an_id():
    m = make_machine()
    done = submit(m, job_yaml("done", ["true"]))
    [task_id] = run_all(m)
    m.task_exited(task_id, 0, 1.0, 2.0, 2.0)
    waiting = submit(m, job_yaml("waiting", ["true"], gpu=4))
    fx = m.take_effects()
    restarted = make_machine()
    restarted.restore([done, waiting], list(fx.attempts.values()), list(fx.new_tasks.values()),
                      lambda j: protocol.render(protocol.load(j.config_yaml), username="u"), 5.0, last_job_id=41)
    assert list(restarted.jobs) == [waiting.id] and "u~done" in restarted.names
    assert restarted.next_job_id == 42


def test_a_task_retried_in_place_after_a_platform_failure_backs_off_and_is_bounded():
    m = make_machine()
    m.max_platform_retries = 2
    job = submit(m, job_yaml("solo", ["x"], extra="extras:\n  gangAllocation: false"))
    now = 1.0
    [t] = run_all(m, now)
    for retry in (1, 2):
        m.task_exited(t, EXIT_TASK_LOST, now, now, now, "no trace of the task's supervisor")
        [waiting] = m.tasks[job.id]
        assert waiting.launch_state == "launching" and m.next_deadline() == now + 2 ** (retry - 1)
        m.schedule(m.next_deadline() - 0.01)
        assert not m.take_effects().starts  # not before its backoff
        now = m.next_deadline()
        m.schedule(now)
        [t] = run_all(m, now)
        assert t == waiting.task_id and job.retries_platform == retry
    m.task_exited(t, EXIT_TASK_LOST, now, now, now, "no trace of the task's supervisor")
    assert job.state == "FAILED" and job.retries_platform == 2  # the bound holds for tasks too


def test_a_job_stopped_while_a_task_retry_backs_off_stops_at_once():
    m = make_machine()
    job = submit(m, job_yaml("solo", ["x"], extra="extras:\n  gangAllocation: false"))
    [t] = run_all(m)
    m.task_exited(t, EXIT_TASK_LOST, 1, 2, 2, "lost")
    assert m.delayed
    m.stop(job.id, 2.5)
    fx = m.take_effects()
    assert job.state == "STOPPED" and not m.delayed and not fx.stops and not fx.starts
