"""The local backend: tasks are process groups (sessions) on this machine, run by a launcher process.

Launch path (see docs/backends.md)::

    control plane ──spec.json + one line on a pipe──▶ launcher ──posix_spawn──▶ bash -c CMD  (own session)
          ▲                                                │ copies output into logs, reaps through a pidfd
          └──── datagram "<task_id>" on <run_root>/events.sock ◀── exit.json written

The control plane writes one file and one line per task; everything else happens in the launcher
(:mod:`pai_runtime.launcher`), which runs in its own session and outlives the control plane until its
last task has ended. A new backend on the same ``run_root`` re-adopts running tasks from the files in
their task directories, and hears their exits on the same socket path.

A task the launcher cannot give a directory (``<run_root>/tasks`` unwritable or full) has nowhere to
write ``exit.json``: the launcher sends that exit record on its stdout, a pipe read here
(:class:`_LauncherReports`), and the task fails once with the cause (-200, "cannot create task
directory ...") instead of being lost and retried into the same wall.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

import pai_runtime
from pai_hub.backends.base import NodeInfo, TaskEvent, TaskExit, TaskLaunch, TaskRunning
from pai_hub.backends.events import lost_record
from pai_hub.backends.local.gpus import SIMULATED_GPU_MEMORY_MB, discover_gpus
from pai_hub.backends.local.gpus import simulated_gpus as declare_simulated_gpus
from pai_hub.backends.taskdir import TaskDirBackend, check_task_id, is_task_id
from pai_runtime.env import task_environ
from pai_runtime.firewall import FirewallError, instance_tag
from pai_runtime.isolation import IsolationPolicy
from pai_runtime.launcher import CLAIM_FILE
from pai_runtime.procinfo import has_environ, is_alive, kill_group
from pai_runtime.supervisor import EXIT_FILE, PID_FILE, SPEC_FILE, read_json
from pai_runtime.taskports import sweep_stale

log = logging.getLogger(__name__)


class _LauncherReports(asyncio.Protocol):
    """The launcher's stdout: one JSON exit record per line for tasks that have no task directory
    to hold their ``exit.json`` (see :mod:`pai_runtime.launcher`)."""

    def __init__(self, on_record: Callable[[dict[str, Any]], None]) -> None:
        self.on_record = on_record
        self._buf = b""

    def data_received(self, data: bytes) -> None:
        *lines, self._buf = (self._buf + data).split(b"\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                log.warning("local backend: unreadable line from the launcher: %r", line[:200])
                continue
            if isinstance(record, dict):
                self.on_record(record)

#: How long adopt() waits for a supervisor that was forked but has not yet written pid.json.
_LAUNCH_SETTLE_SECONDS = 0.5


class LocalBackend(TaskDirBackend):
    """Runs tasks as local processes (see module docstring).

    ``simulated_gpus``, when given, replaces GPU discovery: the node declares that many GPUs
    (``simulated=True``, uuid ``SIM-GPU-<n>``) whether or not real ones exist, so that a
    configuration behaves the same on every machine. Without it, GPUs come from NVML (none if NVML
    is unavailable).

    ``isolation`` says who tasks and debug shells run as (:mod:`pai_runtime.isolation`); None is mode
    ``none``: everything runs as this process's user, as before isolation existed.
    """

    name = "local"

    def __init__(
        self,
        run_root: Path | str,
        *,
        node_name: str | None = None,
        ip: str = "127.0.0.1",
        simulated_gpus: int | None = None,
        gpu_model: str = "simulated",
        cpu: int | None = None,
        memory_mb: int | None = None,
        simulated_gpu_memory_mb: int = SIMULATED_GPU_MEMORY_MB,
        isolation: IsolationPolicy | None = None,
    ) -> None:
        super().__init__(run_root)
        if isolation is not None:
            if not isolation.firewall_tag:  # tasks' port rules need an owner: this run root
                isolation = dataclasses.replace(isolation, firewall_tag=instance_tag(self.run_root))
            self.isolation = isolation
        self.node_name = node_name or socket.gethostname()
        self.ip = ip
        if simulated_gpus is not None:
            gpus = declare_simulated_gpus(simulated_gpus, gpu_model, simulated_gpu_memory_mb)
        else:
            gpus = discover_gpus()
        self.gpus = tuple(gpus)
        self.cpu = cpu if cpu is not None else (os.cpu_count() or 1)
        self.memory_mb = memory_mb if memory_mb is not None else psutil.virtual_memory().total // (1 << 20)
        self._launcher: subprocess.Popen[bytes] | None = None
        self._launcher_in: asyncio.WriteTransport | None = None
        self._launcher_out: asyncio.ReadTransport | None = None
        self._watched: dict[int, int] = {}  # supervisor pid -> pidfd registered with the loop

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        os.makedirs(self.tasks_dir, mode=0o700, exist_ok=True)
        if self.isolation.switches_users:
            # Passable, not listable: a task of mode "users" reaches its own directory by name.
            os.chmod(self.tasks_dir, 0o711)
            await asyncio.to_thread(self._sweep_port_rules)
        self._listen()
        await self._start_launcher()

    async def _start_launcher(self) -> None:
        assert self._loop is not None
        if self._launcher_out is not None:  # the previous launcher's pipe (it died, or was left)
            self._launcher_out.close()
            self._launcher_out = None
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(pai_runtime.__file__)))
        argv = [sys.executable, "-m", "pai_runtime.launcher", "--notify", str(self.socket_path), "--report-fd", "1"]
        if self.isolation.switches_users:
            argv += ["--isolation", self.isolation.to_json()]
        with open(self.run_root / "launcher.log", "ab") as errors:
            self._launcher = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, cwd=package_root,
                env=task_environ(os.environ), start_new_session=True, close_fds=True,
            )
        assert self._launcher.stdin is not None
        transport, _ = await self._loop.connect_write_pipe(asyncio.Protocol, self._launcher.stdin)
        self._launcher_in = transport
        assert self._launcher.stdout is not None
        self._launcher_out, _ = await self._loop.connect_read_pipe(
            lambda: _LauncherReports(self._on_start_failure), self._launcher.stdout)
        self._watch_supervisor(self._launcher.pid, None)

    def _sweep_port_rules(self) -> None:
        """Rules for the ports of tasks no longer live, left by a launcher that died before it could
        release them (:mod:`pai_runtime.taskports`); a task an earlier launcher still runs or is
        starting keeps its rules. A firewall that cannot be asked is logged, never fatal."""
        try:
            names = [entry.name for entry in os.scandir(self._tasks) if entry.is_dir(follow_symlinks=False)]
            removed = sweep_stale(self.isolation.firewall_tag, self._task_is_live, names)
        except (FirewallError, OSError, ValueError) as exc:
            log.warning("local backend: could not sweep tasks' port rules: %s", exc)
            return
        if removed:
            log.info("local backend: removed the port rules of %d ended tasks", len(removed))

    def _task_is_live(self, task_id: str) -> bool:
        """No exit record, and a live supervisor (pid.json) or a live launcher holding its claim."""
        task_dir = f"{self._tasks}/{task_id}"
        if os.path.exists(f"{task_dir}/{EXIT_FILE}"):
            return False
        pids = read_json(f"{task_dir}/{PID_FILE}")
        if pids is not None:
            return is_alive(pids.get("supervisorPid"), pids.get("supervisorStart"))
        try:
            with open(f"{task_dir}/{CLAIM_FILE}") as f:
                pid, _, start = f.read().partition(" ")
            return is_alive(int(pid), int(start))
        except (OSError, ValueError):
            return False

    def _on_start_failure(self, record: dict[str, Any]) -> None:
        """A task the launcher could not start, reported on its pipe: its end, with the cause."""
        task_id = record.pop("task", None)
        if is_task_id(task_id):
            log.warning("local backend: task %s could not be started: %s", task_id, record.get("diagnostics"))
            self._emit_exit(task_id, record)

    def _watch_supervisor(self, pid: int, start_time: int | None) -> None:
        """Re-examine live tasks when supervisor ``pid`` exits (a crash would otherwise go unheard)."""
        if pid in self._watched or self._loop is None:
            return
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return  # gone already (adopt() has looked at its tasks) or no pidfds on this system
        if start_time is not None and not is_alive(pid, start_time):
            os.close(pidfd)  # the pid was reused: not our supervisor
            return
        self._watched[pid] = pidfd
        self._loop.add_reader(pidfd, self._on_supervisor_exit, pid)

    def _on_supervisor_exit(self, pid: int) -> None:
        pidfd = self._watched.pop(pid, None)
        if pidfd is not None and self._loop is not None:
            self._loop.remove_reader(pidfd)
            os.close(pidfd)
        was_launcher = self._launcher is not None and self._launcher.pid == pid
        if self._launcher is not None and was_launcher:
            self._launcher.poll()  # reap it
        self._on_datagrams()  # exits it reported before dying come first
        for task_id in list(self._live):
            if not self._may_be_supervised_by(task_id, pid, was_launcher):
                continue  # another supervisor's task, maybe being launched right now: not lost
            event = self._inspect(task_id, final=True)
            if isinstance(event, TaskExit):
                self._queue.put_nowait(event)

    def _may_be_supervised_by(self, task_id: str, pid: int, was_launcher: bool) -> bool:
        """Whether supervisor ``pid`` ran the task: its pid.json names it, or the task has none yet
        and ``pid`` was the launcher it was handed to. An earlier launcher that ends (its last task
        done, after a restart) must not end the tasks the current one has not yet written pid.json for."""
        pids = read_json(f"{self._tasks}/{task_id}/{PID_FILE}")
        if pids is None:
            return was_launcher
        return pids.get("supervisorPid") == pid

    async def close(self) -> None:
        self._stop_listening()
        for pidfd in self._watched.values():
            if self._loop is not None:
                self._loop.remove_reader(pidfd)
            os.close(pidfd)
        self._watched.clear()
        if self._launcher_in is not None:
            # Flushed, then closed: the launcher takes no more work and exits after its last task.
            self._launcher_in.close()
            self._launcher_in = None
            await asyncio.sleep(0)
        if self._launcher_out is not None:
            self._launcher_out.close()
            self._launcher_out = None
        self._launcher = None
        self._end_events()

    # -- description ---------------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(name=self.node_name, ip=self.ip, cpu=self.cpu, memory_mb=self.memory_mb,
                         gpus=self.gpus)]

    # -- tasks ---------------------------------------------------------------------------------

    async def start(self, launch: TaskLaunch) -> None:
        if self._launcher_in is None:
            raise RuntimeError("LocalBackend.start() before open()")
        task_id = check_task_id(launch.task_id)
        task_dir = f"{self._tasks}/{task_id}"
        if os.path.exists(f"{task_dir}/{PID_FILE}") or os.path.exists(f"{task_dir}/{EXIT_FILE}"):
            raise ValueError(f"task {task_id} was already started")
        spec = dict(launch.spec)
        spec["gpus"] = list(launch.gpus)
        if not spec.get("work_dir"):
            spec["work_dir"] = f"{task_dir}/work"
        if not spec.get("log_dir"):
            spec["log_dir"] = task_dir  # one directory less to create per task
        peers = spec.get("peers") or ()
        if any(p.get("ip") is None for p in peers):  # every peer of a local task runs here
            spec["peers"] = [p if p.get("ip") is not None else {**p, "ip": self.ip} for p in peers]
        if self._launcher is None or self._launcher.poll() is not None or self._launcher_in.is_closing():
            log.warning("local backend: launcher gone, starting a new one")
            await self._start_launcher()
        assert self._launcher_in is not None
        # The launcher creates the directory and spec.json (file-system work off this event loop).
        self._launcher_in.write(json.dumps({"dir": task_dir, "spec": spec}).encode() + b"\n")
        self._live.add(task_id)
        self._queue.put_nowait(TaskRunning(task_id, time.time()))

    async def stop(self, task_id: str, grace: float = 10.0) -> None:
        if task_id not in self._live:
            return  # unknown, or already ended: nothing to do
        # The marker covers a supervisor that has not yet written pid.json: it checks for it.
        self._mark_stopped(f"{self._tasks}/{task_id}")
        self._signal(task_id, signal.SIGTERM)
        if task_id not in self._kill_timers and self._loop is not None:
            self._kill_timers[task_id] = self._loop.call_later(
                max(0.0, grace), self._force_kill, task_id, 0)

    def _signal(self, task_id: str, sig: int) -> bool | None:
        """Signal the task's process group. None: not launched yet; False: no longer running."""
        task_dir = f"{self._tasks}/{task_id}"
        pids = read_json(f"{task_dir}/{PID_FILE}")
        if pids is None:
            return None
        if os.path.exists(f"{task_dir}/{EXIT_FILE}"):
            return False
        # While its supervisor lives, the group is the task's (the supervisor reaps it last).
        if not is_alive(pids.get("supervisorPid"), pids.get("supervisorStart")):
            return False
        return kill_group(int(pids["pgid"]), sig)

    def _force_kill(self, task_id: str, tries: int) -> None:
        self._kill_timers.pop(task_id, None)
        if task_id not in self._live:
            return
        if self._signal(task_id, signal.SIGKILL) is None and tries < 40 and self._loop is not None:
            self._kill_timers[task_id] = self._loop.call_later(0.25, self._force_kill, task_id, tries + 1)

    # -- adoption ------------------------------------------------------------------------------

    async def adopt(self, known_task_ids: list[str]) -> list[TaskEvent]:
        found: dict[str, TaskEvent | None] = {tid: self._inspect(tid, final=False) for tid in known_task_ids}
        if any(event is None for event in found.values()):
            await asyncio.sleep(_LAUNCH_SETTLE_SECONDS)
            for tid, event in found.items():
                if event is None:
                    found[tid] = self._inspect(tid, final=True)
        return [event for event in found.values() if event is not None]

    def _inspect(self, task_id: str, *, final: bool) -> TaskEvent | None:
        """What became of one task; None when it may still be launching (look again later)."""
        if not is_task_id(task_id):
            return self._ended(task_id, lost_record("invalid task id"))
        task_dir = f"{self._tasks}/{task_id}"
        exit_path = f"{task_dir}/{EXIT_FILE}"
        record = read_json(exit_path)
        if record is not None:
            return self._ended(task_id, record)
        pids = read_json(f"{task_dir}/{PID_FILE}")
        if pids is not None and is_alive(pids.get("supervisorPid"), pids.get("supervisorStart")):
            # From now on its exit datagram is accepted (this runs with no await in between).
            self._live.add(task_id)
            self._watch_supervisor(int(pids["supervisorPid"]), pids.get("supervisorStart"))
            return TaskRunning(task_id, pids.get("startedAt"))
        record = read_json(exit_path)  # it may have ended between the two looks
        if record is not None:
            return self._ended(task_id, record)
        if pids is None:
            if not final and os.path.exists(f"{task_dir}/{SPEC_FILE}"):
                return None
            return self._ended(task_id, lost_record("no trace of the task's supervisor"))
        # The supervisor died without a word (killed, machine trouble): end what is left of the task.
        spec = read_json(f"{task_dir}/{SPEC_FILE}") or {}
        if spec.get("task_uid") and has_environ(pids.get("taskPid"), "FC_POD_UID", spec["task_uid"]):
            kill_group(int(pids["pgid"]), signal.SIGKILL)
        return self._ended(task_id, lost_record("supervisor died without recording an exit"))

    # -- shells --------------------------------------------------------------------------------

    def _shell_environ(self) -> dict[str, str]:
        return task_environ(os.environ)
