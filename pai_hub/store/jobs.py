"""Jobs, attempts, task attempts and events: load the live jobs at start, write each turn's changes.

Writes are batched: one transaction per orchestrator turn, with executemany inserts and
updates by primary key, so a burst of submissions costs one commit (group commit).

On SQLite the rows go to the driver as plain tuples (statements built once per table, JSON encoded
here with ``json.dumps`` as SQLAlchemy's JSON type does): SQLAlchemy's per-row parameter processing
was two thirds of a 10,000-job turn. They go straight to the DBAPI cursor of the turn's transaction
unless someone listens to SQLAlchemy's cursor events: most turns carry a job or two, and
SQLAlchemy's own cost per statement (~60 µs: execution context, result set-up) was most of such a
turn's commit. Other dialects take SQLAlchemy Core's ``insert``/``update``, which bind and encode
the same values through the column types.

A job's ``secrets`` are sealed on insert and opened on load with the store's key
(:mod:`.secretbox`); the machine holds them in the clear, only the rows are sealed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from operator import attrgetter
from typing import Any

from sqlalchemy import JSON, Float, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError

from ..orchestrator.effects import Effects
from ..orchestrator.records import EventRecord, JobAttemptRecord, JobRecord, TaskRecord
from ..orchestrator.states import TERMINAL_JOB_STATES, JobState
from .db import Store
from .models import Event, Job, JobAttempt, TaskAttempt

_JOB_FIELDS = [f.name for f in fields(JobRecord)]
_TASK_FIELDS = [f.name for f in fields(TaskRecord)]
_ATTEMPT_FIELDS = [f.name for f in fields(JobAttemptRecord)]
# Updates write only what can change: re-serialising a job's protocol on every transition was
# the single largest cost of a turn.
_JOB_IMMUTABLE = {"id", "framework_name", "username", "name", "virtual_cluster", "config_yaml", "protocol",
                  "secrets", "submitted_at", "priority", "job_priority", "total_gpu", "total_tasks",
                  "total_task_roles"}
_JOB_MUTABLE = [f for f in _JOB_FIELDS if f not in _JOB_IMMUTABLE]
_TASK_MUTABLE = [f for f in _TASK_FIELDS if f not in {"task_id", "job_id", "job_attempt_id", "role", "task_index",
                                                      "attempt_id", "task_uid", "created_at"}]
_ATTEMPT_MUTABLE = [f for f in _ATTEMPT_FIELDS if f not in {"job_id", "attempt_id", "created_at"}]
_EVENT_FIELDS = [f.name for f in fields(EventRecord)]
_STATEMENTS: dict[tuple, Any] = {}


def _row(obj: Any, names: list[str]) -> dict[str, Any]:
    d = obj.__dict__
    return {n: d[n] for n in names}


def _update_many(conn, model, keys: tuple[str, ...], columns: list[str], rows: list[dict[str, Any]]) -> None:
    """UPDATE ... WHERE <keys> as one executemany; bind names are prefixed (Core reserves column names)."""
    stmt = _STATEMENTS.get((model, keys))
    if stmt is None:
        table = model.__table__
        stmt = _STATEMENTS[(model, keys)] = (
            update(table)
            .where(*[table.c[k] == bindparam("k_" + k) for k in keys])
            .values({c: bindparam("v_" + c) for c in columns})
        )
    conn.execute(stmt, [{**{"k_" + k: r[k] for k in keys}, **{"v_" + c: r[c] for c in columns}} for r in rows])


class _DriverRows:
    """One table's INSERT, or UPDATE by key, as SQL for a qmark driver, and the tuple of one record's
    values in that statement's order: JSON columns first (encoded once here), then the others."""

    def __init__(self, dialect, model, columns: list[str], keys: tuple[str, ...] = ()) -> None:
        table = model.__table__
        quote = dialect.identifier_preparer.quote
        encoded = [c for c in columns if isinstance(table.c[c].type, JSON)]
        plain = [c for c in columns if c not in encoded]
        # only what the column types would pass on as they are (or encode as json.dumps does) goes
        # to the driver unprocessed; a column type that converts its values keeps the table on Core.
        # Float's float() is left to SQLite: a FLOAT column has REAL affinity, which stores an int as
        # the same REAL.
        def as_is(c: str) -> bool:
            impl = table.c[c].type.dialect_impl(dialect)
            return isinstance(impl, Float) or impl.bind_processor(dialect) is None

        self.usable = getattr(dialect, "_json_serializer", None) in (None, json.dumps) and all(
            as_is(c) for c in plain + list(keys))
        order = encoded + plain
        if keys:
            self.sql = (f"UPDATE {quote(table.name)} SET {', '.join(f'{quote(c)} = ?' for c in order)} "
                        f"WHERE {' AND '.join(f'{quote(k)} = ?' for k in keys)}")
        else:
            self.sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in order)}) "
                        f"VALUES ({', '.join('?' for _ in order)})")
        self.tuple = _tuple_of(encoded, plain + list(keys))


