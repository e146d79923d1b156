"""What every ``pai`` command group shares: its client, one-line failures, job files with
``--param``, and declaring a subcommand in one call."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..console import parse_task
from ..errors import PaiError
from ..transport import PaiClient


def fail(message: str) -> int:
    """A failure is one line on stderr and exit status 1 — never a traceback."""
    print(f"pai: {message}", file=sys.stderr)
    return 1


def client(args: argparse.Namespace) -> PaiClient:
    return PaiClient(args.url, args.token)


def command(sub: Any, name: str, func: Callable[[argparse.Namespace], int], *positionals: str,
            json: bool = False, **kwargs: Any) -> argparse.ArgumentParser:
    """``pai ... NAME POSITIONAL...`` running ``func`` (``json``: with a ``--json`` flag)."""
    parser = sub.add_parser(name, **kwargs)
    for positional in positionals:
        parser.add_argument(positional)
    if json:
        parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=func)
    return parser


def group(sub: Any, name: str, help: str) -> Any:
    """``pai NAME SUBCOMMAND``: the subcommands' parser set."""
    return sub.add_parser(name, help=help).add_subparsers(dest="sub", required=True)


def read_job(path: str, params: list[str] | None) -> str:
    """A job's YAML from ``path`` (``-``: stdin), with ``--param KEY=VALUE`` set in ``parameters``."""
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


def wait_and_report(c: PaiClient, name: str, timeout: float) -> int:
    """``--wait``: print the job's final state; exit 0 only when it SUCCEEDED."""
    state = c.wait(name, timeout=timeout)["jobStatus"]["state"]
    print(state)
    return 0 if state == "SUCCEEDED" else 1


def print_warnings(answer: Any) -> None:
    """The server's ``warnings`` (something the job asks for will not happen there), on stderr."""
    for warning in (answer.get("warnings") or []) if isinstance(answer, dict) else []:
        print(f"pai: warning: {warning}", file=sys.stderr)


def print_json(data: Any) -> int:
    """``--json``: the answer as the API gave it."""
    print(json.dumps(data, indent=2))
    return 0


def task_option(value: str) -> tuple[str | None, int]:
    """``--task ROLE/INDEX`` (:func:`pai_client.console.parse_task`); a bad one is a usage error."""
    try:
        return parse_task(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--task {value!r}: ")) from None
