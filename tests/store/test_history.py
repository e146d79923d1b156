"""History from the store: a restart loads live jobs only; lists are indexed queries paged by keyset."""

from __future__ import annotations

import pytest

from pai_hub import protocol
from pai_hub.orchestrator.machine import Machine
from pai_hub.orchestrator.records import JobRecord
from pai_hub.store import history
from pai_hub.store import jobs as job_store
from pai_hub.store.db import open_store, sqlite_url
from pai_hub.store.history import JobQuery
from tests.orchestrator.test_machine import make_machine
from tests.server import job_yaml


@pytest.fixture
def store(tmp_path):
    s = open_store(sqlite_url(tmp_path))
    yield s
    s.close()


def add(m: Machine, name: str, user: str = "u", vc: str = "default", now: float = 0.0, gpu: int = 0) -> JobRecord:
    text = job_yaml(name, ["true"], gpu=gpu)
    plan = protocol.render(protocol.load(text), username=user)
    job = JobRecord(id=0, framework_name=plan.framework_name, username=user, name=name, virtual_cluster=vc,
                    state="WAITING", config_yaml=text, protocol={}, secrets={}, submitted_at=now)
    m.submit(job, plan, now)
    return job


def finish(m: Machine, store, now: float = 1.0, code: int = 0) -> None:
    """Place, run and end every job the machine holds, committing each turn as the loop does."""
    m.schedule(now)
    fx = m.take_effects()
    job_store.persist(store, fx)
    for launch in fx.starts:
        m.task_running(launch.task_id, now, now)
        m.task_exited(launch.task_id, code, now, now, now)
    job_store.persist(store, m.take_effects())


def test_a_restart_loads_live_jobs_only_and_every_name(store):
    m = make_machine()
    for i in range(5):
        add(m, f"old-{i}")
    finish(m, store)
    assert not m.jobs
    add(m, "waiting", gpu=8)  # more GPUs than the node has free: it waits
    m.schedule(2.0)
    job_store.persist(store, m.take_effects())
    jobs, attempts, tasks = job_store.load(store)
    assert [j.name for j in jobs] == ["waiting"] and len(attempts) == 1 and len(tasks) == 1
    assert sorted(job_store.job_names(store)) == sorted([f"u~old-{i}" for i in range(5)] + ["u~waiting"])
    assert job_store.last_job_id(store) == 6


def test_filters_order_and_keyset_pages_that_new_jobs_do_not_shift(store):
    m = make_machine()
    for i in range(6):
        add(m, f"job-{i}", user="ann" if i % 2 else "bob", vc="vc1" if i < 3 else "vc2", now=float(i))
    finish(m, store)
    everyone = history.list_jobs(store, JobQuery(), 0, 100, with_total=True)
    assert [j.name for j in everyone.jobs] == [f"job-{i}" for i in reversed(range(6))] and everyone.total == 6
    ann = history.list_jobs(store, JobQuery(usernames=("ann",)), 0, 100).jobs
    assert [j.name for j in ann] == ["job-5", "job-3", "job-1"]
    vc_state = history.list_jobs(store, JobQuery(virtual_clusters=("vc2",), states=("SUCCEEDED",)), 0, 100).jobs
    assert [j.name for j in vc_state] == ["job-5", "job-4", "job-3"]
    assert [j.name for j in history.list_jobs(store, JobQuery(keyword="B-2"), 0, 10).jobs] == ["job-2"]
    by_name = history.list_jobs(store, JobQuery(order="jobName", descending=False), 1, 2).jobs
    assert [j.name for j in by_name] == ["job-1", "job-2"]

    first = history.list_jobs(store, JobQuery(), 0, 2)
    add(m, "newest", now=10.0)  # arrives between two pages: it sorts first
    finish(m, store, now=11.0)
    second = history.list_jobs(store, JobQuery(), 0, 2, after=first.last)
    assert [j.name for j in first.jobs + second.jobs] == ["job-5", "job-4", "job-3", "job-2"]
    assert history.list_jobs(store, JobQuery(), 2, 2).jobs[0].name == "job-4"  # plain OFFSET shifts


def test_an_ended_job_reads_back_whole(store):
    m = make_machine()
    job = add(m, "done")
    finish(m, store)
    stored = history.job_by_name(store, "u~done")
    assert stored is not None and stored.state == "SUCCEEDED" and stored.config_yaml == job.config_yaml
    attempt, tasks = history.current_attempt(store, stored)
    assert attempt is not None and attempt.state == "SUCCEEDED"
    assert [(t.role, t.state) for t in tasks] == [("worker", "SUCCEEDED")]
    assert history.job_by_name(store, "u~never") is None
