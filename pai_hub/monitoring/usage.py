"""GPU-hours per user, virtual cluster, SKU (or job) over a period, from the store's task attempts.

A task attempt holds its GPUs from ``launched_at`` (it started) to ``completed_at`` (it ended);
one still running counts up to now. Only the part inside ``[since, until)`` counts. Attempts of
every job attempt count (a retried job used its GPUs each time). GPUs a failed task keeps for a
debug reservation after it ended do not count (the store does not keep when a reservation was
released early).
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import or_, select

from ..store.db import Store
from ..store.models import Job, TaskAttempt

GROUPS = ("user", "vc", "sku", "job")
#: The last second of year 9999: the latest time a report or a timeline can format.
MAX_TIME = 253402300799.0


def parse_time(value: str | None, default: Any) -> Any:
    """Epoch seconds (``1714521600``), epoch milliseconds (13 digits, as OpenPAI's times) or ISO 8601
    (``2024-05-01``, ``2024-05-01T12:00:00Z``; without a zone: UTC). Raises ValueError, also for
    ``nan``, ``inf`` and times outside years 1970-9999: they would reach the SQL query and the
    ISO formatting (which raise deep inside) as numbers no report could mean."""
    if value is None or value == "":
        return default
    if len(value) > 64:
        raise ValueError("too long for a time")
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        seconds = number / 1000 if number > 1e11 else number
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_TIME:
            raise ValueError(f"{value!r} is not a time between 1970 and 9999")
        return seconds
    text = value.strip().replace("Z", "+00:00")
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def task_rows(store: Store, since: float, until: float, username: str | None = None) -> list[dict[str, Any]]:
    """Task attempts with GPUs that ran inside the period, with their job's user and VC."""
    t, j = TaskAttempt.__table__, Job.__table__
    q = (select(t.c.task_id, t.c.job_id, t.c.node, t.c.gpus, t.c.launched_at, t.c.completed_at,
                j.c.username, j.c.virtual_cluster, j.c.framework_name)
         .join(j, j.c.id == t.c.job_id)
         .where(t.c.launched_at.is_not(None), t.c.launched_at < until,
                or_(t.c.completed_at.is_(None), t.c.completed_at > since)))
    if username is not None:
        q = q.where(j.c.username == username)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def report(rows: list[dict[str, Any]], since: float, until: float, by: str, now: float | None = None,
           sku_of: Any = None) -> dict[str, Any]:
    """Add up GPU-hours per ``by`` key. ``sku_of(node)`` names the GPU SKU of a node."""
    if by not in GROUPS:
        raise ValueError(f"by: one of {', '.join(GROUPS)}")
    now = time.time() if now is None else now
    end_cap = min(until, now)
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        gpus = r["gpus"] or []
        if not gpus:
            continue
        start = max(r["launched_at"], since)
        end = min(r["completed_at"] if r["completed_at"] is not None else now, end_cap)
        if end <= start:
            continue
        key = {"user": r["username"], "vc": r["virtual_cluster"], "job": r["framework_name"],
               "sku": (sku_of(r["node"]) if sku_of else None) or "unknown"}[by]
        g = groups.setdefault(key, {"key": key, "gpuHours": 0.0, "tasks": set(), "jobs": set()})
        g["gpuHours"] += len(gpus) * (end - start) / 3600
        g["tasks"].add(r["task_id"])
        g["jobs"].add(r["job_id"])
    out_rows = [{"key": g["key"], "gpuHours": round(g["gpuHours"], 6), "tasks": len(g["tasks"]),
                 "jobs": len(g["jobs"])} for g in sorted(groups.values(), key=lambda g: -g["gpuHours"])]
    return {"since": _iso(since), "until": _iso(until), "by": by, "rows": out_rows,
            "totalGpuHours": round(sum(g["gpuHours"] for g in groups.values()), 6)}


def to_csv(rep: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([rep["by"], "gpu_hours", "tasks", "jobs", "since", "until"])
    for r in rep["rows"]:
        w.writerow([r["key"], f"{r['gpuHours']:.6f}", r["tasks"], r["jobs"], rep["since"], rep["until"]])
    return buf.getvalue()


def node_skus(sku_types: Mapping[str, Any], nodes: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """node -> its GPU SKU (the first SKU of the node with GPUs). ``nodes`` is the scheduler's
    per-node status (``Controller.cluster_status()["nodes"]``), ``sku_types`` the config's SKUs."""
    out = {}
    for node, n in nodes.items():
        names = [s for s in n.get("skus", {}) if s in sku_types and sku_types[s].gpu > 0]
        if names:
            out[node] = names[0]
    return out
