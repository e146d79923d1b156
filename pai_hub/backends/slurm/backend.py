"""The Slurm backend: each task attempt is one Slurm batch job pinned to its node (see docs/slurm.md).

Launch path::

    start() ── spec.json + slurm.json ──▶ submit queue ──▶ sbatch --parsable -w NODE --gres=gpu:N
                                                               │ (a few sbatch at a time, asyncio subprocesses)
    Slurm node: python -S -E -c 'run the job script' TASK_DIR   (jobscript.command_line)
                  └─ slurm_job.json (started, Slurm's GPUs) ─ pai_runtime ─ exit.json ─ [hold for debugging]
    events: datagram on <run_root>/events.sock (same host) or polling exit.json (any shared filesystem),
            plus squeue for jobs that ended without exit.json (cancelled while pending, node failure).

The run root must be on a filesystem shared by the control plane and every Slurm node (the task
directories, their logs and exit records live there). Nothing is kept only in memory: a new backend on
the same run root adopts jobs from ``slurm.json``/``slurm_job.json``/``exit.json`` and ``squeue --json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from pai_hub.backends.base import GpuInfo, NodeInfo, TaskEvent, TaskLaunch, TaskRunning
from pai_hub.backends.events import lost_record
from pai_hub.backends.slurm.jobscript import CONFIG_FILE, HOLD_FILE, STARTED_FILE, command_line
from pai_hub.backends.slurm.users import RECORDS_DIR, SlurmUsers, open_owned
from pai_hub.backends.taskdir import SHELL_SPEC_WAIT_SECONDS, TaskDirBackend, check_task_id, is_task_id
from pai_runtime.accounts import Account, AccountError
from pai_runtime.atomic import write_json_atomic
from pai_runtime.env import build_env, task_environ
from pai_runtime.exitcodes import EXIT_START_FAILED, EXIT_STOPPED, EXIT_TASK_LOST
from pai_runtime.isolation import IsolationPolicy
from pai_runtime.spec import TaskSpec
from pai_runtime.supervisor import EXIT_FILE, LOG_NAMES, SPEC_FILE, STOP_FILE, ensure_job_dir, read_json

log = logging.getLogger(__name__)

_FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                 "DEADLINE", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"}
_GRES_GPU = re.compile(r"(?:^|,)gpu(?::([A-Za-z0-9_.-]+))?:(\d+)")


def _import_path() -> list[str]:
    """Where this interpreter finds pai_hub and pai_runtime, and its site-packages (yaml, pynvml for
    failure analysis): what the job script's ``python -S`` is given instead of ``site``'s work."""
    import pai_runtime

    root = os.path.dirname(os.path.dirname(os.path.abspath(pai_runtime.__file__)))
    return [root] + [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages") and p != root]


def parse_gres_gpus(gres: str) -> tuple[str | None, int]:
    """``gpu:4``, ``gpu:a100:4(S:0-1)``, ``gpu:a100:2,gpu:v100:2`` → (first type or None, total count)."""
    model, total = None, 0
    for m in _GRES_GPU.finditer(gres or ""):
        total += int(m.group(2))
        model = model or m.group(1)
    return model, total


class SlurmBackend(TaskDirBackend):
    """Runs task attempts as Slurm batch jobs (see module docstring and docs/slurm.md).

    ``run_root``: shared task directories. ``slurm_conf``: SLURM_CONF for the Slurm commands (default:
    the environment's). ``partition``: sbatch ``-p`` and the partition whose nodes are offered.
    ``python``: the interpreter on the nodes (default: this one; needs pai_hub and pai_runtime).
    ``debug_hold_minutes``: a failed task keeps its allocation this long for debugging unless
    :meth:`release` (or :meth:`stop`) ends it earlier; 0: no hold. ``request_memory``: pass the role's
    memory as ``--mem``. ``simulated_gpus``: mark the gres GPUs simulated (fake device files).
    ``isolation``: a policy that switches users runs every task as its PAI user's Unix account
    (``sbatch --uid/--gid``, clean environment, task directory 0700 owned by the account; see
    :mod:`.users`); None or mode ``none``: as the platform's user. ``import_path``: run the job script
    with ``python -S -E`` on this path (default: this interpreter's own path when ``python`` is it).
    ``task_path``: PATH of isolated tasks (default: the local backend's rule).
    """

    name = "slurm"

    def __init__(
        self,
        run_root: Path | str,
        *,
        slurm_conf: str | None = None,
        partition: str | None = None,
        python: str | None = None,
        sbatch_args: list[str] | tuple[str, ...] = (),
        job_name_prefix: str = "pai-",
        poll_interval: float = 0.25,
        squeue_interval: float = 2.0,
        submit_concurrency: int = 4,
        debug_hold_minutes: float = 0.0,
        request_memory: bool = False,
        notify: bool = True,
        gpu_model: str = "slurm-gres",
        gpu_memory_mb: int = 0,
        simulated_gpus: bool = False,
        isolation: IsolationPolicy | None = None,
        import_path: list[str] | None = None,
        task_path: str | None = None,
    ) -> None:
        super().__init__(run_root)
        self.partition = partition
        self.python = python or sys.executable
        if import_path is None and self.python == sys.executable:
            import_path = _import_path()
        self.import_path = import_path
        self._job_command = command_line(self.python, import_path)
        self.isolation = isolation if isolation is not None else IsolationPolicy()
        self.users = SlurmUsers(isolation, path=task_path) if isolation is not None and isolation.switches_users else None
        self._records = str(self.run_root / RECORDS_DIR)
        self._accounts: dict[str, Account] = {}  # live task id -> the account it runs as
        self.sbatch_args = list(sbatch_args)
        self.prefix = job_name_prefix
        self.poll_interval = poll_interval
        self.squeue_interval = squeue_interval
        self.submit_concurrency = max(1, submit_concurrency)
        self.debug_hold_seconds = max(0.0, debug_hold_minutes * 60)
        self.request_memory = request_memory
        self.notify = notify
        self.gpu_model = gpu_model
        self.gpu_memory_mb = gpu_memory_mb
        self.simulated_gpus = simulated_gpus
        env = dict(task_environ(os.environ))
        if slurm_conf:
            env["SLURM_CONF"] = str(slurm_conf)
        self._env = env
        self._nodes: list[NodeInfo] = []
        self._node_ip: dict[str, str] = {}
        self._submit: asyncio.Queue[tuple[str, TaskLaunch, dict[str, Any]] | None] = asyncio.Queue()
        self._started: set[str] = set()  # live tasks whose job was seen running (TaskRunning sent)
        self._job_ids: dict[str, str] = {}  # task id -> Slurm job id
        self._missing: dict[str, int] = {}  # task id -> squeue rounds without its job and exit.json
        self._workers: list[asyncio.Task[None]] = []
        self._last_squeue = 0.0
        self._closing = False

    # -- Slurm commands --------------------------------------------------------------------------

    async def _run(self, *argv: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._env)
        out, err = await proc.communicate()
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])}: exit {proc.returncode}: {err.decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    async def refresh_nodes(self) -> list[NodeInfo]:
        """Read the nodes from ``sinfo --json`` (GPUs from gres ``gpu[:type]:N``)."""
        argv = ["sinfo", "--json"] + (["-p", self.partition] if self.partition else [])
        data = json.loads(await self._run(*argv))
        nodes = []
        for n in data.get("nodes", []):
            if self.partition and self.partition not in (n.get("partitions") or [self.partition]):
                continue
            model, count = parse_gres_gpus(n.get("gres", ""))
            name = n["name"]
            gpus = tuple(GpuInfo(i, f"SLURM-{name}-GPU-{i}", model or self.gpu_model, self.gpu_memory_mb,
                                 simulated=self.simulated_gpus) for i in range(count))
            nodes.append(NodeInfo(name=name, ip=n.get("address") or name, cpu=int(n.get("cpus") or 0),
                                  memory_mb=int(n.get("real_memory") or 0), gpus=gpus))
        self._nodes = nodes
        self._node_ip = {n.name: n.ip for n in nodes}
        return nodes

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = False
        if self.users is not None:
            self._open_isolated()
        else:
            os.makedirs(self.tasks_dir, mode=0o700, exist_ok=True)
        if self.notify:
            self._listen()
            if self.users is not None:  # jobs run as their users: they may send (never read) exit datagrams
                os.chmod(self.socket_path, 0o622)
        await self.refresh_nodes()
        self._workers = [asyncio.create_task(self._submitter(), name=f"slurm-submit-{i}")
                         for i in range(self.submit_concurrency)]
        self._workers.append(asyncio.create_task(self._poller(), name="slurm-poll"))

    def _open_isolated(self) -> None:
        """Tasks run as their users: they must reach their own task directory (``tasks/`` is 0711: no
        listing) and the interpreter; the control plane's job records stay root's (0700)."""
        assert self.users is not None
        self.users.check_reachable(str(self.tasks_dir), "the run root")
        self.users.check_reachable(self.python, "the job script's interpreter")
        for entry in self.import_path or ():
            self.users.check_reachable(f"{entry}/", "the job script's import path entry")
        os.makedirs(self.tasks_dir, mode=0o711, exist_ok=True)
        os.chmod(self.tasks_dir, 0o711)
        os.makedirs(self._records, mode=0o700, exist_ok=True)
        os.chmod(self._records, 0o700)
        if self.users.policy.mode == "sandbox":
            log.warning("Slurm backend: isolation mode 'sandbox' runs tasks as their users' accounts; the "
                        "bubblewrap sandbox is not applied inside Slurm jobs (use Slurm's cgroup and task plugins)")

    async def close(self) -> None:
        self._closing = True
        # Launches accepted but not yet submitted are submitted first: start() promised them.
        for _ in range(self.submit_concurrency):
            self._submit.put_nowait(None)
        submitters = self._workers[:-1]
        if submitters:
            await asyncio.gather(*submitters, return_exceptions=True)
        for w in self._workers[-1:]:
            w.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await w
        self._workers = []
        self._stop_listening()
        self._end_events()

    # -- description ---------------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        return list(self._nodes)

    def job_id(self, task_id: str) -> str | None:
        """The Slurm job id of a task attempt, once submitted."""
        if task_id in self._job_ids:
            return self._job_ids[task_id]
        return self._record(task_id).get("jobId")

    def _record_path(self, task_id: str) -> str:
        """Where the control plane keeps a job's Slurm job id: ``slurm.json`` in the task directory, or,
        when tasks run as their users (who own that directory), a root-only file beside it."""
        if self.users is not None:
            return f"{self._records}/{task_id}.json"
        return f"{self._tasks}/{task_id}/{CONFIG_FILE}"

    def _record(self, task_id: str) -> dict[str, Any]:
        return read_json(self._record_path(task_id)) or {}

    def account_of(self, task_id: str) -> Account | None:
        """The account a task attempt runs as (None: the platform's user), from the root-only record."""
        if self.users is None:
            return None
        account = self._accounts.get(task_id)
        if account is None:
            raw = self._record(task_id).get("account")
            if raw:
                account = Account(raw["name"], int(raw["uid"]), int(raw["gid"]), raw["home"])
        return account

    # -- tasks ---------------------------------------------------------------------------------

    async def start(self, launch: TaskLaunch) -> None:
        if self._loop is None or self._closing:
            raise RuntimeError("SlurmBackend.start() before open() or after close()")
        task_id = check_task_id(launch.task_id)
        task_dir = f"{self._tasks}/{task_id}"
        if launch.node not in self._node_ip and self._nodes:
            raise RuntimeError(f"no Slurm node {launch.node!r}")
        spec = dict(launch.spec)
        spec["gpus"] = list(launch.gpus)  # replaced in the job by the GPUs Slurm allocates
        spec.setdefault("work_dir", "")
        spec.setdefault("log_dir", "")
        if not spec["work_dir"]:
            spec["work_dir"] = f"{task_dir}/work"
        if not spec["log_dir"]:
            spec["log_dir"] = task_dir
        peers = spec.get("peers") or ()
        if any(p.get("ip") is None for p in peers):
            spec["peers"] = [p if p.get("ip") is not None else {**p, "ip": self._peer_ip(p, spec, launch)}
                             for p in peers]
        config = {"node": launch.node, "gpus": len(launch.gpus), "holdSeconds": self.debug_hold_seconds,
                  "jobName": f"{self.prefix}{task_id}"}
        # spec.json and slurm.json are written by the submitters, a few at a time, in threads: start()
        # only queues (writing them here, one awaited thread hop and two fsyncs per call, made the
        # orchestrator's serial start() calls the bottleneck at ~50 ms each on a loaded machine).
        self._live.add(task_id)
        self._submit.put_nowait((task_id, launch, {**config, "spec": spec}))

    def _peer_ip(self, peer: dict[str, Any], spec: dict[str, Any], launch: TaskLaunch) -> str | None:
        node = peer.get("node")
        if node is None and peer.get("role") == spec.get("task_role") and peer.get("index") == spec.get("task_index"):
            node = launch.node
        return self._node_ip.get(node) if node else None

    def _write_task(self, task_dir: str, spec: dict[str, Any], config: dict[str, Any]) -> Account | None:
        """Create the task directory with what the job reads; with isolation, hand it to the account
        (resolved, or created, here: off the loop) and return that account."""
        account = self.users.account(str(spec.get("username", ""))) if self.users is not None else None
        try:
            os.makedirs(task_dir, 0o700)
        except FileExistsError:
            if os.path.exists(f"{task_dir}/{CONFIG_FILE}") or os.path.exists(f"{task_dir}/{EXIT_FILE}"):
                raise ValueError(f"task {os.path.basename(task_dir)} was already started") from None
        write_json_atomic(f"{task_dir}/{SPEC_FILE}", spec, mode=0o600)
        write_json_atomic(f"{task_dir}/{CONFIG_FILE}", config, mode=0o600)
        if account is not None:
            assert self.users is not None
            self.users.hand_over(task_dir, account, (SPEC_FILE, CONFIG_FILE))
            if spec.get("plugins"):  # the job's shared directory (ssh keys): made by root, the account's
                ensure_job_dir(task_dir, str(spec.get("framework_name", "")), account)
        return account

    def _sbatch_argv(self, task_id: str, launch: TaskLaunch, config: dict[str, Any],
                     account: Account | None = None) -> list[str]:
        task_dir = f"{self._tasks}/{task_id}"
        role = (launch.spec.get("task_roles") or {}).get(launch.spec.get("task_role"), {})
        argv = ["sbatch", "--parsable", f"--job-name={config['jobName']}", f"--nodelist={launch.node}",
                "--nodes=1", "--ntasks=1", f"--cpus-per-task={max(1, int(role.get('cpu') or 1))}",
                f"--chdir={task_dir}", f"--output={task_dir}/slurm.out", "--no-requeue"]
        if account is not None and self.users is not None:
            argv += self.users.sbatch_args(account)
        else:
            argv.append("--export=ALL")
        if launch.gpus:
            argv.append(f"--gres=gpu:{len(launch.gpus)}")
        if self.request_memory and role.get("memory_mb"):
            argv.append(f"--mem={int(role['memory_mb'])}M")
        if self.partition:
            argv.append(f"--partition={self.partition}")
        argv += self.sbatch_args
        notify = f" --notify {shlex.quote(str(self.socket_path))}" if self._sock is not None else ""
        argv.append(f"--wrap={self._job_command} {shlex.quote(task_dir)}{notify}")
        return argv

    async def _submitter(self) -> None:
        while True:
            item = await self._submit.get()
            if item is None:
                return
            task_id, launch, config = item
            task_dir = f"{self._tasks}/{task_id}"
            spec = config.pop("spec")
            try:
                account = await asyncio.to_thread(self._write_task, task_dir, spec, config)
            except AccountError as exc:  # no account to run as: the task cannot start (and says why)
                log.warning("start of %s refused: %s", task_id, exc)
                self._emit_exit(task_id, {"exitCode": EXIT_START_FAILED, "finishedAt": time.time(),
                                          "diagnostics": f"no Unix account to run as: {exc}"})
                continue
            except (ValueError, OSError) as exc:  # started before: whatever ran is gone without a record
                log.warning("start of %s refused: %s", task_id, exc)
                self._emit_exit(task_id, {"exitCode": EXIT_TASK_LOST, "finishedAt": time.time(),
                                          "diagnostics": str(exc)})
                continue
            if account is not None:
                self._accounts[task_id] = account
            if os.path.exists(f"{task_dir}/{STOP_FILE}"):
                self._emit_exit(task_id, {"exitCode": EXIT_STOPPED, "finishedAt": time.time(),
                                          "reason": "stopped before it was submitted to Slurm"})
                continue
            try:
                out = await self._run(*self._sbatch_argv(task_id, launch, config, account))
            except Exception as exc:
                log.warning("sbatch of %s failed: %s", task_id, exc)
                self._emit_exit(task_id, {"exitCode": EXIT_START_FAILED, "finishedAt": time.time(),
                                          "diagnostics": f"sbatch failed: {exc}"})
                continue
            job_id = out.strip().split(";")[0]
            self._job_ids[task_id] = job_id
            config = {**config, "jobId": job_id, "submittedAt": time.time()}
            if account is not None:
                config["account"] = {"name": account.name, "uid": account.uid, "gid": account.gid,
                                     "home": account.home}
            await asyncio.to_thread(write_json_atomic, self._record_path(task_id), config, mode=0o600)
            if os.path.exists(f"{task_dir}/{STOP_FILE}") and task_id in self._live:
                await self._scancel(job_id, None)  # stopped while sbatch ran

    async def _scancel(self, job_id: str, sig: str | None) -> None:
        argv = ["scancel"] + ([f"--signal={sig}", "--full"] if sig else []) + [job_id]
        try:
            await self._run(*argv)
        except Exception as exc:
            log.debug("%s: %s", argv, exc)

    async def stop(self, task_id: str, grace: float = 10.0) -> None:
        try:
            task_dir = str(self.task_dir(task_id))
        except ValueError:
            return
        if task_id not in self._live:
            await self.release(task_id)  # an ended task kept for debugging: end its hold
            return
        self._mark_stopped(task_dir)
        job_id = self.job_id(task_id)
        if job_id is None:
            return  # not submitted yet: the submitter sees the marker
        if task_id in self._started or os.path.exists(f"{task_dir}/{STARTED_FILE}"):
            await self._scancel(job_id, "TERM")  # the runtime forwards it to the task's group
            if task_id not in self._kill_timers and self._loop is not None:
                self._kill_timers[task_id] = self._loop.call_later(
                    max(0.0, grace), lambda: asyncio.ensure_future(self._force(task_id, job_id)))
        else:
            await self._scancel(job_id, None)  # pending: nothing runs yet

    async def _force(self, task_id: str, job_id: str) -> None:
        self._kill_timers.pop(task_id, None)
        if task_id in self._live:
            await self._scancel(job_id, None)  # SIGTERM, KillWait, SIGKILL by Slurm

    async def release(self, task_id: str) -> bool:
        """End the debug hold of an ended task: its Slurm job (and GPUs) are freed. False if none."""
        try:
            task_dir = str(self.task_dir(task_id))
        except ValueError:
            return False
        marker = f"{task_dir}/{HOLD_FILE}"
        if not os.path.exists(marker):
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(marker)
        job_id = self.job_id(task_id)
        if job_id:
            await self._scancel(job_id, None)
        return True

    # -- events --------------------------------------------------------------------------------

    def _forget(self, task_id: str) -> None:
        super()._forget(task_id)
        self._accounts.pop(task_id, None)
        self._started.discard(task_id)
        self._missing.pop(task_id, None)
        self._job_ids.pop(task_id, None)

    def _scan(self, task_ids: list[str]) -> list[tuple[str, str, dict[str, Any] | None]]:
        """(task id, 'exit'|'started', record) for live tasks whose files changed (runs in a thread)."""
        found = []
        for tid in task_ids:
            d = f"{self._tasks}/{tid}"
            record = self._exit_record(tid)
            if record is not None:
                found.append((tid, "exit", record))
            elif tid not in self._started and os.path.exists(f"{d}/{STARTED_FILE}"):
                found.append((tid, "started", self._task_json(tid, STARTED_FILE)))
        return found

    async def _poller(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self._poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("slurm backend: poll failed")

    async def _poll_once(self) -> None:
        if self._live:
            for tid, what, record in await asyncio.to_thread(self._scan, list(self._live)):
                if what == "exit":
                    self._emit_exit(tid, record or {})
                elif tid in self._live and tid not in self._started:
                    self._started.add(tid)
                    self._queue.put_nowait(TaskRunning(tid, (record or {}).get("startedAt")))
        now = time.monotonic()
        if now - self._last_squeue >= self.squeue_interval and self._live:
            self._last_squeue = now
            await self._check_queue()

    async def _squeue(self) -> dict[str, str]:
        """Slurm job id -> state of every job Slurm still knows."""
        out = await self._run("squeue", "--noheader", "--states=all", "--format=%i|%T")
        states = {}
        for line in out.splitlines():
            job, _, state = line.strip().partition("|")
            states[job] = state
        return states

    async def _check_queue(self) -> None:
        """Jobs that ended, or vanished, without exit.json (cancelled pending, killed, node lost)."""
        states = await self._squeue()
        for tid in list(self._live):
            job_id = self._job_ids.get(tid)
            if job_id is None:
                continue  # still being submitted
            state = states.get(job_id)
            if state is not None and state not in _FINAL_STATES:
                self._missing.pop(tid, None)
                continue
            # Twice in a row, so an exit.json written just before the job ended is seen first.
            self._missing[tid] = self._missing.get(tid, 0) + 1
            if self._missing[tid] < 2:
                continue
            record = self._exit_record(tid)
            if record is None:
                record = self._no_record(tid, job_id, state)
            self._emit_exit(tid, record)

    def _no_record(self, tid: str, job_id: str, state: str | None) -> dict[str, Any]:
        if os.path.exists(f"{self._tasks}/{tid}/{STOP_FILE}"):
            return {"exitCode": EXIT_STOPPED, "finishedAt": time.time(), "slurmJobId": job_id,
                    "slurmState": state, "reason": "stopped before the runtime recorded an exit"}
        return lost_record(f"Slurm job {job_id} ended ({state or 'gone from squeue'}) without an exit record",
                           slurmJobId=job_id, slurmState=state)

    # -- adoption ------------------------------------------------------------------------------

    async def adopt(self, known_task_ids: list[str]) -> list[TaskEvent]:
        jobs: dict[str, dict[str, Any]] = {}
        by_name: dict[str, dict[str, Any]] = {}
        if known_task_ids:
            data = json.loads(await self._run("squeue", "--json"))
            for j in data.get("jobs", []):
                jobs[str(j["job_id"])] = j
                by_name[j.get("name", "")] = j
        events: list[TaskEvent] = []
        for tid in known_task_ids:
            if not is_task_id(tid):
                events.append(self._ended(tid, lost_record("invalid task id")))
                continue
            record = self._exit_record(tid)
            if record is not None:
                events.append(self._ended(tid, record))
                continue
            cfg = self._record(tid)
            job = jobs.get(str(cfg.get("jobId"))) if cfg.get("jobId") else by_name.get(f"{self.prefix}{tid}")
            state = job.get("job_state") if job else None
            if job is not None and state not in _FINAL_STATES:
                self._live.add(tid)
                self._job_ids[tid] = str(job["job_id"])
                started = self._task_json(tid, STARTED_FILE)
                if started is not None:
                    self._started.add(tid)
                events.append(TaskRunning(tid, (started or {}).get("startedAt")))
                continue
            record = self._exit_record(tid)  # it may have ended between the two looks
            if record is None:
                record = self._no_record(tid, str(cfg.get("jobId")), state)
            events.append(self._ended(tid, record))
        return events

    # -- files the task's user owns ------------------------------------------------------------
    # With isolation the task directory belongs to the user, who may replace anything in it with a
    # symlink: what root reads back is opened without following links and only if the account owns it.

    def _task_json(self, task_id: str, name: str) -> dict[str, Any] | None:
        path = f"{self._tasks}/{task_id}/{name}"
        account = self.account_of(task_id) if self.users is not None else None
        if self.users is None or account is None:
            return read_json(path)
        try:
            f = open_owned(path, account.uid)
        except OSError:
            return None
        if f is None:
            return None
        with f:
            try:
                data = json.loads(f.read())
            except ValueError:
                return None
        return data if isinstance(data, dict) else None

    def _exit_record(self, task_id: str) -> dict[str, Any] | None:
        return self._task_json(task_id, EXIT_FILE)

    def _mark_stopped(self, task_dir: str) -> None:
        if self.users is None:
            return super()._mark_stopped(task_dir)
        os.makedirs(task_dir, 0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # never through a link the user left there
            os.close(os.open(f"{task_dir}/{STOP_FILE}",
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))

    def read_log(self, task_id: str, name: str, offset: int = 0, limit: int | None = None) -> bytes:
        account = self.account_of(task_id) if self.users is not None else None
        if account is None:
            return super().read_log(task_id, name, offset, limit)
        if name not in LOG_NAMES:
            raise KeyError(name)
        log_dir = self._log_dir(task_id)
        if log_dir is None:
            return self._archived(task_id).read_log(task_id, name, offset, limit)
        f = open_owned(f"{log_dir}/{name}", account.uid)
        if f is None:
            return b""  # no output yet, or not a file of the task's user
        with f:
            if offset:
                f.seek(offset)
            return f.read(-1 if limit is None else limit)

    # -- shells --------------------------------------------------------------------------------

    def exec_shell(self, task_id: str) -> Any:
        """As :meth:`TaskDirBackend.exec_shell`; with isolation the shell is the task account's: the
        tools in front (``setpriv``, ``srun``) start as root from a fixed environment, and the task's
        environment (its ``env``, which the user controls, LD_PRELOAD included) applies only after
        the switch (``env -i``); spec.json is read only if the account owns it."""
        if self.users is None:
            return super().exec_shell(task_id)
        from terminado.management import PtyWithClients

        task_dir = str(self.task_dir(task_id))
        # A task is reported running once its start is queued; its submitter may not have written
        # spec.json (nor recorded the account) yet. This runs off the event loop: wait a moment.
        deadline = time.monotonic() + SHELL_SPEC_WAIT_SECONDS
        while True:
            account = self.account_of(task_id)
            data = self._task_json(task_id, SPEC_FILE) if account is not None else None
            if data is not None or task_id not in self._live or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if account is None or data is None:
            raise KeyError(task_id)
        spec = TaskSpec.from_json_dict(data)
        user_env = self.users.environ(account)
        user_env.update(spec.env)
        user_env.update(build_env(spec))  # last: a job's env may not widen its GPU mask
        user_env.update(TERM="xterm-256color", PAI_DEBUG_SHELL="1")
        slurm_conf = self._env.get("SLURM_CONF")
        if slurm_conf:
            user_env["SLURM_CONF"] = slurm_conf  # what srun reads
        switch = self.users.as_user(account, user_env)
        work = spec.work_dir or f"{task_dir}/work"
        job_id = self.job_id(task_id)
        if job_id is not None and (task_id in self._live or os.path.exists(f"{task_dir}/{HOLD_FILE}")):
            argv = [*switch, "srun", f"--jobid={job_id}",
                    "--overlap", "--pty", f"--chdir={work}", "--ntasks=1", "--export=ALL", "/bin/bash", "-i"]
        else:
            argv = [*switch, "/bin/bash", "-c", 'cd -- "$1" 2>/dev/null; exec /bin/bash -i', "bash", work]
        return PtyWithClients(argv, self._shell_environ(), task_dir)


    def _shell_environ(self) -> dict[str, str]:
        if self.users is None:
            return self._env
        # Tasks run as their users: the shell gets what Slurm's commands need, not the platform's env.
        env = self.users.tools_environ()
        if "SLURM_CONF" in self._env:
            env["SLURM_CONF"] = self._env["SLURM_CONF"]
        return env

    def _shell_argv(self, task_id: str, env: dict[str, str], cwd: str) -> list[str]:
        """While the task's Slurm job lives (running, or held for debugging) the shell is a step in
        its allocation on the task's node (``srun --jobid J --overlap --pty``); after it, a shell on
        this host in the shared task directory. (With isolation :meth:`exec_shell` builds its own.)"""
        job_id = self.job_id(task_id)
        if job_id is not None and (task_id in self._live or os.path.exists(f"{self._tasks}/{task_id}/{HOLD_FILE}")):
            return ["srun", f"--jobid={job_id}", "--overlap", "--pty", f"--chdir={cwd}", "--ntasks=1",
                    "--export=ALL", "env", f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}", "/bin/bash", "-i"]
        return super()._shell_argv(task_id, env, cwd)
