"""A turn's commit is all or nothing, and can be retried safely (the loop retries failed commits)."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest
from sqlalchemy import event, text
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

    def disk_full(_conn, _cursor, statement, *_args) -> None:
        if statement.startswith("INSERT INTO events"):
            raise sqlite3.OperationalError("database or disk is full")

    # the transaction fails at its last step, the events, after the job, attempt and task rows
    event.listen(store.engine, "before_cursor_execute", disk_full)
    try:
        with pytest.raises(OperationalError):
            job_store.persist(store, fx)
    finally:
        event.remove(store.engine, "before_cursor_execute", disk_full)
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


def _turns() -> tuple[list[Effects], object]:
    """Turns that write every kind of row: a submission (jobs, attempts, tasks, events), tasks
    running, one failing with an exit analysis (task and job updates, a new attempt beside an
    updated one, new task rows)."""
    m = make_machine()
    a = submit(m, job_yaml("a", ["true"], instances=2, extra="jobRetryCount: 1\ndescription: ünicode"), now=0)
    a.tags = ["x", "ü"]
    submit(m, job_yaml("b", ["true"]), now=0.5)
    turns = [m.take_effects()]
    started = [launch.task_id for launch in turns[0].starts]
    for task_id in started:
        m.task_running(task_id, 1, 1)
    turns.append(m.take_effects())
    m.task_exited(started[0], 3, 1, 2, 2, exit_info={"behavior": "TRANSIENT", "reason": "ünicode"})
    m.schedule(2)
    turns.append(m.take_effects())
    return turns, m


def _raw_rows(store) -> dict[str, list[tuple]]:
    """Every stored value with its SQLite storage class: the bytes a reader sees."""
    out = {}
    with store.engine.connect() as conn:
        for table, key in [("jobs", "id"), ("job_attempts", "job_id, attempt_id"), ("task_attempts", "task_id"),
                           ("events", "id")]:
            cols = [r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table})")]
            sel = ", ".join(f"{c}, typeof({c})" for c in cols)
            out[table] = [tuple(r) for r in conn.execute(text(f"SELECT {sel} FROM {table} ORDER BY {key}"))]
    return out


def test_a_persisted_turn_reads_back_as_it_was_and_the_driver_path_stores_what_core_stores(tmp_path, monkeypatch):
    turns, _machine = _turns()
    assert any(fx.new_jobs for fx in turns) and any(fx.tasks for fx in turns) and any(fx.jobs for fx in turns)
    assert sum(len(fx.attempts) for fx in turns) > len(turns[0].attempts), "a retry writes a second attempt"

    (tmp_path / "fast").mkdir()
    (tmp_path / "core").mkdir()
    fast = open_store(sqlite_url(tmp_path / "fast"))
    core = open_store(sqlite_url(tmp_path / "core"))
    try:
        for fx in turns:
            job_store.persist(fast, fx)
        with monkeypatch.context() as patch:  # SQLAlchemy Core's path, the one other dialects take
            patch.setattr(job_store, "_driver_sql", lambda _conn: False)
            for fx in turns:
                job_store.persist(core, fx)
        assert _raw_rows(fast) == _raw_rows(core)

        jobs, attempts, tasks = job_store.load(fast)
        live = {j.id: j for fx in turns for j in [*fx.new_jobs, *fx.jobs.values()]}
        assert sorted(jobs, key=lambda j: j.id) == [live[i] for i in sorted(live)]
        latest = {}
        for fx in turns:
            latest.update(fx.attempts)
        assert sorted(attempts, key=lambda a: a.job_id) == [
            a for k, a in sorted(latest.items()) if a.attempt_id == live[k[0]].attempt_id]
        all_tasks = {}
        for fx in turns:
            all_tasks.update(fx.new_tasks)
            all_tasks.update(fx.tasks)
        assert {t.task_id: t for t in tasks} == {
            k: t for k, t in all_tasks.items() if t.job_attempt_id == live[t.job_id].attempt_id}
        for job_id in live:
            stored = {t.task_id: t for t in job_store.task_history(fast, job_id)}
            assert stored == {k: t for k, t in all_tasks.items() if t.job_id == job_id}
            assert job_store.events(fast, job_id) == [
                dataclasses.asdict(e) for fx in turns for e in fx.events if e.job_id == job_id]
    finally:
        fast.close()
        core.close()
