"""``pai experiment create FILE | list | show ID | stop ID | resume ID`` over the REST API.

FILE is the experiment in YAML (the body of ``POST /api/v2/experiments``, docs/experiments.md),
read by :func:`pai_client.experiments.load_request`.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..experiments import load_request
from .common import client as _client
from .common import command, group, print_json


def _line(e: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(e["trialCounts"].items())) or "-"
    best = "-" if e.get("bestFinal") is None else f"{e['bestFinal']:.6g}"
    return f"{e['id']}  {e['state']:<9} {e['name']:<20} trials: {counts:<28} best: {best}"


def cmd_create(args: argparse.Namespace) -> int:
    body = load_request(args.file)
    with _client(args) as c:
        e = c.create_experiment(body)
        print(f"created experiment {e['id']} ({e['state']}); web UI: {c.url}{e['ui']}?token=...")
        if args.wait:
            while e["state"] in ("STARTING", "RUNNING"):
                time.sleep(2)
                e = c.experiment(e["id"])
            print(_line(e))
            return 0 if e["state"] == "DONE" else 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as c:
        rows = c.experiments(all=args.all)
    if args.json:
        print(json.dumps(rows, indent=2))
    for e in [] if args.json else rows:
        print(_line(e))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as c:
        e = c.experiment(args.id)
    if args.json:
        return print_json(e)
    print(_line(e))
    if e.get("message"):
        print(f"  {e['message']}")
    for t in e["trials"]:
        final = "-" if t["final"] is None else f"{t['final']}"
        print(f"  {t['sequence']:>4} {t['id']} {t['state']:<13} final {final:<22} {json.dumps(t['parameters'])}"
              f"  job {t['job']['name']} ({t['job']['state']})")
    return 0


def _execute(args: argparse.Namespace, value: str) -> int:
    with _client(args) as c:
        e = c.experiment_execution(args.id, value)
    print(_line(e))
    return 0


def add_experiments(sub: Any) -> None:
    """Add ``pai experiment ...`` to the ``pai`` parser's subcommands."""
    x = group(sub, "experiment", "NNI hyperparameter experiments (trials are PAI jobs)")
    xc = command(x, "create", cmd_create, "file", help="start an experiment from a YAML file")
    xc.add_argument("--wait", action="store_true", help="wait until it ends; exit 0 if DONE")
    command(x, "list", cmd_list, json=True).add_argument("--all", action="store_true", help="everyone's (admins)")
    command(x, "show", cmd_show, "id", json=True, help="an experiment and its trials")
    command(x, "stop", lambda a: _execute(a, "STOP"), "id", help="stop it: its running trial jobs are stopped")
    command(x, "resume", lambda a: _execute(a, "RESUME"), "id", help="resume a stopped experiment")
