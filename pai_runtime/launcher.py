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

from pai_runtime.isolation import IsolationPolicy
from pai_runtime.procinfo import is_alive, kill_group, proc_start_time
from pai_runtime.supervisor import EXIT_FILE, PID_FILE, SPEC_FILE, Notifier, TaskRun, write_json

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


class Launcher:
    """The event loop: stdin requests, task pipes and pidfds, drain deadlines, pending notifications."""

    def __init__(self, notify_path: str | None, stdin_fd: int = 0,
                 policy: IsolationPolicy | None = None) -> None:
        self.stdin_fd = stdin_fd
        self.policy = policy
        self.notifier = Notifier(notify_path)
        self.epoll = select.epoll()
        self.fds: dict[int, tuple[TaskRun, bool]] = {}  # fd -> (run, is_pidfd)
        self.running: set[TaskRun] = set()
        self.no_pidfd: set[TaskRun] = set()
        self.draining: set[TaskRun] = set()  # ended, still copying output until done or deadline
        self._buf = b""

    def start(self, task_dir: str, spec: dict[str, Any] | None = None) -> None:
        """Start a task. With ``spec``, first create its directory and spec.json: doing it here keeps
        two file-system writes per task off the control plane's event loop."""
        if spec is not None:
            try:
                os.mkdir(task_dir, 0o700)
            except FileExistsError:  # made by a stop marker, or by another launcher: see the claim
                pass
            if not claim(task_dir):
                print(f"pai_runtime.launcher: {task_dir} was already started", file=sys.stderr, flush=True)
                return
            write_json(f"{task_dir}/{SPEC_FILE}", spec, 0o600)
        run = TaskRun(task_dir, spec, self.policy)
        if not run.launch():
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
        self.notifier.send(run.task_id)

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
            if self.notifier.pending or self.no_pidfd:
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
        deadline = time.monotonic() + 10
        while self.notifier.pending and time.monotonic() < deadline:
            time.sleep(0.01)
            self.notifier.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pai_runtime.launcher", description=__doc__)
    parser.add_argument("--notify", help="unix datagram socket that hears about task exits")
    parser.add_argument("--isolation", help="the isolation policy as JSON (pai_runtime.isolation); "
                        "default: none, every task runs as this process's user")
    args = parser.parse_args(argv)
    policy = IsolationPolicy.from_json(args.isolation) if args.isolation else None
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only end of file on stdin ends the launcher
    gc.freeze()  # the imported modules never become garbage: keep the collector off them
    gc.set_threshold(20000, 20, 20)
    Launcher(args.notify, policy=policy).serve()


if __name__ == "__main__":
    main()
