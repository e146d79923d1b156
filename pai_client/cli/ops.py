"""``pai job timeline``, ``pai usage`` and ``pai alerts`` (added to the ``pai`` parser by :func:`add_ops`).

``pai alerts export-rules`` renders the server's alert rules: it is a server command
(``python -m pai_hub.cli``, see :mod:`.dispatch`); it is declared here only for ``--help``."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from ..console import print_table
from .common import client as _client
from .common import command, print_json


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 120:
        return f"{value:.2f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _local(iso: str | None) -> str:
    if not iso:
        return "-"
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def cmd_timeline(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.csv:
            sys.stdout.write(c.timeline(args.name, csv=True, view="tasks" if args.tasks else "events"))
            return 0
        data = c.timeline(args.name)
    if args.json:
        return print_json(data)
    s = data["summary"]
    print(f"{data['job_name']}: {s['state']}  (vc {data['vc']}, {s['attempts']} attempt(s))")
    print(f"  queueing {_secs(s['queueing_s'])}   launch {_secs(s['launch_s'])}   run {_secs(s['run_s'])}   "
          f"total {_secs(s['total_s'])}")
    rows = [("TIME", "+PREV", "+SUBMIT", "TASK", "EVENT", "STATE", "MESSAGE")]
    rows += [(_local(e["time"]), "+" + _secs(e["since_previous_s"]), "+" + _secs(e["since_submission_s"]),
              e["task"] or "-", e["reason"], e["state"] or "-", e["message"]) for e in data["events"]]
    print()
    print_table(rows)
    if data["tasks"]:
        print()
        rows = [("TASK", "ATTEMPT", "NODE", "GPUS", "STATE", "QUEUEING", "LAUNCH", "RUN")]
        rows += [(t["task"], f"{t['job_attempt']}.{t['task_attempt']}", t["node"] or "-",
                  ",".join(map(str, t["gpus"])) or "-", t["state"], _secs(t["queueing_s"]), _secs(t["launch_s"]),
                  _secs(t["run_s"])) for t in data["tasks"]]
        print_table(rows)
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    with _client(args) as c:
        rep = c.usage(since=args.since, until=args.until, by=args.by, csv=args.csv, username=args.user)
    if args.csv:
        sys.stdout.write(rep)
        return 0
    if args.json:
        return print_json(rep)
    print(f"GPU-hours by {rep['by']}, {rep['since']} to {rep['until']}")
    rows = [(rep["by"].upper(), "GPU-HOURS", "TASKS", "JOBS")]
    rows += [(r["key"], f"{r['gpuHours']:.3f}", str(r["tasks"]), str(r["jobs"])) for r in rep["rows"]]
    rows.append(("total", f"{rep['totalGpuHours']:.3f}", "", ""))
    print_table(rows)
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    with _client(args) as c:
        alerts: list[dict[str, Any]] = c.alerts(state=args.state)
    if args.json:
        return print_json(alerts)
    if not alerts:
        print(f"no {args.state if args.state != 'all' else ''} alerts".replace("  ", " "))
        return 0
    rows = [("STATE", "SINCE", "SEVERITY", "ALERT", "SUMMARY")]
    rows += [(a["state"], _local(a["startsAt"]), a["labels"].get("severity", ""), a["labels"].get("alertname", ""),
              a["annotations"].get("summary", "")) for a in alerts]
    print_table(rows)
    return 0


def add_ops(sub: argparse._SubParsersAction, job: Any) -> None:
    """Add ``job timeline`` (to ``job``, the job subcommands), ``usage`` and ``alerts``."""
    jt = command(job, "timeline", cmd_timeline, "name", json=True,
                 help="a job's state transitions with the time between them")
    jt.add_argument("--csv", action="store_true", help="CSV of the events (with --tasks: of the task phases)")
    jt.add_argument("--tasks", action="store_true", help="with --csv: one row per task attempt")

    u = command(sub, "usage", cmd_usage, json=True, help="GPU-hours by user, vc, sku or job over a period")
    u.add_argument("--since", help="start: ISO 8601 (2024-05-01) or epoch seconds; default 30 days before --until")
    u.add_argument("--until", help="end: ISO 8601 or epoch seconds; default now")
    u.add_argument("--by", choices=("user", "vc", "sku", "job"), default="user")
    u.add_argument("--user", help="(admins) only this user's jobs")
    u.add_argument("--csv", action="store_true")

    a = command(sub, "alerts", cmd_alerts, json=True,
                help="alerts (non-admins: about their own jobs); export-rules for Prometheus")
    a.add_argument("--state", choices=("firing", "resolved", "all"), default="firing")
    a.add_subparsers(dest="alerts_command").add_parser(
        "export-rules", add_help=False, help="print (or write: -o FILE) the alert rules as a Prometheus rules "
        "file; --rules FILE for your own rules; no server needed")