_encode = json.JSONEncoder().encode  # json.dumps with its defaults: SQLAlchemy's serializer, same text


def _json(value: Any) -> str:
    """``value`` as SQLAlchemy's JSON type stores it (``None`` as ``'null'``), without the encoder
    for the empty and missing values that most columns hold."""
    if value is None:
        return "null"
    if not value:
        t = type(value)
        if t is list:
            return "[]"
        if t is dict:
            return "{}"
    return _encode(value)


def _tuple_of(encoded: list[str], plain: list[str]) -> Callable[[Any], tuple]:
    """A record's values: ``encoded`` as JSON text (see :func:`_json`), then ``plain`` as they are
    (str enums bind as their value)."""
    dumps = _json
    get_plain = attrgetter(*plain)
    if len(plain) == 1:
        get_plain = (lambda g: lambda o: (g(o),))(get_plain)
    if not encoded:
        return get_plain
    if len(encoded) == 1:
        get_one = attrgetter(encoded[0])
        return lambda o: (dumps(get_one(o)), *get_plain(o))
    get_encoded = attrgetter(*encoded)
    return lambda o: (*map(dumps, get_encoded(o)), *get_plain(o))


_DRIVER_ROWS: dict[tuple, _DriverRows] = {}


def _driver_rows(dialect, model, columns: list[str], keys: tuple[str, ...] = ()) -> _DriverRows:
    spec = _DRIVER_ROWS.get((dialect.name, model, keys))
    if spec is None:
        spec = _DRIVER_ROWS[(dialect.name, model, keys)] = _DriverRows(dialect, model, columns, keys)
    return spec


def _driver_sql(conn) -> bool:
    """Whether rows go to the driver as tuples (SQLite's qmark driver) or through SQLAlchemy Core."""
    return conn.dialect.name == "sqlite" and conn.dialect.paramstyle == "qmark"


def _statements(conn) -> Callable[[str, list[tuple]], None]:
    """How the turn's statements run: ``write(sql, rows)`` on the transaction's own DBAPI cursor,
    SQLAlchemy's execution machinery skipped; with a cursor-event listener (tests inject faults
    that way) through ``exec_driver_sql``, so listeners see every statement. A driver error is
    raised as SQLAlchemy's (``OperationalError`` …), as from ``exec_driver_sql``, without the
    parameters (they hold users' documents)."""
    dispatch = conn.dispatch
    if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
        return conn.exec_driver_sql
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = None

    def write(sql: str, rows: list[tuple]) -> None:
        nonlocal cursor
        try:
            if cursor is None:
                cursor = conn.connection.dbapi_connection.cursor()
            if len(rows) == 1:
                cursor.execute(sql, rows[0])
            else:
                cursor.executemany(sql, rows)
        except dbapi_error as exc:
            raise DBAPIError.instance(sql, None, exc, dbapi_error, hide_parameters=True,
                                      dialect=conn.dialect) from exc

    return write


def _insert(conn, write, model, names: list[str], records: list[Any]) -> None:
    spec = _driver_rows(conn.dialect, model, names) if write is not None else None
    if spec is not None and spec.usable:
        write(spec.sql, list(map(spec.tuple, records)))
    else:
        conn.execute(insert(model), [_row(r, names) for r in records])


