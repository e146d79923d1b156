"""The launcher: one pre-imported process that starts and supervises every task of a backend.

``python -m pai_runtime.launcher --notify SOCKET`` reads launch requests from stdin, one JSON object
per line (``{"dir": "<task attempt directory>"}``). For each it runs a :class:`TaskRun`: the command is
started with ``posix_spawn`` (vfork+exec: no copy of this interpreter) in a session of its own, and
the launcher's single event loop copies every task's output into its logs, reaps it through its pidfd,
writes its ``exit.json`` and notifies the backend.

Why one process and not a fork per task: on the 2-core machines this must run on, forking a Python
supervisor per task (and the copy-on-write faults that follow) costs several milliseconds of CPU per
task, more than all the rest together; see docs/backends.md for the measurements.

The launcher runs in its own session, started by the backend. When its stdin reaches end of file (the
backend closed, or the control plane died) it takes no new work but keeps supervising what it runs,
and exits when the last of its tasks has ended. A restarted control plane starts a new launcher; the
old one's exit notifications reach the new backend through the same socket path.

A task that cannot even be given its directory (an unwritable or full ``<run_root>/tasks``) has no
place for its ``exit.json``: the launcher then writes its exit record as one JSON line on its stdout,
a pipe the backend reads (:func:`start_failure`), and goes on with the other tasks. One task's start
never brings the launcher, and every task it supervises, down.

With isolation (users or sandbox), a task's declared ports are closed to other users' tasks from
before its command starts until it ends (:mod:`pai_runtime.taskports`); when iptables cannot do it,
the task runs and its runtime.log says its ports are not protected.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import signal
import sys
import time
import traceback
from typing import Any

from pai_runtime.exitcodes import EXIT_START_FAILED
from pai_runtime.isolation import IsolationPolicy
from pai_runtime.procinfo import is_alive, kill_group, proc_start_time
from pai_runtime.supervisor import EXIT_FILE, PID_FILE, SPEC_FILE, Notifier, TaskRun, read_json, write_json
from pai_runtime.taskports import TaskPortGuard

_IN = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR


CLAIM_FILE = "claim"


def claim(task_dir: str) -> bool:
    """Claim a task attempt for this launcher, exclusively (``O_EXCL``): False when another launcher
    has it. After a control-plane restart the earlier launcher may still hold an unread start of a
    task that the new control plane, finding no trace of it, starts again on the new launcher;
    whichever launcher claims first runs it, the other refuses, so a task never runs twice.

    A claim whose launcher died before starting the task (no ``pid.json``, no ``exit.json``) is
    taken over, by one launcher only (the take-over is itself an exclusive create)."""
    path = f"{task_dir}/{CLAIM_FILE}"
    me = f"{os.getpid()} {proc_start_time(os.getpid())}"
    if _create_exclusive(path, me):
        return True
    holder_pid = ""
    try:
        with open(path) as f:
            holder_pid, _, holder_start = f.read().partition(" ")
        holder_alive = is_alive(int(holder_pid), int(holder_start))
    except (OSError, ValueError):
        holder_alive = False  # half-written by a launcher that died in between: not alive
    if holder_alive or os.path.exists(f"{task_dir}/{PID_FILE}") or os.path.exists(f"{task_dir}/{EXIT_FILE}"):
        return False
    takeover = f"{path}.after-{holder_pid or 'unknown'}"
    if not _create_exclusive(takeover, me):
        return False
    os.replace(takeover, path)
    return True


def _create_exclusive(path: str, content: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.write(fd, content.encode())
    finally:
        os.close(fd)
    return True


def start_failure(task_dir: str, diagnostics: str) -> dict[str, Any]:
    """The exit record of a task the launcher could not start (its command never ran): a permanent
    start failure (-200), not a lost task, so that it fails once with the cause instead of being
    retried into the same wall."""
    return {"task": os.path.basename(task_dir), "exitCode": EXIT_START_FAILED, "startedAt": None,
            "finishedAt": time.time(), "reason": diagnostics, "diagnostics": diagnostics}


def _cause(exc: BaseException) -> str:
    """An OSError's own words and the path it names (``[Errno 13] Permission denied: '/x'`` reads
    as ``Permission denied``); anything else as ``Type: message``."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


