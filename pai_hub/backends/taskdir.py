"""Backends whose task attempts live in directories on a filesystem the control plane sees.

The local backend and the Slurm backend (with a shared run root) keep every task attempt in
``<run_root>/tasks/<task_id>/`` (``spec.json``, ``exit.json``, the ``stop`` marker, logs; see
:mod:`pai_runtime.supervisor`) and hear exits as datagrams carrying the task id on
``<run_root>/events.sock``. :class:`TaskDirBackend` is what they share: task-id checks, the socket,
exit records into events, the stop marker, logs, and debug shells in the task's environment. Each
backend adds how its tasks are launched, stopped and adopted.

Parts of a task directory may belong to the task's account (:mod:`pai_runtime.supervisor`), so what
is read back here (spec.json, exit.json, logs) is opened without following links and only when it is
a regular file the platform may trust, and the stop marker is never created through a link
(:mod:`pai_hub.backends.safefiles`). The local backend's layout already keeps the account from
replacing these files; the checks make the shared code safe for any layout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pai_hub.backends import safefiles
from pai_hub.backends.archive import TaskArchive
from pai_hub.backends.base import Backend
from pai_hub.backends.events import TaskEvents
from pai_runtime.accounts import ensure_account
from pai_runtime.env import build_env
from pai_runtime.isolation import IsolationPolicy
from pai_runtime.sandbox import TaskPlace, prepare, user_environ
from pai_runtime.spec import TaskSpec
from pai_runtime.supervisor import EXIT_FILE, LOG_NAMES, SPEC_FILE, STOP_FILE

if TYPE_CHECKING:
    from terminado.management import PtyWithClients

_TASK_ID = re.compile(r"[A-Za-z0-9._~-]+")
_SUN_PATH_MAX = 107


def is_task_id(task_id: Any) -> bool:
    """A task id is also a directory name: no ``/``, no ``.``/``..``, nothing a shell would expand."""
    return isinstance(task_id, str) and bool(_TASK_ID.fullmatch(task_id)) and task_id not in (".", "..")


def check_task_id(task_id: str) -> str:
    if not is_task_id(task_id):
        raise ValueError(f"invalid task id {task_id!r}: must match [A-Za-z0-9._~-]+")
    return task_id


#: How long a debug shell waits for the spec.json of a task that was just handed to its launcher.
SHELL_SPEC_WAIT_SECONDS = 5.0

class TaskDirBackend(TaskEvents, Backend):
    """The shared half of the local and Slurm backends (see module docstring).

    Subclasses call :meth:`_listen` in ``open()`` and :meth:`_stop_listening` in ``close()``, and
    give :meth:`_shell_argv` (what runs on a debug shell's PTY) and :meth:`_shell_environ`.

    :attr:`isolation` (mode ``none`` unless a subclass is given a policy) decides who debug shells run
    as: with a policy that switches users, the task's own account, in the same sandbox view and the
    same clean environment as its task (:mod:`pai_runtime.sandbox`), never the platform's user.
    """

    isolation: IsolationPolicy = IsolationPolicy()

    def __init__(self, run_root: Path | str) -> None:
        super().__init__()
        self.run_root = Path(os.path.abspath(run_root))
        self.tasks_dir = self.run_root / "tasks"
        self.socket_path = self.run_root / "events.sock"
        self._tasks = str(self.tasks_dir)
        self._kill_timers: dict[str, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._sock_ino: int | None = None
        self.archive_path = self.run_root / "archive.sqlite"
        self._archive: TaskArchive | None = None

    def task_dir(self, task_id: str) -> Path:
        """The attempt directory of ``task_id`` (spec.json, exit.json, logs, work/...)."""
        return self.tasks_dir / check_task_id(task_id)

    # -- exits ---------------------------------------------------------------------------------

    def _listen(self) -> None:
        """Bind ``events.sock`` and hear exit datagrams. Bind before anything else: an exit that
        happens from now on is heard, one that happened before is found by adopt() in exit.json."""
        assert self._loop is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        path = str(self.socket_path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if len(path.encode()) <= _SUN_PATH_MAX:
            sock.bind(path)
        else:  # too long for sun_path: bind through a directory fd
            dfd = os.open(self.run_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.bind(f"/proc/self/fd/{dfd}/{self.socket_path.name}")
            finally:
                os.close(dfd)
        os.chmod(path, 0o600)
        self._sock_ino = os.stat(path).st_ino
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._on_datagrams)

    def _stop_listening(self) -> None:
        """Close the socket and cancel pending force-kills (running tasks keep running)."""
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(OSError):  # only our own socket: a newer backend may have bound the path
                if os.stat(self.socket_path).st_ino == self._sock_ino:
                    os.unlink(self.socket_path)
        for handle in self._kill_timers.values():
            handle.cancel()
        self._kill_timers.clear()

    def _on_datagrams(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data = sock.recv(1024)
            except OSError:  # drained (EAGAIN), or closed
                return
            task_id = data.decode(errors="replace")
            if task_id in self._live:  # else a duplicate, or a task this control plane does not know
                record = self._exit_record(task_id)
                if record is not None:
                    self._emit_exit(task_id, record)

    def _exit_record(self, task_id: str) -> dict[str, Any] | None:
        return safefiles.read_json_path(f"{self._tasks}/{task_id}/{EXIT_FILE}")

    def _forget(self, task_id: str) -> None:
        super()._forget(task_id)
        timer = self._kill_timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()

    def _mark_stopped(self, task_dir: str) -> None:
        """Leave the ``stop`` marker: a runtime that has not started the command yet sees it and
        does not start it (it closes the race between a launch and a stop)."""
        os.makedirs(task_dir, 0o700, exist_ok=True)  # the task may not have been created yet
        safefiles.create_marker(task_dir, STOP_FILE)

    # -- logs ----------------------------------------------------------------------------------
    # A finished task's directory may have been folded into the archive by the retention policy
    # (pai_hub/backends/retention.py): reads fall back to it, with the same names and offsets. An
    # expired task raises TaskExpired (a KeyError), which says when and why.

    def archive(self, create: bool = False) -> TaskArchive | None:
        """The archive of compacted tasks; None when there is none and ``create`` is false."""
        if self._archive is None and (create or os.path.exists(self.archive_path)):
            self._archive = TaskArchive(self.archive_path)
        return self._archive

    def _archived(self, task_id: str) -> TaskArchive:
        """The archive holding ``task_id`` (whose directory is gone); KeyError if none does."""
        archive = self.archive()
        if archive is None:
            raise KeyError(task_id)
        return archive

    def _log_dir(self, task_id: str) -> str | None:
        """The task's log directory, or None when the task lives in the archive (KeyError: unknown)."""
        try:
            task_dir = str(self.task_dir(task_id))
        except ValueError:
            raise KeyError(task_id) from None
        if not os.path.isdir(task_dir):
            return None
        spec = safefiles.read_json_path(f"{task_dir}/{SPEC_FILE}") or {}
        log_dir = spec.get("log_dir")
        return log_dir if isinstance(log_dir, str) and log_dir else f"{task_dir}/logs"  # the runtime's default

    def log_names(self, task_id: str) -> list[str]:
        """Every log of a started task (a log with no output yet reads empty)."""
        log_dir = self._log_dir(task_id)
        if log_dir is None:
            places = self._archived(task_id).log_places(task_id)
            return list(LOG_NAMES) if "runtime.log" in places else []
        if not os.path.exists(f"{log_dir}/runtime.log"):
            return []
        return list(LOG_NAMES)

    def read_log(self, task_id: str, name: str, offset: int = 0, limit: int | None = None) -> bytes:
        if name not in LOG_NAMES:
            raise KeyError(name)
        log_dir = self._log_dir(task_id)
        if log_dir is not None:
            f = safefiles.open_path(f"{log_dir}/{name}")  # never through a link the task left
            if f is not None:
                with f:
                    if offset:
                        f.seek(offset)
                    return f.read(-1 if limit is None else limit)
            if os.path.isdir(self.task_dir(task_id)):
                return b""  # no output yet (or not a file the platform may read back)
            # compacted while we looked: read it from the archive
        return self._archived(task_id).read_log(task_id, name, offset, limit)

    # -- shells --------------------------------------------------------------------------------

    def exec_shell(self, task_id: str) -> PtyWithClients:
        """A terminal in the task's environment, rebuilt from its spec.json (the task itself may have
        ended): its working directory, its PAI_* variables and its CUDA_VISIBLE_DEVICES."""
        from terminado.management import PtyWithClients

        task_dir = str(self.task_dir(task_id))
        data = safefiles.read_json_path(f"{task_dir}/{SPEC_FILE}")
        # A task is reported running once its start is handed over; its launcher may not have written
        # spec.json yet (a busy machine). This runs off the event loop: wait a moment for it.
        deadline = time.monotonic() + SHELL_SPEC_WAIT_SECONDS
        while data is None and task_id in self._live and time.monotonic() < deadline:
            time.sleep(0.02)
            data = safefiles.read_json_path(f"{task_dir}/{SPEC_FILE}")
        if data is None:
            raise KeyError(task_id)
        spec = TaskSpec.from_json_dict(data)
        policy = self.isolation
        account = ensure_account(policy, spec.username) if policy.switches_users else None
        env = user_environ(account) if account is not None else dict(self._shell_environ())
        env.update(spec.env)
        env.update(build_env(spec))  # last: a job's env may not widen its GPU mask
        env.update(TERM="xterm-256color", PAI_DEBUG_SHELL="1")
        cwd = spec.work_dir or f"{task_dir}/work"
        if account is None:
            os.makedirs(cwd, exist_ok=True)
            argv = self._shell_argv(task_id, env, cwd)
        else:
            if not os.path.isdir(cwd):  # made by the launcher, owned by the account: never root's
                raise KeyError(task_id)
            role = spec.task_roles.get(spec.task_role)
            place = TaskPlace(task_id=task_id, task_dir=task_dir, work_dir=cwd, gpus=spec.gpus,
                              memory_mb=0, cpu=role.cpu if role else 0,
                              writable=[d for d in (spec.log_dir, spec.checkpoint_dir) if d])
            prepared = prepare(policy, account, place, env, mapped=spec.username in policy.accounts)
            argv = self._isolated_shell_argv(task_id, prepared.prefix, cwd)
            env = prepared.spawn_env
        # A new session with the PTY as its controlling terminal (job control works), made by
        # terminado's ptyprocess; its output is decoded incrementally, so a character split across
        # two reads arrives whole.
        return PtyWithClients(argv, env, cwd)

    def _shell_environ(self) -> dict[str, str]:
        """The environment a debug shell starts from, before the task's own variables."""
        raise NotImplementedError

    def _shell_argv(self, task_id: str, env: dict[str, str], cwd: str) -> list[str]:
        """What runs on a debug shell's PTY."""
        return ["/bin/bash", "-i"]

    def _isolated_shell_argv(self, task_id: str, prefix: list[str], cwd: str) -> list[str]:
        """What runs on a debug shell's PTY when it switches to the task's account: ``prefix`` (the
        sandbox and the switch, :func:`pai_runtime.sandbox.prepare`) then an interactive bash.
        A backend whose shells run elsewhere (Slurm: on the task's node) puts its own prefix first."""
        return [*prefix, "/bin/bash", "-i"]
