"""Job history: the job list and the jobs that left the control plane's memory, by indexed queries.

Finished jobs live only here (the orchestrator keeps the live ones), so every list is one SQL query:
filtered on indexed columns, ordered newest first by (submitted_at, id) and paged by keyset — the
next page starts after the last row shown, so a page costs the same at the 1st page and the
500th, and jobs submitted meanwhile neither shift nor repeat rows. OpenPAI's ``offset``/``limit``
map onto it: the caller passes the keyset of the row just before ``offset`` when it has one, and
OFFSET on the index when it does not. Migration 0005 holds the indexes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Text, cast, func, not_, or_, select, tuple_

from ..orchestrator.records import JobAttemptRecord, JobRecord, TaskRecord
from .db import Store
from .models import Job, JobAttempt, TaskAttempt

_JOB_FIELDS = [f.name for f in fields(JobRecord)]
_ATTEMPT_FIELDS = [f.name for f in fields(JobAttemptRecord)]
_TASK_FIELDS = [f.name for f in fields(TaskRecord)]
#: What a list row shows (views.job_summary): the protocol, config and secrets are not read for it.
_HEAVY = {"config_yaml": "", "protocol": {}, "secrets": {}}
_SUMMARY_FIELDS = [n for n in _JOB_FIELDS if n not in _HEAVY]

#: OpenPAI's ``order`` fields and the column (or expression) each sorts by.
ORDER_COLUMNS: dict[str, Any] = {
    "jobName": Job.name,
    "submissionTime": Job.submitted_at,
    "username": Job.username,
    "vc": Job.virtual_cluster,
    "retries": Job.retries_user + Job.retries_platform,
    "totalTaskNumber": Job.total_tasks,
    "totalGpuNumber": Job.total_gpu,
    "state": Job.state,
    "completionTime": func.coalesce(Job.completed_at, 0),
    "jobPriority": func.coalesce(Job.job_priority, ""),
}
KEYSET_ORDER = "submissionTime"

Keyset = tuple[float, int]


@dataclass(frozen=True)
class JobQuery:
    """OpenPAI's list filters (each a set of accepted values; empty accepts all) and order."""

    usernames: tuple[str, ...] = ()
    virtual_clusters: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    keyword: str = ""  # a substring of the name, the user or the VC (case-insensitive, as OpenPAI)
    tags_contain: tuple[str, ...] = ()
    tags_not_contain: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()  # jobPriority; a job without one is "default"
    order: str = KEYSET_ORDER
    descending: bool = True

    @property
    def keyset(self) -> bool:
        """Whether pages of this query can continue from a keyset (its order is submission order)."""
        return self.order == KEYSET_ORDER


@dataclass
class JobPage:
    jobs: list[JobRecord]  # summary rows: protocol, config and secrets left empty
    total: int | None  # every match, when asked for
    last: Keyset | None  # the keyset of the page's last row: where the next page starts


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _conditions(q: JobQuery) -> list[Any]:
    conds: list[Any] = []
    if q.usernames:
        conds.append(Job.username.in_(q.usernames))
    if q.virtual_clusters:
        conds.append(Job.virtual_cluster.in_(q.virtual_clusters))
    if q.states:
        conds.append(Job.state.in_(q.states))
    if q.keyword:
        pattern = _like(q.keyword)
        conds.append(or_(*[c.ilike(pattern, escape="\\") for c in (Job.name, Job.username, Job.virtual_cluster)]))
    # tags are a JSON list; a tag is contained when its JSON string is
    tagged = [cast(Job.tags, Text).like(_like(json.dumps(t)), escape="\\") for t in q.tags_contain]
    if tagged:
        conds.append(or_(*tagged))
    conds.extend(not_(cast(Job.tags, Text).like(_like(json.dumps(t)), escape="\\")) for t in q.tags_not_contain)
    if q.priorities:
        conds.append(func.coalesce(Job.job_priority, "default").in_(q.priorities))
    return conds


def list_jobs(store: Store, q: JobQuery, offset: int, limit: int, *, after: Keyset | None = None,
              with_total: bool = False) -> JobPage:
    """One page of the jobs matching ``q``. With ``after`` (a keyset order only), the page starts
    right after that row and ``offset`` counts from there."""
    conds = _conditions(q)
    column = ORDER_COLUMNS.get(q.order, Job.submitted_at)
    order = [column.desc(), Job.id.desc()] if q.descending else [column.asc(), Job.id.asc()]
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(Job).where(*conds)).scalar() if with_total else None
        jobs: list[JobRecord] = []
        if limit > 0:
            # ids first, from the index alone; then the page's rows by primary key
            ids_query = select(Job.id).where(*conds)
            if after is not None and q.keyset:
                bound = tuple_(Job.submitted_at, Job.id)
                ids_query = ids_query.where(bound < tuple_(*after) if q.descending else bound > tuple_(*after))
            ids = [r[0] for r in conn.execute(ids_query.order_by(*order).offset(offset).limit(limit))]
            if ids:
                rows = conn.execute(select(*[Job.__table__.c[n] for n in _SUMMARY_FIELDS]).where(Job.id.in_(ids)))
                by_id = {r.id: JobRecord(**_HEAVY, **r._mapping) for r in rows}
                jobs = [by_id[i] for i in ids if i in by_id]
    last = (jobs[-1].submitted_at, jobs[-1].id) if jobs else None
    return JobPage(jobs, total, last)


def job_by_name(store: Store, framework_name: str) -> JobRecord | None:
    """The whole job ``<user>~<name>`` as stored, or None."""
    query = select(*[Job.__table__.c[n] for n in _JOB_FIELDS]).where(Job.framework_name == framework_name)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    job = JobRecord(**row._mapping)
    if job.secrets and store.box is not None:
        job.secrets = store.box.open(job.secrets)
    return job


def current_attempt(store: Store, job: JobRecord) -> tuple[JobAttemptRecord | None, list[TaskRecord]]:
    """The job's latest attempt and the latest attempt of each of its tasks, as the machine held them."""
    with store.engine.connect() as conn:
        row = conn.execute(select(*[JobAttempt.__table__.c[n] for n in _ATTEMPT_FIELDS]).where(
            JobAttempt.job_id == job.id, JobAttempt.attempt_id == job.attempt_id)).first()
        rows = conn.execute(select(*[TaskAttempt.__table__.c[n] for n in _TASK_FIELDS]).where(
            TaskAttempt.job_id == job.id, TaskAttempt.job_attempt_id == job.attempt_id))
        best: dict[tuple[str, int], TaskRecord] = {}
        for r in rows:
            t = TaskRecord(**r._mapping)
            key = (t.role, t.task_index)
            if key not in best or t.attempt_id > best[key].attempt_id:
                best[key] = t
    attempt = None if row is None else JobAttemptRecord(**row._mapping)
    return attempt, sorted(best.values(), key=lambda t: (t.role, t.task_index))
