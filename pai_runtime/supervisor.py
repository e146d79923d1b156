"""Supervising task attempts: from ``spec.json`` to ``exit.json``.

Each task attempt has a directory::

    <task_dir>/spec.json     the TaskSpec, mode 0600 (written by the launcher for the local backend,
                             by the backend itself for Slurm)
    <task_dir>/pid.json      written right after the command started: who supervises it and which process
                             group to signal, each with its /proc start time (pid-reuse-safe liveness)
    <task_dir>/exit.json     written atomically once the task has ended: exitCode, startedAt, finishedAt,
                             signal (when killed by one), error (when the runtime itself failed)
    <task_dir>/stop          marker a backend leaves when it stops a task (closes the launch race)
    <log_dir>/stdout, stderr, all, runtime.log
    <work_dir>/              the command's working directory
    <task_dir>/runtime/      with an isolation policy that switches users: runtime.sh and the
                             callbacks' state, owned by the task's account
    <run_root>/jobs/<md5>/   with plugins and a policy that switches users: the job's own directory,
                             shared by its tasks on this machine (the ssh plugin's job key pair),
                             owned by the account, 0700 (:func:`ensure_job_dir`; a backend whose
                             supervisor runs as the account makes it first: :func:`found_job_dir`)

With an isolation policy that switches users (:mod:`pai_runtime.isolation`), the command runs as the
PAI user's own Unix account (:mod:`pai_runtime.accounts`), through the prefix :mod:`pai_runtime.sandbox`
builds, with a clean environment. The task directory stays root's (0711: the account may pass, not
list); the control files in it (spec.json, pid.json, exit.json, claim, stop) are root's, mode 0600;
the work directory, the checkpoint directory and runtime.log (which the task appends to through
``RUNTIME_LOG_PIPE``) are the account's. The spec reaches the command only through rendering: the
account never reads spec.json.

The user command runs as ``bash -c COMMAND`` in a new session (so it is its own process group and
survives whatever happens to the control plane's session), stdin from /dev/null, stdout and stderr
through pipes that the supervisor copies into ``stdout``/``stderr`` and, interleaved as read, into
``all``. When the command's main process ends, the rest of its group is killed (as a container's
processes die with its PID 1), the exit code is recorded (death by signal N is 128+N, as bash reports
it, and ``signal: N`` says so), and the backend is told by one datagram carrying the task id on its
unix socket. If nobody listens the datagram is lost, and that is fine: ``exit.json`` is the truth, and a backend that comes
back finds it.

:class:`TaskRun` is one attempt as a small state machine driven by an event loop: the launcher
(:mod:`pai_runtime.launcher`) drives many at once in one process; :func:`run_task` drives one in the
foreground (``python -m pai_runtime TASK_DIR``).

Signals in a bubblewrap sandbox: there the main process is ``bwrap``, which forks the command and
exits with 128+N when the command dies of signal N, so its own wait status no longer says whether the
command was killed or exited with 128+N. A guess (128+N means signal N, or: only when the platform
stopped the task) would be wrong for a task that exits 137 itself, or kills itself. Instead a small
waiter runs inside the sandbox in front of the switch to the account (:data:`_WAITER`, as root, so
the account can neither signal it nor write to its descriptor): it spawns the command, waits for it
and writes the command's real wait status on a pipe that only it holds (the command gets the pipe
closed), then exits as bwrap would. :meth:`TaskRun.finish` records that status: ``kill -9 $$`` in a
task is exitCode 137 with ``signal: 9``, as without a sandbox. When there is no report (the waiter
was killed with the whole group: the stop's final SIGKILL) bwrap's own status stands; that SIGKILL
kills bwrap too, so it is itself a death by signal 9.

``bwrap``, its init and the waiter ignore SIGTERM, SIGINT and SIGHUP (the dispositions are set by a
``sh`` in front of ``bwrap`` and restored by the waiter for the command): a stop's SIGTERM to the
group reaches the command and its callbacks, which get their grace (a ``bwrap`` killed by it would
end the task at once, and the supervisor would SIGKILL the rest), and the command's death of SIGTERM
is reported as ``signal: 15``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import stat
import sys
import time
from typing import Any

from pai_runtime.accounts import Account, ensure_account
from pai_runtime.atomic import write_json_atomic
from pai_runtime.env import RUNTIME_SETTINGS_ENV_NAMES, build_env, task_environ
from pai_runtime.exitcodes import EXIT_PREREQUISITE_FAILED, EXIT_RUNTIME_FAILURE, EXIT_STOPPED
from pai_runtime.isolation import IsolationPolicy
from pai_runtime.procinfo import kill_group, proc_start_time
from pai_runtime.render import render_command
from pai_runtime.sandbox import TaskPlace, prepare, remove_cgroup, user_environ
from pai_runtime.spec import TaskSpec

SPEC_FILE = "spec.json"
PID_FILE = "pid.json"
EXIT_FILE = "exit.json"
STOP_FILE = "stop"
LOG_NAMES = ("stdout", "stderr", "all", "runtime.log")

#: The waiter in front of the command inside a bubblewrap sandbox (see module docstring): argv[1] is
#: the descriptor of the status pipe, argv[2:] the command. Standard library only (``python -I -S``).
_WAITER = (
    "import os,signal,sys\n"
    "fd=int(sys.argv[1]);os.set_inheritable(fd,False)\n"
    "stop=(signal.SIGTERM,signal.SIGINT,signal.SIGHUP)\n"
    "for s in stop:signal.signal(s,signal.SIG_IGN)\n"
    "pid=os.posix_spawn(sys.argv[2],sys.argv[2:],os.environ,"
    "setsigdef=stop+(signal.SIGPIPE,signal.SIGXFSZ,signal.SIGQUIT))\n"
    "st=os.waitpid(pid,0)[1]\n"
    "try:os.write(fd,b'%d'%st)\n"
    "except OSError:pass\n"
    "c=os.waitstatus_to_exitcode(st)\n"
    "sys.exit(128-c if c<0 else c)\n"
)
#: The status pipe's descriptor number in the sandbox.
WAITER_FD = 3
#: In front of bwrap: ignore the stop signals (inherited through exec by bwrap and its init).
_IGNORE_STOP = 'trap "" TERM INT HUP; exec "$@"'

#: How long to keep copying output after the main process ended (escaped daemons may hold the pipes).
DRAIN_SECONDS = 2.0
BASH = "/bin/bash"

_SIGDEF = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP,
           signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP)
_O_LOG = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC

#: The environment every task starts from, computed once per process.
BASE_ENVIRON = {k: v for k, v in task_environ(os.environ).items() if k not in RUNTIME_SETTINGS_ENV_NAMES}
#: With plugins: the generated script, and the marker it leaves when a prerequisite with failurePolicy
#: fail failed (the task then ends with EXIT_PREREQUISITE_FAILED, PrerequisiteCallbackFailed).
RUNTIME_SCRIPT = "runtime.sh"
PREREQUISITE_FAILED_FILE = "prerequisite.failed"
#: With a switched user: the account's own directory for runtime.sh and the callbacks' state.
RUNTIME_STATE_DIR = "runtime"
#: Under the run root: one directory per job for its tasks' shared state (see :func:`ensure_job_dir`).
JOBS_DIR = "jobs"
_MY_PID = os.getpid()
_MY_START: int | None = None


def write_json(path: str, data: dict[str, Any], mode: int = 0o644) -> None:
    """Write JSON in place. For files whose readers treat a partial document as not yet written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)


