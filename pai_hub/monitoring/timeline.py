"""Event timelines: every state transition of a job and its tasks, with the time between them.

The store's event log is the source (each job and task transition appends one event, committed
with the transition). Per task attempt the phases are RADICAL-Pilot style intervals:

- ``queueing``: the task was created (submission or retry) → its gang was placed (``Placed``);
- ``launch``: placed → the task's process started (``TaskStarted``; the backend's start time);
- ``run``: started → it ended (``completed_at``; still running: up to now).

The placement of a task is the first ``Placed`` event of its job at or after the task's
creation: exact for gang-scheduled jobs (all tasks of an attempt are placed together), the
earliest possible for ``gangAllocation: false`` jobs, whose tasks are placed one by one.
"""

from __future__ import annotations

import bisect
import csv
import io
import time
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from ..store.db import Store
from ..store.models import Event, Job, TaskAttempt

# the state an event moves its job or task into (events not listed change no state)
STATE_OF = {
    "JobSubmitted": "WAITING", "JobRetried": "WAITING", "Placed": "WAITING", "TaskStarted": "RUNNING",
    "TaskSucceeded": "SUCCEEDED", "TaskFailed": "FAILED", "TaskStopped": "STOPPED", "StopRequested": "STOPPING",
    "JobSucceeded": "SUCCEEDED", "JobFailed": "FAILED", "JobStopped": "STOPPED",
}
EVENT_COLUMNS = ["job_name", "username", "vc", "event_id", "time", "timestamp", "since_submission_s",
                 "since_previous_s", "task", "task_id", "type", "reason", "state", "message"]
TASK_COLUMNS = ["job_name", "username", "vc", "task", "task_id", "job_attempt", "task_attempt", "node", "gpus",
                "state", "exit_code", "created", "placed", "launched", "completed", "queueing_s", "launch_s",
                "run_s"]


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _d(a: float | None, b: float | None) -> float | None:
    return round(b - a, 6) if a is not None and b is not None else None


