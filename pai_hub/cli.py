"""The server's commands of ``pai``: ``server``, ``user add``, ``token create``, ``simulate`` and
``alerts export-rules`` — the ones that open the store, run the scheduler or read the server's
rules. ``pai`` itself is the client (:mod:`pai_client.cli`), which hands these here
(``python -m pai_hub.cli ...``); any other command given here goes back to the client, so
``python -m pai_hub.cli ARGS`` behaves as ``pai ARGS``.

Every error is one line on stderr and exit status 1 — never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from pai_client.cli.dispatch import is_server_command


def _fail(message: str) -> int:
    print(f"pai: {message}", file=sys.stderr)
    return 1


def cmd_server(args: argparse.Namespace) -> int:
    from .app import PaiHub
    from .datadir import private_umask

    private_umask()  # before anything is created: the server's files are born private (pai_hub/datadir.py)
    app = PaiHub()
    app.load_layers({"data_dir": args.data_dir, "port": args.port, "ip": args.ip,
                     "simulated_gpus": args.simulated_gpus, "node_cpu": args.node_cpu,
                     "isolation": args.isolation})
    asyncio.run(app.serve())
    return 0


def _users(args: argparse.Namespace) -> Any:
    from .app import PaiHub
    from .store import open_store
    from .store.db import sqlite_url
    from .store.users import UserRepository

    app = PaiHub()
    app.load_layers({"data_dir": args.data_dir})  # makes (or checks) the data directory private
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


def cmd_export_rules(args: argparse.Namespace) -> int:
    from .monitoring.alerts import RuleError, default_rules, parse_rules, prometheus_rules

    try:
        rules = parse_rules(Path(args.rules).read_text()) if args.rules else default_rules()
    except RuleError as exc:
        return _fail(f"{args.rules}: {exc}")
    text = prometheus_rules(rules)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pai", description="PAI Hub: the server's commands.")
    p.add_argument("--data-dir", help="data directory of a local control plane (server, user, token)")
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--token", help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("server", help="run the standalone control plane with the local backend")
    s.add_argument("--ip", default=None)
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--data-dir", dest="data_dir_server", default=None)
    s.add_argument("--simulated-gpus", type=int, default=None, help="declare N simulated GPUs")
    s.add_argument("--node-cpu", type=int, default=None, help="CPUs the node offers to jobs")
    s.add_argument("--isolation", choices=("auto", "none", "users", "sandbox"), default=None,
                   help="who users' tasks run as: none (this server's user), users (each user's own Unix "
                   "account), sandbox (that account in a bubblewrap sandbox); default auto (PaiHub.isolation)")
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

    a = sub.add_parser("alerts", help="the alert rules").add_subparsers(dest="alerts_command", required=True)
    ex = a.add_parser("export-rules", help="print (or write) the alert rules as a Prometheus rules file; "
                      "no server needed")
    ex.add_argument("--rules", help="an alert rules file (default: the built-in default rules)")
    ex.add_argument("-o", "--output", help="write here instead of standard output")
    ex.set_defaults(func=cmd_export_rules)

    from .simulator.cli import add_parser as add_simulate

    add_simulate(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if not is_server_command(words):
        from pai_client.cli import main as client_main

        return client_main(words)
    args = build_parser().parse_args(words)
    if getattr(args, "data_dir_server", None):
        args.data_dir = args.data_dir_server
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