def read_json(path: str) -> dict[str, Any] | None:
    """A JSON file's content, or None if it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def _log_line(fd: int, message: str, level: str = "INFO") -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    os.write(fd, f"[{stamp}] [openpai-runtime] [{level}] {message}\n".encode())


def _give_tree(path: str, account: Account) -> None:
    """Hand a directory the launcher filled (still closed to everyone else) to ``account``: children
    first, never following links, the directory itself last."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in dirs + files:
            os.chown(os.path.join(root, name), account.uid, account.gid, follow_symlinks=False)
    os.chown(path, account.uid, account.gid)


def job_dir_path(task_dir: str, framework_name: str) -> str:
    """``<run_root>/jobs/<md5 of the framework name>`` for a task attempt directory
    ``<run_root>/tasks/<task_id>``."""
    run_root = os.path.dirname(os.path.dirname(os.path.abspath(task_dir)))
    return os.path.join(run_root, JOBS_DIR, hashlib.md5(framework_name.encode()).hexdigest())


def found_job_dir(task_dir: str, framework_name: str) -> str:
    """The job directory when one was made for this process's own user (a backend whose supervisor
    already runs as the account, Slurm's, makes it with :func:`ensure_job_dir` before the task
    starts), else ``""``."""
    path = job_dir_path(task_dir, framework_name)
    try:
        st = os.lstat(path)
    except OSError:
        return ""
    return path if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() else ""