def _update(conn, write, model, keys: tuple[str, ...], columns: list[str], names: list[str],
            records: list[Any]) -> None:
    spec = _driver_rows(conn.dialect, model, columns, keys) if write is not None else None
    if spec is not None and spec.usable:
        write(spec.sql, list(map(spec.tuple, records)))
    else:
        _update_many(conn, model, keys, columns, [_row(r, names) for r in records])


def _sealed(store: Store, jobs: list[JobRecord]) -> list[JobRecord]:
    """The new jobs as stored: a copy with its secrets sealed for each job that has any (the
    machine's records keep them open); jobs without secrets are not copied."""
    box = store.box
    if box is None:
        return jobs
    return [replace(j, secrets=box.seal(j.secrets)) if j.secrets else j for j in jobs]


def _opened(store: Store, job: JobRecord) -> JobRecord:
    """A job read from its row, its secrets opened in place (sealed or, from before encryption, plain)."""
    if job.secrets:
        job.secrets = store.box.open(job.secrets) if store.box is not None else job.secrets
    return job


def seal_plaintext_rows(store: Store, box: Any) -> int:
    """Seal the secrets of rows written before encryption (see :func:`.secretbox.open_box`).
    Returns how many rows were sealed."""
    from .secretbox import is_sealed

    with store.engine.begin() as conn:
        todo = [(i, v) for i, v in conn.execute(select(Job.id, Job.secrets)) if v and not is_sealed(v)]
        if todo:
            table = Job.__table__
            conn.execute(update(table).where(table.c.id == bindparam("k_id")).values(secrets=bindparam("v_s")),
                         [{"k_id": i, "v_s": box.seal(v)} for i, v in todo])
    return len(todo)


def _new_and_old_attempts(conn, fx: Effects) -> tuple[list[JobAttemptRecord], list[JobAttemptRecord]]:
    """The turn's attempts to insert and to update. The machine says which it created
    (``fx.new_attempts``); otherwise an attempt of a job new in this turn is new, and the store is
    asked about the others."""
    if fx.new_attempts is not None:
        created = fx.new_attempts
        return ([a for k, a in fx.attempts.items() if k in created],
                [a for k, a in fx.attempts.items() if k not in created])
    new_job_ids = {j.id for j in fx.new_jobs}
    old_job_ids = {k[0] for k in fx.attempts} - new_job_ids
    existing: set[tuple[int, int]] = set()
    if old_job_ids:
        rows = conn.execute(
            select(JobAttempt.job_id, JobAttempt.attempt_id).where(JobAttempt.job_id.in_(old_job_ids))
        )
        existing = {(r[0], r[1]) for r in rows}
    if not existing:
        return list(fx.attempts.values()), []
    return ([a for k, a in fx.attempts.items() if k not in existing],
            [a for k, a in fx.attempts.items() if k in existing])


def persist(store: Store, fx: Effects) -> None:
    """Commit one turn's effects in one transaction."""
    with store.engine.begin() as conn:
        # on SQLite, rows go to the driver as tuples (None: through SQLAlchemy Core)
        write = _statements(conn) if _driver_sql(conn) else None
        if fx.new_jobs:
            _insert(conn, write, Job, _JOB_FIELDS, _sealed(store, fx.new_jobs))
        if fx.attempts:
            new, old = _new_and_old_attempts(conn, fx)
            if new:
                _insert(conn, write, JobAttempt, _ATTEMPT_FIELDS, new)
            if old:
                _update(conn, write, JobAttempt, ("job_id", "attempt_id"), _ATTEMPT_MUTABLE, _ATTEMPT_FIELDS, old)
        if fx.jobs:
            _update(conn, write, Job, ("id",), _JOB_MUTABLE, _JOB_FIELDS, list(fx.jobs.values()))
        if fx.new_tasks:
            _insert(conn, write, TaskAttempt, _TASK_FIELDS, list(fx.new_tasks.values()))
        if fx.tasks:
            _update(conn, write, TaskAttempt, ("task_id",), _TASK_MUTABLE, _TASK_FIELDS, list(fx.tasks.values()))
        if fx.events:
            _insert(conn, write, Event, _EVENT_FIELDS, fx.events)


