"""A turn's commit is all or nothing, and can be retried safely (the loop retries failed commits)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from pai_hub.orchestrator.effects import Effects
from pai_hub.store import jobs as job_store
from pai_hub.store.db import open_store, sqlite_url
from tests.orchestrator.test_machine import make_machine, submit
from tests.server import job_yaml


@pytest.fixture
def store(tmp_path):
    s = open_store(sqlite_url(tmp_path))
    yield s
    s.close()


def _turn() -> Effects:
    m = make_machine()
    submit(m, job_yaml("a", ["true"], instances=2))
    return m.take_effects()


def test_a_failed_commit_leaves_nothing_and_its_retry_stores_everything_once(store, monkeypatch):
    fx = _turn()

    def disk_full(_event: object) -> dict:
        raise OperationalError("INSERT INTO events", None, OSError("database or disk is full"))

    # the transaction fails at its last step, the events, after the job, attempt and task rows
    with monkeypatch.context() as patch:
        patch.setattr(job_store, "asdict", disk_full)
        with pytest.raises(OperationalError):
            job_store.persist(store, fx)
    jobs, attempts, tasks = job_store.load(store)
    assert not jobs and not attempts and not tasks, "the failed transaction was rolled back"

    assert not job_store.committed(store, fx)  # the store works again: the same effects are retried
    job_store.persist(store, fx)
    assert job_store.committed(store, fx), "a retry after a commit that did land must not write twice"
    jobs, attempts, tasks = job_store.load(store)
    assert [j.framework_name for j in jobs] == ["u~a"] and len(attempts) == 1 and len(tasks) == 2


def test_states_come_back_as_the_enums_they_were_stored_from(store):
    fx = _turn()
    job_store.persist(store, fx)
    [job], [attempt], tasks = job_store.load(store)
    assert job.state is fx.new_jobs[0].state
    assert attempt.state is next(iter(fx.attempts.values())).state
    assert {t.launch_state for t in tasks} == {t.launch_state for t in fx.new_tasks.values()}
    assert all(type(t.launch_state).__name__ == "LaunchState" for t in tasks)