def ensure_job_dir(task_dir: str, framework_name: str, account: Account) -> str:
    """The job's own directory, ``<run_root>/jobs/<md5 of the framework name>``, for ``account``: made
    here, as root, because the account may not write ``<run_root>`` or ``tasks/`` (and in a sandbox
    sees neither), then given to it, 0700. Every task of the job on this machine gets the same one,
    bound writable into its sandbox. ``jobs/`` itself is root's, 0711 (passable, not listable).

    A directory found there that is not the account's own (a removed user's namesake, whose account
    was retired) is deleted, never followed, and made afresh."""
    path = job_dir_path(task_dir, framework_name)
    base = os.path.dirname(path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(base, 0o711)
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise RuntimeError(f"{base} is not a directory of uid {os.geteuid()}: no job directory")
    os.chmod(base, 0o711)  # whatever the umask (the platform's is 077)
    for _ in range(2):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == account.uid:
                return path
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path)  # descriptor-based: never follows a link inside
            else:
                os.unlink(path)
            continue
        os.chown(path, account.uid, account.gid)
        os.chmod(path, 0o700)
        return path
    raise RuntimeError(f"{path} was replaced while it was being made")


def with_waiter(prefix: list[str]) -> list[str] | None:
    """``prefix`` (from :func:`pai_runtime.sandbox.prepare`) with the stop signals ignored in front of
    ``bwrap`` and the status waiter right after bwrap's ``--``; None when there is no bwrap in it."""
    for i, arg in enumerate(prefix):
        if os.path.basename(arg) == "bwrap":
            end = prefix.index("--", i) + 1
            return [*prefix[:i], "/bin/sh", "-c", _IGNORE_STOP, "sh", *prefix[i:end],
                    sys.executable, "-I", "-S", "-c", _WAITER, str(WAITER_FD), *prefix[end:]]
    return None