class Reports:
    """Exit records for the backend on a pipe (the launcher's stdout), one JSON line each, written
    without ever blocking the launcher's loop: what the pipe does not take now waits for
    :meth:`flush`. With nobody reading (the control plane is gone) they are dropped; the restarted
    control plane finds no trace of such a task and counts it lost."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self._pending = b""
        if fd is not None:
            os.set_blocking(fd, False)

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def send(self, record: dict[str, Any]) -> None:
        if self.fd is None:
            return
        self._pending += json.dumps(record).encode() + b"\n"
        self.flush()

    def flush(self) -> None:
        while self._pending and self.fd is not None:
            try:
                written = os.write(self.fd, self._pending)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the backend closed its end
                self._pending = b""
                self.fd = None
                return
            self._pending = self._pending[written:]


class Launcher:
    """The event loop: stdin requests, task pipes and pidfds, drain deadlines, pending notifications."""

    def __init__(self, notify_path: str | None, stdin_fd: int = 0,
                 policy: IsolationPolicy | None = None, report_fd: int | None = None) -> None:
        self.stdin_fd = stdin_fd
        self.policy = policy
        self.notifier = Notifier(notify_path)
        self.reports = Reports(report_fd)
        self.epoll = select.epoll()
        self.fds: dict[int, tuple[TaskRun, bool]] = {}  # fd -> (run, is_pidfd)
        self.running: set[TaskRun] = set()
        self.no_pidfd: set[TaskRun] = set()
        self.draining: set[TaskRun] = set()  # ended, still copying output until done or deadline
        self._buf = b""
        # Tasks' declared ports closed to other users' tasks while they run (pai_runtime.taskports).
        self.ports = TaskPortGuard(policy) if policy is not None and policy.switches_users else None

    def start(self, task_dir: str, spec: dict[str, Any] | None = None) -> None:
        """Start a task. With ``spec``, first create its directory and spec.json: doing it here keeps
        two file-system writes per task off the control plane's event loop. A task that cannot be
        started is reported with its cause (:meth:`_refuse`); the launcher goes on."""
        try:
            self._start(task_dir, spec)
        except Exception as exc:
            traceback.print_exc()
            self._refuse(task_dir, f"the launcher could not start the task: {_cause(exc)}")

    def _refuse(self, task_dir: str, diagnostics: str) -> None:
        """Report a task whose command never ran: in its exit.json when that can be written, else on
        the report pipe; the backend hears of it either way."""
        print(f"pai_runtime.launcher: {task_dir}: {diagnostics}", file=sys.stderr, flush=True)
        record = start_failure(task_dir, diagnostics)
        try:
            write_json(f"{task_dir}/{EXIT_FILE}", record, 0o600 if self.policy is not None else 0o644)
        except OSError:
            self.reports.send(record)
            return
        self.notifier.send(os.path.basename(task_dir))

    def _start(self, task_dir: str, spec: dict[str, Any] | None) -> None:
        if spec is not None:
            try:
                os.mkdir(task_dir, 0o700)
            except FileExistsError:  # made by a stop marker, or by another launcher: see the claim
                pass
            except OSError as exc:
                self._refuse(task_dir, f"cannot create task directory {task_dir}: {_cause(exc)}")
                return
            try:
                claimed = claim(task_dir)
                if claimed:
                    write_json(f"{task_dir}/{SPEC_FILE}", spec, 0o600)
            except OSError as exc:
                self._refuse(task_dir, f"cannot write the task directory {task_dir}: {_cause(exc)}")
                return
            if not claimed:
                print(f"pai_runtime.launcher: {task_dir} was already started", file=sys.stderr, flush=True)
                return
        if self.ports is not None:
            if spec is None:
                spec = read_json(f"{task_dir}/{SPEC_FILE}")
            if spec is not None:
                try:
                    self.ports.guard(task_dir, spec)  # before the command starts
                except Exception:  # a port guard never costs a task its run
                    traceback.print_exc()
        run = TaskRun(task_dir, spec, self.policy)
        if not run.launch():
            self._release_ports(run.task_id)
            if not os.path.exists(f"{task_dir}/{EXIT_FILE}"):  # its record could not be written
                self.reports.send({**run.record, "task": run.task_id,
                                   "diagnostics": run.record.get("error") or "the task could not be started"})
                return
            self.notifier.send(run.task_id)
            return
        self.running.add(run)
        for fd in run.targets:
            self.epoll.register(fd, _IN)
            self.fds[fd] = (run, False)
        if run.pidfd is not None:
            self.epoll.register(run.pidfd, select.EPOLLIN)
            self.fds[run.pidfd] = (run, True)
        else:
            self.no_pidfd.add(run)

    def _end(self, run: TaskRun) -> None:
        for fd in [*run.targets, run.pidfd]:
            if fd is not None and fd in self.fds:
                self.epoll.unregister(fd)
                del self.fds[fd]
        self.running.discard(run)
        self.no_pidfd.discard(run)
        self.draining.discard(run)
        try:
            run.finish()
        except Exception:
            traceback.print_exc()
            run.fail("supervisor error while finishing")
        self._release_ports(run.task_id)
        self.notifier.send(run.task_id)

    def _release_ports(self, task_id: str) -> None:
        """Open the ended task's ports again (see :mod:`pai_runtime.taskports`); never raises."""
        if self.ports is None:
            return
        try:
            self.ports.release(task_id)
        except Exception:
            traceback.print_exc()

    def _read_requests(self) -> bool:
        """Handle what is on stdin; False at end of file."""
        try:
            data = os.read(self.stdin_fd, 65536)
        except (BlockingIOError, InterruptedError):
            return True
        if not data:
            return False
        *lines, self._buf = (self._buf + data).split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                task_dir = request["dir"]
            except (ValueError, KeyError, TypeError):
                print(f"pai_runtime.launcher: bad request {line[:200]!r}", file=sys.stderr, flush=True)
                continue
            self.start(task_dir, request.get("spec"))
        return True

    def serve(self) -> None:
        """Run until stdin is closed and every task has ended."""
        self.epoll.register(self.stdin_fd, _IN)
        reading = True
        while reading or self.running:
            timeout = -1.0
            if self.draining:
                first = min(r.deadline or 0.0 for r in self.draining)
                timeout = max(0.0, first - time.monotonic())
            if self.notifier.pending or self.no_pidfd or self.reports.pending:
                timeout = 0.005 if timeout < 0 else min(timeout, 0.005)
            for fd, _ in self.epoll.poll(timeout):
                if fd == self.stdin_fd:
                    if not self._read_requests():
                        self.epoll.unregister(fd)
                        reading = False
                    continue
                entry = self.fds.get(fd)
                if entry is None:
                    continue
                run, is_pidfd = entry
                try:
                    if is_pidfd:
                        self.epoll.unregister(fd)
                        del self.fds[fd]
                        run.on_exit()
                    elif not run.on_output(fd):
                        # on_output closed the pipe, which removed it from the epoll set
                        del self.fds[fd]
                except Exception:
                    traceback.print_exc()
                    kill_group(run.pid, signal.SIGKILL)
                    run.on_exit()
                if run.done:
                    self._end(run)
                elif run.ended:
                    self.draining.add(run)
            for run in [r for r in self.no_pidfd if r.poll_exit()]:
                self.no_pidfd.discard(run)
                self.draining.add(run)
            for run in [r for r in self.draining if r.done]:
                self._end(run)
            self.notifier.flush()
            self.reports.flush()
        deadline = time.monotonic() + 10
        while (self.notifier.pending or self.reports.pending) and time.monotonic() < deadline:
            time.sleep(0.01)
            self.notifier.flush()
            self.reports.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pai_runtime.launcher", description=__doc__)
    parser.add_argument("--notify", help="unix datagram socket that hears about task exits")
    parser.add_argument("--report-fd", type=int, help="a pipe for exit records that have no task "
                        "directory to go to (one JSON line each); default: none")
    parser.add_argument("--isolation", help="the isolation policy as JSON (pai_runtime.isolation); "
                        "default: none, every task runs as this process's user")
    args = parser.parse_args(argv)
    policy = IsolationPolicy.from_json(args.isolation) if args.isolation else None
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only end of file on stdin ends the launcher
    gc.freeze()  # the imported modules never become garbage: keep the collector off them
    gc.set_threshold(20000, 20, 20)
    Launcher(args.notify, policy=policy, report_fd=args.report_fd).serve()


if __name__ == "__main__":
    main()
