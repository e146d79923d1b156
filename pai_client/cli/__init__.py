"""``pai``: the command line, a client of the REST API (one module per command group).

``job`` (:mod:`.jobs`), ``market`` (:mod:`.market`), ``experiment`` (:mod:`.experiments`), ``usage``,
``alerts`` and ``job timeline`` (:mod:`.ops`) speak REST through :class:`pai_client.PaiClient`.
The commands that are the server — ``server``, ``user``, ``token``, ``simulate``, ``alerts
export-rules`` — are handed to ``python -m pai_hub.cli`` (:mod:`.dispatch`), so importing this
package loads no server code. Every error is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import PaiError
from .common import fail
from .dispatch import is_server_command, run_server_command
from .experiments import add_experiments
from .jobs import add_jobs
from .market import add_market
from .ops import add_ops

SERVER_HELP = {
    "server": "run the standalone control plane with the local backend",
    "user": "manage users of a local control plane (user add NAME [--admin] [--password P])",
    "token": "API tokens (token create NAME: an application token; prints only the token)",
    "simulate": "replay a job trace on a simulated cluster and report queueing, JCT, utilisation",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pai", description="PAI Hub: OpenPAI-compatible GPU jobs.")
    p.add_argument("--data-dir", help="data directory of a local control plane (server, user, token)")
    p.add_argument("--url", help="PAI REST server (default $PAI_URL)")
    p.add_argument("--token", help="API token (default $PAI_TOKEN)")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in SERVER_HELP.items():  # listed for --help; run by the server (dispatch.py)
        sub.add_parser(name, help=text, add_help=False)
    job = add_jobs(sub)
    add_market(sub)
    add_ops(sub, job)
    add_experiments(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if is_server_command(words):
        return run_server_command(words, replace_process=argv is None)
    args = build_parser().parse_args(words)
    try:
        return args.func(args)
    except PaiError as exc:
        return fail(f"{exc.code}: {exc.message}")
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return fail(str(exc))


__all__ = ["build_parser", "main"]