def _read_small_json(path: str, limit: int = 65536) -> dict[str, Any] | None:
    """A JSON file the task's account may have written: read without following a link or blocking on
    a FIFO, only a regular file, at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit)
        value = json.loads(data)
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _supervisor_identity() -> tuple[int, int | None]:
    global _MY_PID, _MY_START
    pid = os.getpid()
    if pid != _MY_PID or _MY_START is None:
        _MY_PID, _MY_START = pid, proc_start_time(pid)
    return _MY_PID, _MY_START


class TaskRun:
    """One task attempt under supervision.

    Lifecycle: :meth:`launch` (spec → running process, or an immediate failure record), then the
    driver calls :meth:`on_output` when ``out_r``/``err_r`` are readable and :meth:`on_exit` when
    ``pidfd`` is; :attr:`done` tells when :meth:`finish` may be called, or :attr:`deadline` passes.
    """

    def __init__(self, task_dir: str, spec: dict[str, Any] | None = None,
                 policy: IsolationPolicy | None = None) -> None:
        self._spec = spec  # handed over by the launcher, which wrote spec.json itself
        self.policy = policy if policy is not None and policy.switches_users else None
        self.account: Account | None = None
        self._state_dir = ""  # where runtime.sh and the callbacks' state live (set at launch)
        self._cgroup: str | None = None
        self.task_dir = os.path.abspath(task_dir)
        self.task_id = os.path.basename(self.task_dir)
        self.record: dict[str, Any] = {"exitCode": EXIT_RUNTIME_FAILURE, "startedAt": None}
        self.pid = 0
        self.pidfd: int | None = None
        self.targets: dict[int, str] = {}  # pipe read end -> log file path
        self._log_dir = ""
        self._writers: dict[str, int] = {}  # log path -> fd, opened on first output
        self.ended = False  # the main process has exited
        self.deadline: float | None = None  # stop copying output after this (monotonic)
        self.finished = False
        self._runtime_fd = -1
        self._log_fds: list[int] = []
        self._plugins = False  # the command runs inside runtime.sh
        self._job_dir = ""  # the job's own directory (plugins, switched user)
        self._status_r = -1  # the sandbox waiter's status pipe (see module docstring)
        self._log_mode = 0o644  # 0600 when the task runs as another account
        self._gpus: list[int] = []
        self._exit_spec: str | None = None

    # -- launch ---------------------------------------------------------------------------------

    def launch(self, *, detach_stdio: bool = False) -> bool:
        """Start the command. False if it is already over: it failed to start or was stopped first
        (``exit.json`` is then already written)."""
        try:
            return self._launch(detach_stdio)
        except Exception as exc:  # the runtime failed, not the user command
            self.fail(f"{type(exc).__name__}: {exc}")
            return False

    def _launch(self, detach_stdio: bool) -> bool:
        task_dir = self.task_dir
        if self._spec is None:
            with open(f"{task_dir}/{SPEC_FILE}", "rb") as f:
                self._spec = json.loads(f.read())
        spec = TaskSpec.from_json_dict(self._spec)
        log_dir = spec.log_dir or f"{task_dir}/logs"
        work_dir = spec.work_dir or f"{task_dir}/work"
        os.makedirs(log_dir, exist_ok=True)
        os.makedirs(work_dir, exist_ok=True)
        if spec.checkpoint_dir:
            os.makedirs(spec.checkpoint_dir, exist_ok=True)
        self._log_dir = log_dir
        self._state_dir = task_dir
        self._gpus = spec.gpus
        self._exit_spec = spec.exit_spec
        if self.policy is not None:
            self._log_mode = 0o600
        # Log files are created now but held open only once there is output: a launcher running
        # hundreds of tasks would otherwise hold thousands of descriptors, and every posix_spawn
        # pays for each one (the child's copy of the descriptor table is closed at exec).
        self._runtime_fd = runtime_fd = os.open(f"{log_dir}/runtime.log", _O_LOG, self._log_mode)
        self._log_fds.append(runtime_fd)
        if detach_stdio:
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(runtime_fd, 2)
            os.close(null)
        # stdout, stderr and all are created on first output: file creation is the dearest step of
        # a launch on a real disk, and most short tasks print nothing.
        if self.policy is not None:
            # An account error fails the task here, with its reason in runtime.log and exit.json.
            self.account = ensure_account(self.policy, spec.username)
            self._hand_over(spec, task_dir, log_dir, work_dir, runtime_fd)
            env = user_environ(self.account)
        else:
            env = dict(BASE_ENVIRON)
        env.update(spec.env)
        if not spec.work_dir:
            spec.work_dir = work_dir
        if not spec.log_dir:
            spec.log_dir = log_dir
        env.update(build_env(spec))  # last: a job's env may not widen its GPU mask
        command = render_command(spec.command, spec.secrets)
        stop_path = f"{task_dir}/{STOP_FILE}"
        if os.path.exists(stop_path):
            _log_line(runtime_fd, "task stopped before it started")
            self.record.update(exitCode=EXIT_STOPPED, signal=int(signal.SIGTERM))
            self._write_record()
            return False
        if spec.plugins:
            # Prerequisites' callbacks around the command: one generated script (it logs the command's
            # START/END itself, between the callbacks).
            from pai_runtime.plugins import write_runtime_script

            self._plugins = True
            if self.account is not None:
                self._state_dir = self._private_dir(task_dir)
                self._job_dir = ensure_job_dir(task_dir, spec.framework_name, self.account)
            else:
                self._job_dir = found_job_dir(task_dir, spec.framework_name)
            script = write_runtime_script(spec, env, self._state_dir, work_dir, log_dir, command,
                                          self._job_dir)
            if self.account is not None:
                _give_tree(self._state_dir, self.account)
            argv = ["bash", script]
        else:
            argv = ["bash", "-c", command]
        program = BASH
        spawn_env = env
        status_w = -1
        if self.account is not None and self.policy is not None:
            role = spec.task_roles.get(spec.task_role)
            place = TaskPlace(
                task_id=self.task_id, task_dir=task_dir, work_dir=work_dir, gpus=spec.gpus,
                memory_mb=role.memory_mb if role else 0, cpu=role.cpu if role else 0,
                writable=[d for d in (log_dir, spec.checkpoint_dir, self._job_dir) if d])
            prepared = prepare(self.policy, self.account, place, env,
                               mapped=spec.username in self.policy.accounts)
            for note in prepared.notes:
                _log_line(runtime_fd, note)
            self._cgroup = prepared.cgroup
            prefix = prepared.prefix
            waited = with_waiter(prefix)  # bwrap in front: the command's status by the waiter
            if waited is not None:
                prefix = waited
                self._status_r, status_w = os.pipe()
                os.set_blocking(self._status_r, False)
            program = prefix[0]
            argv = [*prefix, BASH, *argv[1:]]
            spawn_env = prepared.spawn_env
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        if self._status_r >= 0:
            actions.append((os.POSIX_SPAWN_DUP2, status_w, WAITER_FD))
        try:
            if not self._plugins:
                _log_line(runtime_fd, "USER COMMAND START")
            started_at = time.time()
            os.chdir(work_dir)  # posix_spawn has no chdir action before Python 3.13
            self.pid = os.posix_spawn(program, argv, spawn_env, file_actions=actions,
                                      setsid=True, setsigdef=_SIGDEF, setsigmask=())
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            self._close_status()
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
            if self._status_r >= 0:
                os.close(status_w)
        self.targets = {out_r: f"{log_dir}/stdout", err_r: f"{log_dir}/stderr"}
        self.record["startedAt"] = started_at
        os.close(runtime_fd)
        self._log_fds.remove(runtime_fd)
        self._runtime_fd = -1
        sup_pid, sup_start = _supervisor_identity()
        write_json(f"{task_dir}/{PID_FILE}", {
            "supervisorPid": sup_pid, "supervisorStart": sup_start,
            "taskPid": self.pid, "pgid": self.pid,  # identified by its FC_POD_UID when orphaned
            "startedAt": started_at,
        }, 0o600 if self.account is not None else 0o644)
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self.pidfd = None  # the driver falls back to polling waitpid
        if os.path.exists(stop_path):
            kill_group(self.pid, signal.SIGTERM)
        return True

    def _hand_over(self, spec: TaskSpec, task_dir: str, log_dir: str, work_dir: str, runtime_fd: int) -> None:
        """Give the account what it writes (work dir, checkpoint dir, runtime.log) and close the rest:
        the task directory stays root's, passable (0711) but not listable."""
        account = self.account
        assert account is not None
        os.chmod(task_dir, 0o711)
        if log_dir != task_dir:
            os.chmod(log_dir, 0o711)
        for path in (work_dir, spec.checkpoint_dir):
            if path:
                os.chown(path, account.uid, account.gid)
                os.chmod(path, 0o700)
        os.fchown(runtime_fd, account.uid, account.gid)
        os.fchmod(runtime_fd, 0o600)

    def _private_dir(self, task_dir: str) -> str:
        """A fresh directory for runtime.sh and the callbacks' state; root's (0700) until the plugins
        have written it, then given to the account with :func:`_give_tree`."""
        path = f"{task_dir}/{RUNTIME_STATE_DIR}"
        os.mkdir(path, 0o700)
        return path

    # -- running --------------------------------------------------------------------------------

    def on_output(self, fd: int) -> bool:
        """Copy what is readable on ``fd`` into its logs. False once the pipe reached end of file."""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if data:
            os.write(self._writer(self.targets[fd]), data)
            os.write(self._writer(f"{self._log_dir}/all"), data)
            return True
        del self.targets[fd]
        os.close(fd)
        return False

    def _writer(self, path: str) -> int:
        fd = self._writers.get(path)
        if fd is None:
            fd = self._writers[path] = os.open(path, _O_LOG, self._log_mode)
            self._log_fds.append(fd)
        return fd

    def on_exit(self) -> None:
        """The main process has exited (it is a zombie until :meth:`finish` reaps it)."""
        if self.ended:
            return
        self.ended = True
        # While the leader is an unreaped zombie its pid, the group id, cannot be reused.
        kill_group(self.pid, signal.SIGKILL)
        self.deadline = time.monotonic() + DRAIN_SECONDS

    def poll_exit(self) -> bool:
        """For drivers without pidfds: True (and :meth:`on_exit` done) once the process has exited."""
        if self.ended:
            return True
        wpid, status = os.waitpid(self.pid, os.WNOHANG)
        if not wpid:
            return False
        self._status = status
        self.ended = True
        kill_group(self.pid, signal.SIGKILL)
        self.deadline = time.monotonic() + DRAIN_SECONDS
        return True

    @property
    def done(self) -> bool:
        """Ended and all output copied (or the drain deadline has passed)."""
        return self.ended and (not self.targets or (self.deadline is not None
                                                    and time.monotonic() >= self.deadline))

    # -- the end ----------------------------------------------------------------------------------

    def finish(self) -> dict[str, Any]:
        """Reap the process, close everything and write ``exit.json``; returns the record."""
        for fd in list(self.targets):
            os.close(fd)
        self.targets.clear()
        if self.pid:
            status = getattr(self, "_status", None)
            if status is None:
                _, status = os.waitpid(self.pid, 0)
            reported = self._waiter_status()
            code = os.waitstatus_to_exitcode(status if reported is None else reported)
            if code < 0:
                self.record["signal"] = -code
                code = 128 - code
            self.record["exitCode"] = code
            if not self._plugins:
                try:
                    fd = os.open(f"{self._log_dir}/runtime.log", _O_LOG, 0o644)
                    _log_line(fd, "USER COMMAND END")
                    os.close(fd)
                except OSError:
                    pass
            if code != 0:
                self._analyze(code)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self._close_status()
        remove_cgroup(self._cgroup)
        return self._write_record()

    def _waiter_status(self) -> int | None:
        """The command's own wait status as the sandbox waiter reported it, or None (no waiter, or
        it was killed before it could tell)."""
        if self._status_r < 0:
            return None
        try:
            data = os.read(self._status_r, 64)
            status = int(data)
            os.waitstatus_to_exitcode(status)  # a valid wait status, or ValueError
        except (OSError, ValueError):
            return None
        return status

    def _close_status(self) -> None:
        if self._status_r >= 0:
            os.close(self._status_r)
            self._status_r = -1

    def _analyze(self, code: int) -> None:
        """Failure analysis (OpenPAI's exit spec) into ``record["exitInfo"]``; never raises."""
        try:
            from pai_runtime import exitspec

            marker = f"{self._state_dir or self.task_dir}/{PREREQUISITE_FAILED_FILE}"
            if self._plugins and code == EXIT_PREREQUISITE_FAILED and os.path.exists(marker):
                info = exitspec.describe_code(code, code, self._exit_spec)
                info["prerequisite"] = (_read_small_json(marker) if self.account is not None
                                        else read_json(marker))
            else:
                info = exitspec.analyze_task(code, self._log_dir, self._gpus, self._exit_spec)
            self.record["exitInfo"] = info
        except Exception as exc:  # the analysis must never cost the exit record
            self.record["exitInfoError"] = f"{type(exc).__name__}: {exc}"

    def fail(self, error: str) -> dict[str, Any]:
        """Record a runtime failure (the command did not run)."""
        self.record["exitCode"] = EXIT_RUNTIME_FAILURE
        self.record["error"] = error
        try:
            from pai_runtime import exitspec

            self.record["exitInfo"] = exitspec.describe_code(
                EXIT_RUNTIME_FAILURE, EXIT_RUNTIME_FAILURE, self._exit_spec)
        except Exception as exc:
            self.record["exitInfoError"] = f"{type(exc).__name__}: {exc}"
        if self._runtime_fd >= 0:
            try:
                _log_line(self._runtime_fd, f"runtime failure: {error}", "ERROR")
            except OSError:
                pass
        return self._write_record()

    def _write_record(self) -> dict[str, Any]:
        self.record["finishedAt"] = time.time()
        for fd in self._log_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._log_fds.clear()
        self._writers.clear()
        self._runtime_fd = -1
        self.finished = True
        try:
            # Not fsynced: one per task would stall the launcher's loop; a record lost to a power cut
            # reads as a lost task, which is retried (pai_runtime.atomic).
            write_json_atomic(f"{self.task_dir}/{EXIT_FILE}", self.record, durable=False,
                              mode=0o600 if self.policy is not None else 0o644)
        except OSError:
            pass  # the task directory is gone: nobody is left to tell
        return self.record


