"""The commit's fast paths keep its meaning: rows straight to SQLite's cursor still fail as
SQLAlchemy errors that hide the parameters, and the machine's list of new attempts spares the
query that would otherwise sort inserts from updates."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from pai_hub.store import jobs as job_store
from pai_hub.store.db import open_store, sqlite_url
from tests.orchestrator.test_machine import make_machine, submit
from tests.server import job_yaml


@pytest.fixture
def store(tmp_path):
    s = open_store(sqlite_url(tmp_path))
    yield s
    s.close()


def test_a_driver_error_on_the_direct_cursor_is_sqlalchemys_without_the_users_document(store):
    m = make_machine()
    job = submit(m, job_yaml("a", ["echo private-command-text"]))
    fx = m.take_effects()
    job_store.persist(store, fx)
    again = dataclasses.replace(fx, events=[])  # the same rows once more: the job's primary key is taken
    with pytest.raises(IntegrityError) as caught:
        job_store.persist(store, again)
    assert "UNIQUE constraint failed" in str(caught.value)
    assert "private-command-text" not in str(caught.value), "the parameters (a user's job) reached the message"
    jobs, attempts, tasks = job_store.load(store)
    assert [j.id for j in jobs] == [job.id] and len(attempts) == 1 and len(tasks) == 1


def test_the_machines_new_attempts_spare_the_lookup_and_a_retry_attempt_is_still_inserted(store):
    statements: list[str] = []
    m = make_machine()
    submit(m, job_yaml("a", ["false"], extra="jobRetryCount: 1"), now=0)
    first = m.take_effects()
    assert first.new_attempts == {(first.new_jobs[0].id, 0)}
    job_store.persist(store, first)
    [task_id] = [launch.task_id for launch in first.starts]
    m.task_running(task_id, 1, 1)
    m.task_exited(task_id, 1, 1, 2, 2)
    m.schedule(2)
    retry = m.take_effects()
    job_id = first.new_jobs[0].id
    assert retry.new_attempts == {(job_id, 1)} and (job_id, 0) in retry.attempts  # one new, one updated

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        job_store.persist(store, retry)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert not [s for s in statements if s.lstrip().upper().startswith("SELECT")], statements
    with store.engine.connect() as conn:
        stored = sorted(tuple(r) for r in conn.exec_driver_sql(
            "SELECT attempt_id, state FROM job_attempts WHERE job_id = ?", (job_id,)))
    assert stored == [(0, "FAILED"), (1, "WAITING")]


def test_effects_from_elsewhere_still_have_their_attempts_sorted_by_the_store(store):
    m = make_machine()
    submit(m, job_yaml("a", ["true"]))
    fx = m.take_effects()
    fx.new_attempts = None  # a producer that does not know (benchmarks.history seeds this way)
    job_store.persist(store, fx)
    [job], [attempt], _ = job_store.load(store)
    assert (attempt.job_id, attempt.attempt_id) == (job.id, 0)