def committed(store: Store, fx: Effects) -> bool:
    """Whether ``fx`` is already stored: a commit reported as failed may have reached the database
    all the same (a connection lost after COMMIT). A turn's transaction is all or nothing, and every
    turn that inserts rows also appends events with ids the machine assigned, so its first event
    tells. A turn without events only updates rows by key, which is safe to write twice."""
    if not fx.events:
        return False
    with store.engine.connect() as conn:
        return conn.execute(select(Event.id).where(Event.id == fx.events[0].id)).first() is not None


def last_event_id(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.max(Event.id))).scalar() or 0


#: Job states a job can still leave: the jobs the control plane holds in memory.
LIVE_STATES = tuple(s.value for s in JobState if s not in TERMINAL_JOB_STATES)


def _live_job_ids():
    """Jobs still moving, and finished ones whose failed tasks are kept for debugging (both indexed)."""
    debugging = select(TaskAttempt.job_id).where(TaskAttempt.debug_until.is_not(None))
    return select(Job.id).where(or_(Job.state.in_(LIVE_STATES), Job.id.in_(debugging)))


def load(store: Store) -> tuple[list[JobRecord], list[JobAttemptRecord], list[TaskRecord]]:
    """The live jobs (see :func:`_live_job_ids`), the latest attempt of each and the task attempts of
    their latest attempt. Finished jobs stay in the store: a restart costs what the live jobs cost,
    not what the history does (their names: :func:`job_names`)."""
    live = _live_job_ids()
    with store.engine.connect() as conn:
        job_rows = conn.execute(select(*[Job.__table__.c[n] for n in _JOB_FIELDS]).where(Job.id.in_(live)))
        jobs = [_opened(store, JobRecord(**dict(r._mapping))) for r in job_rows]
        latest = {j.id: j.attempt_id for j in jobs}
        attempts = [
            JobAttemptRecord(**dict(r._mapping))
            for r in conn.execute(select(*[JobAttempt.__table__.c[n] for n in _ATTEMPT_FIELDS])
                                  .where(JobAttempt.job_id.in_(live)))
            if latest.get(r.job_id) == r.attempt_id
        ]
        tasks = [
            TaskRecord(**dict(r._mapping))
            for r in conn.execute(select(*[TaskAttempt.__table__.c[n] for n in _TASK_FIELDS])
                                  .where(TaskAttempt.job_id.in_(live)))
            if latest.get(r.job_id) == r.job_attempt_id
        ]
    return jobs, attempts, tasks


def job_names(store: Store) -> Iterator[str]:
    """Every framework name ever taken (names are unique per user forever), streamed from the unique
    index so that a million names never sit in one list."""
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=10_000).execute(select(Job.framework_name))
        for (name,) in result:
            yield name


def last_job_id(store: Store) -> int:
    """The largest job id ever given: ids are never reused, also not those of jobs left out of memory."""
    with store.engine.connect() as conn:
        return conn.execute(select(func.max(Job.id))).scalar() or 0


def task_history(store: Store, job_id: int, job_attempt_id: int | None = None) -> list[TaskRecord]:
    """All task attempts of a job (or of one of its attempts), oldest first."""
    q = select(*[TaskAttempt.__table__.c[n] for n in _TASK_FIELDS]).where(TaskAttempt.job_id == job_id)
    if job_attempt_id is not None:
        q = q.where(TaskAttempt.job_attempt_id == job_attempt_id)
    with store.engine.connect() as conn:
        return [TaskRecord(**dict(r._mapping)) for r in conn.execute(q.order_by(TaskAttempt.created_at))]


def job_attempts(store: Store, job_id: int) -> list[JobAttemptRecord]:
    q = select(*[JobAttempt.__table__.c[n] for n in _ATTEMPT_FIELDS]).where(JobAttempt.job_id == job_id)
    with store.engine.connect() as conn:
        return [JobAttemptRecord(**dict(r._mapping)) for r in conn.execute(q.order_by(JobAttempt.attempt_id))]


def events(store: Store, job_id: int, after_id: int = 0, type: str | None = None) -> list[dict[str, Any]]:
    q = select(Event.__table__).where(Event.job_id == job_id, Event.id > after_id)
    if type:
        q = q.where(Event.type == type)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q.order_by(Event.id))]


__all__ = ["EventRecord", "committed", "events", "job_attempts", "job_names", "last_job_id", "load", "persist",
           "task_history"]
