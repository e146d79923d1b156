"""``pai job submit | list | status | logs | stop | debug | release | validate``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from .. import terminal
from ..console import job_rows, print_table, write_logs
from .common import client, command, fail, print_json, print_warnings, read_job, task_option, wait_and_report

#: whom ``pai job validate`` renders a job for (no server says who the user is; only the framework name
#: ``<user>~<name>`` depends on it)
VALIDATING_USER = "validate"


def cmd_validate(args: argparse.Namespace) -> int:
    """Validated here, by the protocol's own pure rules (no server needed): the very function the
    server's submission runs before it looks at the cluster (:func:`pai_hub.protocol.check`), so a
    document refused here is refused by the server with the same message, and the other way round
    except for what depends on the cluster (``--dry-run`` of submit asks the server)."""
    from pai_hub import protocol

    try:
        job = protocol.check(read_job(args.file, args.param), username=VALIDATING_USER).protocol
    except protocol.InvalidProtocol as exc:
        for err in getattr(exc, "errors", []) or [exc]:
            print(str(err), file=sys.stderr)
        return 1
    except OSError as exc:
        return fail(str(exc))
    if any(role.docker_image for role in job.task_roles.values()):
        # checked here without a server: whether its backend runs containers is the server's to say
        print("warning: dockerImage is applied only by backends that run containers; the local and Slurm "
              "backends record it and run the commands on the node itself (`pai job submit --dry-run` "
              "asks the server)", file=sys.stderr)
    plugins = (job.extras or {}).get("com.microsoft.pai.runtimeplugin") or []
    if any(isinstance(p, dict) and p.get("plugin") == "teamwise_storage" for p in plugins):
        print("warning: the teamwise_storage plugin needs team storages; a server without them (PAI Hub "
              "today) refuses the job", file=sys.stderr)
    print("ok")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    text = read_job(args.file, args.param)
    if args.array is not None:
        return submit_array(args, text)
    with client(args) as c:
        if args.dry_run:
            r = c.submit(text, dry_run=True)
            print_warnings(r)
            print(f"valid: {r['name']} ({r['totalTaskNumber']} tasks, {r['totalGpuNumber']} GPUs in "
                  f"{r['virtualCluster']}); not submitted")
            return 0
        import yaml  # as Api.submit_job: only when submitting

        print_warnings(c.submit(text))
        name = c.resolve(str((yaml.safe_load(text) or {}).get("name", "")))
        print(f"submitted {name}")
        return wait_and_report(c, name, args.timeout) if args.wait else 0


def submit_array(args: argparse.Namespace, text: str) -> int:
    """``--array 0-9999``: one request, one job per index (``<name>-<index>``), as Slurm's sbatch --array."""
    if args.wait:
        return fail("--wait follows one job; follow an array with pai job list")
    with client(args) as c:
        r = c.submit_many(text, array=args.array, dry_run=args.dry_run)
    print_warnings(r)
    names = r["names"]
    span = names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"
    if args.dry_run:
        print(f"valid: {r['count']} jobs ({span}); not submitted")
    else:
        print(f"submitted {r['count']} jobs ({span})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        mine = None if args.all else c.whoami()["username"]
        jobs = c.jobs(state=args.state, vc=args.vc, username=mine, limit=args.limit)
    if args.json:
        return print_json(jobs)
    print_table(job_rows(jobs))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with client(args) as c:
        detail = c.job(args.name)
        framework = c.framework(args.name)
    if args.json:
        return print_json(detail)
    s = detail["jobStatus"]
    print(f"{framework}: {s['state']}  (vc {s['virtualCluster']}, attempt {s['attemptId']}, retries {s['retries']})")
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
            code = "" if t["containerExitCode"] is None else f" exit {t['containerExitCode']}"
            print(f"  {role['taskRoleStatus']['name']}/{t['taskIndex']}: {t['taskState']}{code}  "
                  f"node {t['containerNodeName'] or '-'}  gpus {t.get('containerGpus') or '-'}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    role, index = args.task
    with client(args) as c:
        write_logs(c, args.name, role, index, args.log, follow=args.follow)
    return 0


def cmd_debug(args: argparse.Namespace) -> int:
    """A shell in a task kept for debugging (or a running one), like ``kubectl exec -it``."""
    role, index = args.task
    with client(args) as c:
        if role is None:
            role, index = c.debug_task(args.name)
        url, headers = c.terminal_url(args.name, role, index), c.auth_headers()
    return asyncio.run(_shell(url, headers))


async def _shell(url: str, headers: dict[str, str]) -> int:
    """This terminal, raw, wired to the task's shell until it disconnects."""
    import os
    import termios
    import tty

    conn = await terminal.connect(url, headers)
    fd = sys.stdin.fileno()
    interactive = sys.stdin.isatty()
    saved = termios.tcgetattr(fd) if interactive else None
    loop = asyncio.get_running_loop()

    def send_input() -> None:
        data = os.read(fd, 4096)
        conn.write_message(terminal.message("stdin", data.decode("utf-8", "replace") if data else "\x04"))
        if not data:
            loop.remove_reader(fd)

    try:
        if interactive:
            tty.setraw(fd)
            size = os.get_terminal_size()
            conn.write_message(terminal.message("set_size", size.lines, size.columns))
        loop.add_reader(fd, send_input)
        while (text := await conn.read_message()) is not None:
            kind, rest = terminal.parse(text)
            if kind == "stdout" and rest:
                sys.stdout.write(str(rest[0]))
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
    with client(args) as c:
        c.release(args.name)
        print(f"released the debug reservation of {c.framework(args.name)}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    with client(args) as c:
        c.stop(args.name)
        print(f"stopping {c.framework(args.name)}")
    return 0


def add_jobs(sub: Any) -> Any:
    """``pai job ...``; returns its subcommands (``pai job timeline`` is added by :mod:`.ops`)."""
    j = sub.add_parser("job", help="submit and manage jobs").add_subparsers(dest="sub", required=True)
    js = command(j, "submit", cmd_submit, "file")
    js.add_argument("--param", action="append", metavar="KEY=VALUE")
    js.add_argument("--wait", action="store_true")
    js.add_argument("--dry-run", action="store_true", help="check everything a submission checks, store nothing")
    js.add_argument("--timeout", type=float, default=3600)
    js.add_argument("--array", metavar="INDICES",
                    help="submit a job array: one job per index (0-9999, 0-99:2, 1,3,5-7), named NAME-INDEX, "
                         "with PAI_ARRAY_INDEX set; one request, stored all or nothing")
    jl = command(j, "list", cmd_list, json=True)
    jl.add_argument("--state")
    jl.add_argument("--vc")
    jl.add_argument("--all", action="store_true", help="(admins) every user's jobs")
    jl.add_argument("--limit", type=int, default=100)
    command(j, "status", cmd_status, "name", json=True)
    jg = command(j, "logs", cmd_logs, "name")
    jg.add_argument("--task", type=task_option, default=(None, 0), help="ROLE/INDEX (default: the first task)")
    jg.add_argument("--log", default="all", help="all | stdout | stderr | runtime.log")
    jg.add_argument("-f", "--follow", action="store_true")
    command(j, "stop", cmd_stop, "name")
    jd = command(j, "debug", cmd_debug, "name", help="a shell in a failed task kept for debugging (or a running task)")
    jd.add_argument("--task", type=task_option, default=(None, 0),
                    help="ROLE/INDEX (default: the task kept for debugging)")
    command(j, "release", cmd_release, "name", help="end a debug reservation early and free its GPUs")
    jv = command(j, "validate", cmd_validate, "file", help="check a job file locally (no server)")
    jv.add_argument("--param", action="append", metavar="KEY=VALUE")
    return j
