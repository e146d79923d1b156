"""``pai experiment create FILE | list | show ID | stop ID | resume ID`` over the REST API.

FILE is the experiment in YAML (the body of ``POST /api/v2/experiments``, docs/experiments.md). A
relative ``trial.codeDir`` is read here and sent as ``trial.files`` (text files, 1 MiB in all), so the
server need not see this machine's disk.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from pai_client.client import PaiClient, PaiError

MAX_FILES_BYTES = 1 << 20


def _client(args: argparse.Namespace) -> PaiClient:
    return PaiClient(args.url, args.token)


def load_request(path: str) -> dict[str, Any]:
    file = Path(path)
    body = yaml.safe_load(file.read_text()) or {}
    if not isinstance(body, dict):
        raise PaiError(0, "InvalidParametersError", f"{path}: must be a mapping")
    trial = body.get("trial") or {}
    code = trial.get("codeDir")
    if (isinstance(code, str) and not Path(code).is_absolute()) or (code and trial.get("upload")):
        root = (file.parent / code).resolve()
        files, size = {}, 0
        for p in sorted(root.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                text = p.read_text()
                size += len(text)
                if size > MAX_FILES_BYTES:
                    raise PaiError(0, "InvalidParametersError", f"{root}: more than 1 MiB of code; use an "
                                   "absolute codeDir on the server")
                files[str(p.relative_to(root))] = text
        trial = {k: v for k, v in trial.items() if k not in ("codeDir", "upload")}
        trial["files"] = {**files, **(trial.get("files") or {})}
        body["trial"] = trial
    return body


def _line(e: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(e["trialCounts"].items())) or "-"
    best = "-" if e.get("bestFinal") is None else f"{e['bestFinal']:.6g}"
    return f"{e['id']}  {e['state']:<9} {e['name']:<20} trials: {counts:<28} best: {best}"


def cmd_create(args: argparse.Namespace) -> int:
    body = load_request(args.file)
    with _client(args) as c:
        e = c.request("POST", "/api/v2/experiments", json=body)
        print(f"created experiment {e['id']} ({e['state']}); web UI: {c.url}{e['ui']}?token=...")
        if args.wait:
            while e["state"] in ("STARTING", "RUNNING"):
                time.sleep(2)
                e = c.request("GET", f"/api/v2/experiments/{e['id']}")
            print(_line(e))
            return 0 if e["state"] == "DONE" else 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as c:
        rows = c.request("GET", "/api/v2/experiments", params={"all": "true"} if args.all else None)
    if args.json:
        print(json.dumps(rows, indent=2))
    for e in [] if args.json else rows:
        print(_line(e))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as c:
        e = c.request("GET", f"/api/v2/experiments/{args.id}")
    if args.json:
        print(json.dumps(e, indent=2))
        return 0
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
        e = c.request("PUT", f"/api/v2/experiments/{args.id}/executionType", json={"value": value})
    print(_line(e))
    return 0


def add_experiments(sub: Any) -> None:
    """Add ``pai experiment ...`` to the ``pai`` parser's subcommands."""
    x = sub.add_parser("experiment", help="NNI hyperparameter experiments (trials are PAI jobs)") \
        .add_subparsers(dest="sub", required=True)
    xc = x.add_parser("create", help="start an experiment from a YAML file")
    xc.add_argument("file")
    xc.add_argument("--wait", action="store_true", help="wait until it ends; exit 0 if DONE")
    xc.set_defaults(func=cmd_create)
    xl = x.add_parser("list")
    xl.add_argument("--all", action="store_true", help="everyone's (admins)")
    xl.add_argument("--json", action="store_true")
    xl.set_defaults(func=cmd_list)
    xs = x.add_parser("show", help="an experiment and its trials")
    xs.add_argument("id")
    xs.add_argument("--json", action="store_true")
    xs.set_defaults(func=cmd_show)
    xp = x.add_parser("stop", help="stop it: its running trial jobs are stopped")
    xp.add_argument("id")
    xp.set_defaults(func=lambda a: _execute(a, "STOP"))
    xr = x.add_parser("resume", help="resume a stopped experiment")
    xr.add_argument("id")
    xr.set_defaults(func=lambda a: _execute(a, "RESUME"))
