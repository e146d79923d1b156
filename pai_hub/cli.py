"""``pai``: the command line. Server and admin commands act locally; job commands speak REST.

Every error is one line on stderr and exit status 1 — never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from pai_client.client import PaiClient, PaiError


def _fail(message: str) -> int:
    print(f"pai: {message}", file=sys.stderr)
    return 1


# -- local commands ------------------------------------------------------------------------------
def cmd_server(args: argparse.Namespace) -> int:
    from .app import PaiHub

    app = PaiHub()
    app.load_layers({"data_dir": args.data_dir, "port": args.port, "ip": args.ip,
                     "simulated_gpus": args.simulated_gpus, "node_cpu": args.node_cpu})
    asyncio.run(app.serve())
    return 0


def _users(args: argparse.Namespace):
    from .app import PaiHub
    from .store import open_store
    from .store.db import sqlite_url
    from .store.users import UserRepository

    app = PaiHub()
    app.load_layers({"data_dir": args.data_dir})
    Path(app.data_dir).mkdir(parents=True, exist_ok=True)
    repo = UserRepository(open_store(app.db_url or sqlite_url(Path(app.data_dir))))
    repo.ensure_groups(app.virtual_clusters)
    return repo


def cmd_user_add(args: argparse.Namespace) -> int:
    repo = _users(args)
    try:
        repo.create(args.name, args.password, admin=args.admin)
    except KeyError:
        return _fail(f"user {args.name} already exists")
    print(f"user {args.name} created" + (" (admin)" if args.admin else ""))
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    repo = _users(args)
    try:
        print(repo.create_token(args.name, name=args.label or "cli"))
    except KeyError:
        return _fail(f"no user {args.name}; create it with: pai --data-dir DIR user add {args.name}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from . import protocol

    try:
        text = _read(args.file, args.param)
        protocol.load(text)
    except protocol.InvalidProtocol as exc:
        for err in getattr(exc, "errors", []) or [exc]:
            print(str(err), file=sys.stderr)
        return 1
    except OSError as exc:
        return _fail(str(exc))
    print("ok")
    return 0


def _read(path: str, params: list[str] | None) -> str:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    if not params:
        return text
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise PaiError(0, "InvalidProtocolError", "the file is not a YAML mapping")
    values = doc.setdefault("parameters", {}) or {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PaiError(0, "InvalidParametersError", f"--param {item!r}: expected KEY=VALUE")
        values[key] = yaml.safe_load(value) if value else ""
    doc["parameters"] = values
    return yaml.safe_dump(doc, sort_keys=False)


# -- REST commands -------------------------------------------------------------------------------
def _client(args: argparse.Namespace) -> PaiClient:
    return PaiClient(args.url, args.token)


def cmd_submit(args: argparse.Namespace) -> int:
    text = _read(args.file, args.param)
    with _client(args) as c:
        if args.dry_run:
            r = c.submit(text, dry_run=True)
            print(f"valid: {r['name']} ({r['totalTaskNumber']} tasks, {r['totalGpuNumber']} GPUs in "
                  f"{r['virtualCluster']}); not submitted")
            return 0
        c.submit(text)
        name = (yaml.safe_load(text) or {}).get("name", "?")
        print(f"submitted {c.framework(name)}")
        if args.wait:
            detail = c.wait(name, timeout=args.timeout)
            state = detail["jobStatus"]["state"]
            print(state)
            return 0 if state == "SUCCEEDED" else 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as c:
        mine = None if args.all else c.whoami()["username"]
        jobs = c.jobs(state=args.state, vc=args.vc, username=mine, limit=args.limit)
    if args.json:
        print(json.dumps(jobs, indent=2))
        return 0
    rows = [("NAME", "USER", "STATE", "VC", "TASKS", "GPUS", "RETRIES")]
    rows += [(j["name"], j["username"], j["state"], j["virtualCluster"], str(j["totalTaskNumber"]),
              str(j["totalGpuNumber"]), str(j["retries"])) for j in jobs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as c:
        detail = c.job(args.name)
    if args.json:
        print(json.dumps(detail, indent=2))
        return 0
    s = detail["jobStatus"]
    print(f"{c.framework(args.name)}: {s['state']}  (vc {s['virtualCluster']}, attempt {s['attemptId']}, "
          f"retries {s['retries']})")
    if s.get("waitingReason"):
        print(f"  waiting: {s['waitingReason']}")
    if s.get("appExitCode") is not None:
        print(f"  exit code: {s['appExitCode']}" + (f" — {s['appExitDiagnostics']}" if s.get("appExitDiagnostics")
                                                     else ""))
    if spec := s.get("appExitSpec"):
        print(f"  failure: {spec['phrase']} ({spec['type']}, {spec['behavior']}): {spec['reason']}")
        for step in spec.get("solution") or []:
            print(f"  fix: {step}")
    if debug := s.get("debugReservation"):
        until = time.strftime("%H:%M:%S", time.localtime(debug["until"] / 1000))
        kept = ", ".join(f"{t['taskRole']}/{t['taskIndex']}" for t in debug["tasks"])
        print(f"  kept for debugging until {until}: {kept} (pai job debug {args.name}; pai job release {args.name})")
    for role in detail["taskRoles"].values():
        for t in role["taskStatuses"]:
            gpus = t.get("containerGpus") or "-"
            code = "" if t["containerExitCode"] is None else f" exit {t['containerExitCode']}"
            print(f"  {role['taskRoleStatus']['name']}/{t['taskIndex']}: {t['taskState']}{code}  "
                  f"node {t['containerNodeName'] or '-'}  gpus {gpus}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    role, index = None, 0
    if args.task:
        role, _, idx = args.task.partition("/")
        try:
            index = int(idx or 0)
        except ValueError:
            return _fail(f"--task {args.task!r}: expected ROLE/INDEX, e.g. worker/0")
    with _client(args) as c:
        if args.follow:
            for chunk in c.follow(args.name, role, index, args.log):
                sys.stdout.write(chunk)
                sys.stdout.flush()
        else:
            text, _ = c.log(args.name, role, index, args.log)
            sys.stdout.write(text)
    return 0


def cmd_debug(args: argparse.Namespace) -> int:
    """A shell in a task kept for debugging (or a running one), like ``kubectl exec -it``."""
    with _client(args) as c:
        role, index = None, 0
        if args.task:
            role, _, idx = args.task.partition("/")
            index = int(idx or 0)
        else:
            try:
                kept = c.debug_reservation(args.name)["tasks"][0]
                role, index = kept["taskRole"], kept["taskIndex"]
            except PaiError:
                roles = c.job(args.name)["taskRoles"]
                role = next(iter(roles.values()))["taskRoleStatus"]["name"]
        url, token = c.terminal_url(args.name, role, index), c.token
    return asyncio.run(_terminal(url, token))


async def _terminal(url: str, token: str | None) -> int:
    import os
    import termios
    import tty

    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    try:
        conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"Bearer {token}"}))
    except HTTPClientError as exc:
        body = exc.response.body if exc.response is not None else b""
        try:
            err = json.loads(body)
            return _fail(f"{err['code']}: {err['message']}")
        except (ValueError, KeyError, TypeError):
            return _fail(str(exc))
    fd = sys.stdin.fileno()
    interactive = sys.stdin.isatty()
    saved = termios.tcgetattr(fd) if interactive else None
    loop = asyncio.get_running_loop()

    def send_input() -> None:
        data = os.read(fd, 4096)
        conn.write_message(json.dumps(["stdin", data.decode("utf-8", "replace") if data else "\x04"]))
        if not data:
            loop.remove_reader(fd)

    try:
        if interactive:
            tty.setraw(fd)
            size = os.get_terminal_size()
            conn.write_message(json.dumps(["set_size", size.lines, size.columns]))
        loop.add_reader(fd, send_input)
        while (message := await conn.read_message()) is not None:
            kind, *rest = json.loads(message)
            if kind == "stdout":
                sys.stdout.write(rest[0])
                sys.stdout.flush()
            elif kind == "disconnect":
                break
    finally:
        loop.remove_reader(fd)
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        conn.close()
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    with _client(args) as c:
        c.release(args.name)
        print(f"released the debug reservation of {c.framework(args.name)}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    with _client(args) as c:
        c.stop(args.name)
        print(f"stopping {c.framework(args.name)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pai", description="PAI Hub: OpenPAI-compatible GPU jobs.")
    p.add_argument("--data-dir", help="data directory of a local control plane (server, user, token)")
    p.add_argument("--url", help="PAI REST server (default $PAI_URL)")
    p.add_argument("--token", help="API token (default $PAI_TOKEN)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("server", help="run the standalone control plane with the local backend")
    s.add_argument("--ip", default=None)
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--data-dir", dest="data_dir_server", default=None)
    s.add_argument("--simulated-gpus", type=int, default=None, help="declare N simulated GPUs")
    s.add_argument("--node-cpu", type=int, default=None, help="CPUs the node offers to jobs")
    s.set_defaults(func=cmd_server)

    u = sub.add_parser("user", help="manage users of a local control plane").add_subparsers(dest="sub", required=True)
    ua = u.add_parser("add")
    ua.add_argument("name")
    ua.add_argument("--admin", action="store_true")
    ua.add_argument("--password")
    ua.set_defaults(func=cmd_user_add)

    t = sub.add_parser("token", help="API tokens").add_subparsers(dest="sub", required=True)
    tc = t.add_parser("create", help="create an application token for a user; prints only the token")
    tc.add_argument("name")
    tc.add_argument("--label")
    tc.set_defaults(func=cmd_token_create)

    j = sub.add_parser("job", help="submit and manage jobs").add_subparsers(dest="sub", required=True)
    js = j.add_parser("submit")
    js.add_argument("file")
    js.add_argument("--param", action="append", metavar="KEY=VALUE")
    js.add_argument("--wait", action="store_true")
    js.add_argument("--dry-run", action="store_true", help="check everything a submission checks, store nothing")
    js.add_argument("--timeout", type=float, default=3600)
    js.set_defaults(func=cmd_submit)
    jl = j.add_parser("list")
    jl.add_argument("--state")
    jl.add_argument("--vc")
    jl.add_argument("--all", action="store_true", help="(admins) every user's jobs")
    jl.add_argument("--limit", type=int, default=100)
    jl.add_argument("--json", action="store_true")
    jl.set_defaults(func=cmd_list)
    jt = j.add_parser("status")
    jt.add_argument("name")
    jt.add_argument("--json", action="store_true")
    jt.set_defaults(func=cmd_status)
    jg = j.add_parser("logs")
    jg.add_argument("name")
    jg.add_argument("--task", help="ROLE/INDEX (default: the first task)")
    jg.add_argument("--log", default="all", help="all | stdout | stderr | runtime.log")
    jg.add_argument("-f", "--follow", action="store_true")
    jg.set_defaults(func=cmd_logs)
    jx = j.add_parser("stop")
    jx.add_argument("name")
    jx.set_defaults(func=cmd_stop)
    jd = j.add_parser("debug", help="a shell in a failed task kept for debugging (or a running task)")
    jd.add_argument("name")
    jd.add_argument("--task", help="ROLE/INDEX (default: the task kept for debugging)")
    jd.set_defaults(func=cmd_debug)
    jr = j.add_parser("release", help="end a debug reservation early and free its GPUs")
    jr.add_argument("name")
    jr.set_defaults(func=cmd_release)
    jv = j.add_parser("validate")
    jv.add_argument("file")
    jv.add_argument("--param", action="append", metavar="KEY=VALUE")
    jv.set_defaults(func=cmd_validate)
    from .simulator.cli import add_parser as add_simulate

    add_simulate(sub)
    from .marketplace.cli import add_market

    add_market(sub)  # pai market list|show|publish|use (pai_hub/marketplace/cli.py)
    from .monitoring.cli import add_ops

    add_ops(sub)  # pai job timeline, pai usage, pai alerts (pai_hub/monitoring/cli.py)
    from .experiments.cli import add_experiments

    add_experiments(sub)  # pai experiment create|list|show|stop|resume (pai_hub/experiments/cli.py)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "data_dir_server", None):
        args.data_dir = args.data_dir_server
    try:
        return args.func(args)
    except PaiError as exc:
        return _fail(f"{exc.code}: {exc.message}")
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())


__all__: list[Any] = ["main"]