class Notifier:
    """Sends ``task_id`` datagrams to a backend's socket, without ever blocking the caller.

    Linux queues only ``net.unix.max_dgram_qlen`` (often 10) datagrams per socket; what does not fit
    waits here and is retried by :meth:`flush`. With no listener (ECONNREFUSED, ENOENT) a message is
    dropped: the backend will find exit.json when it comes back.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.pending: list[bytes] = []
        self._sock: socket.socket | None = None
        self._dir = self._name = ""
        if path:
            self._dir, self._name = os.path.split(os.path.abspath(path))
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def send(self, task_id: str) -> None:
        if self._sock is not None:
            self.pending.append(task_id.encode())
            self.flush()

    def flush(self) -> None:
        """Send what can be sent now; keep the rest (queue full) for later."""
        sock = self._sock
        if sock is None or not self.pending:
            return
        # chdir + relative name: the socket path may be longer than sun_path's 108 bytes.
        try:
            os.chdir(self._dir)
        except OSError:
            self.pending.clear()
            return
        while self.pending:
            try:
                sock.sendto(self.pending[0], socket.MSG_DONTWAIT, self._name)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                pass  # nobody listening: dropped
            self.pending.pop(0)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def run_task(task_dir: str, notify_path: str | None = None, *, detach_stdio: bool = False,
             on_spawn: Any = None) -> int:
    """Run the task attempt in ``task_dir`` in the foreground, to its end; return its exit code."""
    run = TaskRun(task_dir)
    notifier = Notifier(notify_path)
    if not run.launch(detach_stdio=detach_stdio):
        notifier.send(run.task_id)
        notifier.close()
        return int(run.record["exitCode"])
    if on_spawn is not None:
        on_spawn(run.pid)
    poller = select.poll()
    for fd in run.targets:
        poller.register(fd, select.POLLIN)
    if run.pidfd is not None:
        poller.register(run.pidfd, select.POLLIN)
    while not run.done:
        if run.deadline is not None:
            timeout = max(1, int((run.deadline - time.monotonic()) * 1000))
        else:
            timeout = -1 if run.pidfd is not None else 50
        for fd, _ in poller.poll(timeout):
            if fd == run.pidfd:
                poller.unregister(fd)
                run.on_exit()
            elif not run.on_output(fd):
                poller.unregister(fd)
        if run.pidfd is None:
            run.poll_exit()
        elif not run.targets and not run.ended:
            # The command closed its stdout and stderr but lives on: wait for it to exit.
            select.select([run.pidfd], [], [])
            run.on_exit()
    record = run.finish()
    notifier.send(run.task_id)
    deadline = time.monotonic() + 10
    while notifier.pending and time.monotonic() < deadline:
        time.sleep(0.01)
        notifier.flush()
    notifier.close()
    return int(record["exitCode"])


def run_task_forwarding_signals(task_dir: str, notify_path: str | None = None) -> int:
    """:func:`run_task` for a process that *is* the task's supervisor (``python -m pai_runtime``, a
    Slurm job): SIGINT, SIGTERM and SIGHUP sent to it (Ctrl-C, scancel) go on to the task's process
    group, and the task's stdio stays this process's."""
    task_pid: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if task_pid:
            try:
                os.killpg(task_pid[0], signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    return run_task(task_dir, notify_path, detach_stdio=False, on_spawn=task_pid.append)