def load(store: Store, job_ids: list[int] | None = None, since: float | None = None,
         until: float | None = None) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(jobs by id, events oldest first, task attempts) of some jobs, or of every job active in a window."""
    jt, et, tt = Job.__table__, Event.__table__, TaskAttempt.__table__
    with store.engine.connect() as conn:
        jq = select(jt.c.id, jt.c.framework_name, jt.c.username, jt.c.virtual_cluster, jt.c.submitted_at,
                    jt.c.completed_at, jt.c.state)
        if job_ids is not None:
            jq = jq.where(jt.c.id.in_(job_ids))
        else:
            if until is not None:
                jq = jq.where(jt.c.submitted_at < until)
            if since is not None:
                jq = jq.where((jt.c.completed_at.is_(None)) | (jt.c.completed_at >= since))
        jobs = {r.id: dict(r._mapping) for r in conn.execute(jq)}
        ids = list(jobs)
        events: list[dict[str, Any]] = []
        tasks: list[dict[str, Any]] = []
        for i in range(0, len(ids), 500):  # bounded IN lists
            chunk = ids[i:i + 500]
            eq = select(et).where(et.c.job_id.in_(chunk))
            if since is not None:
                eq = eq.where(et.c.timestamp >= since)
            if until is not None:
                eq = eq.where(et.c.timestamp < until)
            events += [dict(r._mapping) for r in conn.execute(eq)]
            tasks += [dict(r._mapping) for r in conn.execute(
                select(tt.c.task_id, tt.c.job_id, tt.c.job_attempt_id, tt.c.role, tt.c.task_index, tt.c.attempt_id,
                       tt.c.node, tt.c.gpus, tt.c.state, tt.c.exit_code, tt.c.created_at, tt.c.launched_at,
                       tt.c.completed_at).where(tt.c.job_id.in_(chunk)))]
    events.sort(key=lambda e: e["id"])
    tasks.sort(key=lambda t: (t["job_id"], t["created_at"], t["role"], t["task_index"]))
    return jobs, events, tasks


def task_phases(jobs: dict[int, dict[str, Any]], events: list[dict[str, Any]], tasks: list[dict[str, Any]],
                now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    placed: dict[int, list[float]] = {}
    for e in events:
        if e["reason"] == "Placed":
            placed.setdefault(e["job_id"], []).append(e["timestamp"])
    out = []
    for t in tasks:
        job = jobs.get(t["job_id"])
        if job is None:
            continue
        times = placed.get(t["job_id"], [])
        i = bisect.bisect_left(times, t["created_at"])
        placed_at = times[i] if i < len(times) else None
        if placed_at is not None and t["launched_at"] is None and t["completed_at"] is not None \
                and placed_at > t["completed_at"]:
            placed_at = None  # stopped while waiting: never placed
        end = t["completed_at"] if t["completed_at"] is not None else (now if t["launched_at"] is not None else None)
        queue_end = next((x for x in (placed_at, t["launched_at"], t["completed_at"]) if x is not None), now)
        out.append({
            "job_name": job["framework_name"], "username": job["username"], "vc": job["virtual_cluster"],
            "task": f"{t['role']}/{t['task_index']}", "task_id": t["task_id"], "job_attempt": t["job_attempt_id"],
            "task_attempt": t["attempt_id"], "node": t["node"], "gpus": list(t["gpus"] or []), "state": t["state"],
            "exit_code": t["exit_code"], "created": _iso(t["created_at"]), "placed": _iso(placed_at),
            "launched": _iso(t["launched_at"]), "completed": _iso(t["completed_at"]),
            "queueing_s": _d(t["created_at"], queue_end),
            "launch_s": _d(placed_at, t["launched_at"]),
            "run_s": _d(t["launched_at"], end),
        })
    return out


def event_rows(jobs: dict[int, dict[str, Any]], events: list[dict[str, Any]],
               tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {t["task_id"]: f"{t['role']}/{t['task_index']}" for t in tasks}
    prev: dict[int, float] = {}
    out = []
    for e in events:
        job = jobs.get(e["job_id"])
        if job is None:
            continue
        before = prev.get(e["job_id"])
        prev[e["job_id"]] = e["timestamp"]
        out.append({
            "job_name": job["framework_name"], "username": job["username"], "vc": job["virtual_cluster"],
            "event_id": e["id"], "time": _iso(e["timestamp"]), "timestamp": round(e["timestamp"], 6),
            "since_submission_s": _d(job["submitted_at"], e["timestamp"]),
            "since_previous_s": _d(before, e["timestamp"]) if before is not None else 0.0,
            "task": names.get(e["task_id"] or "", ""), "task_id": e["task_id"] or "", "type": e["type"],
            "reason": e["reason"], "state": STATE_OF.get(e["reason"], ""), "message": e["message"],
        })
    return out


def summary(job: dict[str, Any], events: list[dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """The job's own phases: queueing (submitted → first placement), launch (→ first task started),
    run (→ the job ended, or now), total."""
    now = time.time() if now is None else now
    first = {}
    for e in events:
        first.setdefault(e["reason"], e["timestamp"])
    placed, started = first.get("Placed"), first.get("TaskStarted")
    end = job["completed_at"]
    return {
        "submitted": _iso(job["submitted_at"]), "placed": _iso(placed), "started": _iso(started),
        "completed": _iso(end), "state": job["state"],
        "queueing_s": _d(job["submitted_at"], placed if placed is not None else (end or now)),
        "launch_s": _d(placed, started),
        "run_s": _d(started, end if end is not None else now) if started is not None else None,
        "total_s": _d(job["submitted_at"], end if end is not None else now),
        "attempts": 1 + sum(e["reason"] == "JobRetried" for e in events),
    }


def job_timeline(store: Store, job_id: int, now: float | None = None) -> dict[str, Any]:
    jobs, events, tasks = load(store, [job_id])
    job = jobs[job_id]
    return {"job_name": job["framework_name"], "username": job["username"], "vc": job["virtual_cluster"],
            "summary": summary(job, events, now), "events": event_rows(jobs, events, tasks),
            "tasks": task_phases(jobs, events, tasks, now)}


def cluster_timeline(store: Store, since: float | None, until: float | None, view: str = "tasks",
                     now: float | None = None) -> list[dict[str, Any]]:
    jobs, events, tasks = load(store, None, since, until)
    if view == "events":
        return event_rows(jobs, events, tasks)
    if since is not None or until is not None:  # placements of tasks created inside the window
        lo, hi = since if since is not None else float("-inf"), until if until is not None else float("inf")
        tasks = [t for t in tasks if lo <= t["created_at"] < hi or (
            t["launched_at"] is not None and t["launched_at"] < hi and (t["completed_at"] or float("inf")) >= lo)]
    return task_phases(jobs, events, tasks, now)


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else (",".join(map(str, r[c])) if isinstance(r.get(c), list) else r[c])
                    for c in columns])
    return buf.getvalue()
