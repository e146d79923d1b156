"""Experiments: NNI 3.0 hyperparameter searches whose trials are PAI jobs (docs/experiments.md).

One NNI manager per running experiment, started from NNI's own virtual environment (``PAI_NNI_PYTHON``,
default ``build/nni-3.0/bin/python``; created by ``scripts/nni-compat-venv.sh 3.0``) with NNI's ``local``
platform and our trial launcher (``launcher.py``) as the trial command — the launcher is the PAI training
service: each trial is a PAI job in the experiment's VC. The manager listens on 127.0.0.1 on a free port
(``bind_localhost.js``) and is reached only through this service (polling, and the authenticated UI proxy).
Records are JSON files under ``<data_dir>/experiments/<id>/``, a directory only the platform may read
(0700; the port, the token and the launcher's spec are in it).

When the isolation policy runs tasks as their users' own Unix accounts, 127.0.0.1 alone would still let
any user's task call any manager (NNI has no login): each manager's port is then closed at the kernel
to every uid but the platform's and the owner's (``pai_hub/service_firewall.py``), from before the
manager listens until it has exited. Where that cannot be done, the experiment still runs, and says so
in its ``message`` and in the log — never silently open.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from pai_runtime.accounts import AccountError, ensure_account
from pai_runtime.atomic import write_atomic
from pai_runtime.isolation import IsolationPolicy

from ..blocking import BlockingPool
from ..orchestrator.loop import Controller
from ..orchestrator.records import TERMINAL
from ..service_firewall import FirewallError, ServiceFirewall
from ..store.users import UserRepository

log = logging.getLogger("pai_hub.experiments")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LAUNCHER = HERE / "launcher.py"
DRIVER = HERE / "nni_driver.py"
BIND_JS = HERE / "bind_localhost.js"
ACTIVE = {"STARTING", "RUNNING", "STOPPING"}


def _private_file(path: Path, text: str) -> None:
    """A file only the platform may read (0600), replaced whole."""
    write_atomic(path, text, mode=0o600)


def service_id(exp_id: str) -> str:
    """The experiment's name in the firewall's rules."""
    return f"experiment-{exp_id}"


class ExperimentError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def nni_python() -> str | None:
    explicit = os.environ.get("PAI_NNI_PYTHON")
    if explicit:
        return explicit
    default = REPO / "build" / "nni-3.0" / "bin" / "python"
    return str(default) if default.exists() else None


#: What NNI raises for a configuration it refuses (a tuner's classArgs, a search space it cannot use).
_CONFIG_ERRORS = ("ValueError", "TypeError", "KeyError", "AssertionError", "ConfigError", "ValidationError")


def _driver_failure(stderr: str) -> tuple[int, str]:
    """NNI's refusal as (status, message): its last error line only — the traceback, with the platform's
    file paths, stays in the experiment's driver log for the admin. A configuration NNI refuses is the
    request's fault (400); anything else is NNI's (500)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if not line.startswith(("File ", "Traceback", "^", "~"))), "")
    kind = last.split(":", 1)[0].rsplit(".", 1)[-1]
    if kind in _CONFIG_ERRORS:
        return 400, f"NNI refused the experiment: {last[:500]}"
    return 500, f"NNI did not start: {last[:500] or 'no error message'} (details in the server's driver log)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _metric(raw: Any) -> Any:
    """NNI keeps metrics as JSON text, sometimes twice encoded."""
    for _ in range(2):
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                break
    if isinstance(raw, dict) and "default" in raw and len(raw) == 1:
        return raw["default"]
    return raw


class ExperimentService:
    """The experiments of one control plane: their records, NNI managers and trial jobs."""

    #: How long a finished experiment's NNI manager is kept for its web UI, in seconds; then it exits.
    ui_keep_seconds: float = 600.0

    def __init__(self, data_dir: Path, api_port: int, users: UserRepository, controller: Controller,
                 blocking: BlockingPool, isolation: IsolationPolicy | None = None,
                 firewall: ServiceFirewall | None = None) -> None:
        self.api_port = api_port  # the launcher submits trials to this server's API on 127.0.0.1
        self.users = users
        self.controller = controller
        self.blocking = blocking
        self.isolation = isolation or IsolationPolicy()
        self.root = Path(data_dir) / "experiments"
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        #: why managers' ports cannot be closed to other users ("" when they are, or need not be)
        self.firewall_problem = ""
        self.firewall: ServiceFirewall | None = None
        if self.isolation.switches_users:
            self.firewall = firewall or ServiceFirewall.for_data_dir(data_dir)
            try:
                self.firewall.check()
            except FirewallError as exc:
                self.firewall, self.firewall_problem = None, (
                    f"NNI managers are NOT protected from other users' tasks: {exc}")
                log.warning("experiments: %s", self.firewall_problem)
        self.records: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._orphans: list[dict[str, Any]] = []
        for path in sorted(self.root.glob("*/experiment.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if rec.get("state") in ACTIVE and not _alive(rec.get("pid")):
                rec["state"], rec["message"] = "STOPPED", "the NNI manager was gone after a restart; resume it"
                rec["uiAvailable"] = False
                self._orphans.append(rec)
            self.records[rec["id"]] = rec
        if self.firewall is not None:  # rules of managers that died with an earlier server
            running = {service_id(r["id"]) for r in self.records.values() if _alive(r.get("pid"))}
            self._firewall_call(self.firewall.sweep, running)
        atexit.register(self.shutdown)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._poll_forever())
        self._cleanup = loop.create_task(self._stop_orphans())
        self._purge = loop.create_task(self._purge_tokens())

    async def _stop_orphans(self) -> None:
        """Trial jobs of experiments whose NNI died with the previous server: stopped, and saved."""
        for rec in self._orphans:
            try:
                await self._stop_trial_jobs(rec)
            except Exception:  # keep the server up
                log.exception("experiment %s: stopping its trial jobs failed", rec["id"])
            self._save(rec)
        self._orphans.clear()

    def shutdown(self) -> None:
        """At server exit: NNI managers do not outlive PAI Hub (their trials' jobs stop with them), and
        their ports' rules go with them."""
        killed = [rec for rec in self.records.values() if rec.get("state") in ACTIVE or rec.get("uiAvailable")]
        for rec in killed:
            self._kill(rec)
        if self.firewall is not None:
            # A manager's rules stay while it still listens (it may take a moment to exit on SIGTERM);
            # whatever is left is swept when the service starts again.
            deadline = time.monotonic() + 5
            while any(_alive(r.get("pid")) for r in killed) and time.monotonic() < deadline:
                time.sleep(0.1)
            self._firewall_call(self.firewall.sweep, {service_id(r["id"]) for r in killed if _alive(r.get("pid"))})

    def _firewall_call(self, fn: Any, *args: Any) -> str:
        """Run a firewall change; its failure is logged and returned (the caller shows it), never raised."""
        try:
            fn(*args)
        except FirewallError as exc:
            log.warning("experiments: %s", exc)
            return str(exc)
        return ""

    async def _open_port(self, rec: dict[str, Any], port: int) -> str:
        """Close ``port`` to everyone but the platform and the experiment's owner, before NNI listens on
        it; returns the warning to show when that is not possible ("" when done or not needed)."""
        if not self.isolation.switches_users:
            return ""
        if self.firewall is None:
            return self.firewall_problem
        try:
            owner = await self.blocking.run(ensure_account, self.isolation, rec["username"])
        except AccountError as exc:
            return f"NNI manager NOT protected from other users' tasks: {exc}"
        problem = await self.blocking.run(self._firewall_call, self.firewall.guard, service_id(rec["id"]),
                                          port, [owner.uid])
        return f"NNI manager NOT protected from other users' tasks: {problem}" if problem else ""

    async def _close_port(self, rec: dict[str, Any]) -> None:
        """The manager has exited: its port's rules go (the port may be given to anyone next)."""
        if self.firewall is not None:
            await self.blocking.run(self._firewall_call, self.firewall.release, service_id(rec["id"]))

    def _kill(self, rec: dict[str, Any]) -> None:
        pid = rec.get("pid")
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass

    # -- the experiment's token: alive exactly while its manager may submit trials ----------------------
    async def _issue_token(self, username: str, exp_id: str) -> Path:
        """A fresh token for the trial launcher, in the experiment's token file (0600): made at create
        and at resume (a restart purged the previous one), revoked when the experiment ends."""
        await self.blocking.run(self.users.revoke_named, username, f"experiment {exp_id}")
        token = await self.blocking.run(self.users.create_token, username, name=f"experiment {exp_id}")
        token_file = self.root / exp_id / "token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token_file

    async def _revoke_token(self, rec: dict[str, Any]) -> None:
        try:
            await self.blocking.run(self.users.revoke_named, rec["username"], f"experiment {rec['id']}")
        except Exception:  # the store may be briefly unavailable: the start-up purge catches it
            log.exception("experiment %s: revoking its token failed", rec["id"])

    async def _purge_tokens(self) -> None:
        """At start-up no manager runs (they do not outlive the server): every experiment token is dead."""
        try:
            await self.blocking.run(self.users.purge_experiment_tokens, set())
        except Exception:
            log.exception("experiments: purging the tokens of ended experiments failed")

    def _save(self, rec: dict[str, Any]) -> None:
        _private_file(self.root / rec["id"] / "experiment.json", json.dumps(rec, indent=1))

    def lock(self, exp_id: str) -> asyncio.Lock:
        return self._locks.setdefault(exp_id, asyncio.Lock())

    # -- API operations -----------------------------------------------------------------------------
    def get(self, exp_id: str, username: str, admin: bool = False) -> dict[str, Any]:
        rec = self.records.get(exp_id)
        if rec is None or (rec["username"] != username and not admin):
            raise ExperimentError(404, "NoExperimentError", f"Experiment {exp_id} is not found.")
        return rec

    def list(self, username: str, admin: bool = False, everyone: bool = False) -> list[dict[str, Any]]:
        recs = [r for r in self.records.values() if r["username"] == username or (admin and everyone)]
        return sorted(recs, key=lambda r: -r["createdTime"])

    async def create(self, username: str, request: dict[str, Any]) -> dict[str, Any]:
        python = nni_python()
        if not python or not os.path.exists(python):
            raise ExperimentError(503, "NniUnavailableError",
                                  "NNI 3.0 is not installed for PAI Hub: run scripts/nni-compat-venv.sh 3.0 "
                                  "or set PAI_NNI_PYTHON")
        exp_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
        d = self.root / exp_id
        d.mkdir(mode=0o700)
        (d / "home").mkdir(mode=0o700)
        code_dir = request["codeDir"]
        if request["files"]:
            code_dir = str(d / "code")
            for name, text in request["files"].items():
                p = Path(code_dir, name)
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
        elif not code_dir:
            code_dir = str(d / "code")
            Path(code_dir).mkdir()
        token_file = await self._issue_token(username, exp_id)
        spec = {"url": f"http://127.0.0.1:{self.api_port}", "tokenFile": str(token_file), "username": username,
                "experimentId": exp_id, "virtualCluster": request["virtualCluster"], "codeDir": code_dir,
                "binDir": str(Path(python).parent), "template": request["template"]}
        if self.isolation.switches_users:
            # The trials run as the owner, who cannot enter this directory: uploaded files travel in the
            # trial job and are written in its task's own directory (launcher.py).
            spec.update(ownAccount=True, codeInTask=not request["codeDir"], files=request["files"] or {})
        _private_file(d / "launcher.json", json.dumps(spec, indent=1))
        config: dict[str, Any] = {
            "experimentName": request["name"], "searchSpace": request["searchSpace"],
            "trialCommand": f"{shlex.quote(python)} {shlex.quote(str(LAUNCHER))} {shlex.quote(str(d / 'launcher.json'))}",
            "trialCodeDirectory": code_dir, "trialConcurrency": request["trialConcurrency"],
            "maxTrialNumber": request["maxTrialNumber"], "tuner": request["tuner"],
            "trainingService": {"platform": "local"}, "experimentWorkingDirectory": str(d / "nni"),
        }
        if request["assessor"]:
            config["assessor"] = request["assessor"]
        if request["maxExperimentDuration"]:
            config["maxExperimentDuration"] = str(request["maxExperimentDuration"])
        _private_file(d / "nni-config.json", json.dumps(config, indent=1))
        now = time.time()
        rec = {"id": exp_id, "name": request["name"], "username": username, "state": "STARTING",
               "nniStatus": None, "message": "", "createdTime": now, "completedTime": None,
               "virtualCluster": request["virtualCluster"], "searchSpace": request["searchSpace"],
               "tuner": request["tuner"], "assessor": request["assessor"],
               "maxTrialNumber": request["maxTrialNumber"], "trialConcurrency": request["trialConcurrency"],
               "trial": request["template"], "codeDir": code_dir, "port": None, "pid": None,
               "uiAvailable": False, "trials": []}
        self.records[exp_id] = rec
        self._save(rec)
        await self._launch(rec, "start", str(d / "nni-config.json"))
        return rec

    async def _launch(self, rec: dict[str, Any], action: str, source: str) -> None:
        d = self.root / rec["id"]
        port = free_port()
        warning = await self._open_port(rec, port)
        env = {**os.environ, "HOME": str(d / "home"), "NODE_OPTIONS": f"--require {BIND_JS}",
               "PYTHONUNBUFFERED": "1"}
        cmd = [nni_python() or "python3", str(DRIVER), action, source, str(port), rec["id"]]
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, cwd=str(d))
        out, err = await proc.communicate()
        write_atomic(d / f"driver-{action}.log", out + b"\n" + err, mode=0o600, durable=False)
        if proc.returncode != 0:
            await self._close_port(rec)
            status, message = _driver_failure(err.decode(errors="replace"))
            rec.update(state="ERROR", message=message, completedTime=time.time())
            self._save(rec)
            await self._revoke_token(rec)
            raise ExperimentError(status, "InvalidParametersError" if status == 400 else "NniUnavailableError",
                                  message)
        pid = json.loads(out.decode().strip().splitlines()[-1])["pid"]
        rec.update(port=port, pid=pid, state="RUNNING", uiAvailable=True, message=warning, completedTime=None)
        self._save(rec)

    async def stop(self, rec: dict[str, Any]) -> None:
        async with self.lock(rec["id"]):
            was = rec["state"]
            if was in ACTIVE:
                rec["state"] = "STOPPING"
            await self._sync(rec)
            if rec.get("port") and _alive(rec.get("pid")):
                try:  # graceful: NNI stops scheduling and cancels its trials
                    async with httpx.AsyncClient(timeout=10) as c:
                        await c.delete(f"http://127.0.0.1:{rec['port']}/api/v1/nni/experiment")
                except httpx.HTTPError:
                    pass
                # Stop the trial jobs now, before NNI's exit can make a trial fail on its own (its
                # connection to NNI gone): a stopped experiment's jobs are STOPPED, not FAILED.
                await self._stop_trial_jobs(rec)
                for _ in range(100):
                    if not _alive(rec["pid"]):
                        break
                    await asyncio.sleep(0.2)
                else:
                    try:
                        os.killpg(rec["pid"], signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                    for _ in range(20):
                        if not _alive(rec["pid"]):
                            break
                        await asyncio.sleep(0.1)
            await self._stop_trial_jobs(rec)
            await self._close_port(rec)  # the manager is gone: its port may be anyone's next
            for t in rec["trials"]:
                if t["state"] in ("WAITING", "RUNNING", "UNKNOWN"):
                    t["state"] = "USER_CANCELED"
            rec["uiAvailable"] = False
            if was in ACTIVE:
                rec.update(state="STOPPED", completedTime=time.time())
            self._save(rec)
            await self._revoke_token(rec)

    async def resume(self, rec: dict[str, Any]) -> None:
        async with self.lock(rec["id"]):
            if rec["state"] in ACTIVE:
                return
            if rec["state"] == "DONE":
                raise ExperimentError(400, "InvalidParametersError", f"Experiment {rec['id']} is DONE.")
            await self._issue_token(rec["username"], rec["id"])
            await self._launch(rec, "resume", str(self.root / rec["id"] / "nni"))

    async def _stop_trial_jobs(self, rec: dict[str, Any]) -> None:
        """Every PAI job of this experiment's trials that is not final: stopped, whatever NNI did."""
        prefix = f"nni_{rec['id']}_"
        for job in self.controller.jobs(username=rec["username"]):
            if job.name.startswith(prefix) and job.state not in TERMINAL:
                await self.controller.stop(job.id)

    # -- polling NNI --------------------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        while True:
            for rec in list(self.records.values()):
                if rec["state"] in ("RUNNING",) and not self.lock(rec["id"]).locked():
                    try:
                        async with self.lock(rec["id"]):
                            await self._sync(rec)
                    except Exception:  # keep polling the others
                        log.exception("experiment %s: polling NNI failed", rec["id"])
                elif rec.get("uiAvailable") and not _alive(rec.get("pid")) and not self.lock(rec["id"]).locked():
                    await self._manager_gone(rec)
                elif (rec.get("uiAvailable") and rec["state"] not in ACTIVE and rec.get("completedTime")
                      and time.time() - rec["completedTime"] > self.ui_keep_seconds):
                    self._kill(rec)  # a finished experiment's manager exits once its UI was kept long enough
            await asyncio.sleep(1.0)

    async def _manager_gone(self, rec: dict[str, Any]) -> None:
        """A finished experiment's manager (kept for its UI) exited: the proxy stops sending requests,
        with their owner's credentials, to a port someone else may take next, and the port's rules go."""
        async with self.lock(rec["id"]):
            rec["uiAvailable"] = False
            await self._close_port(rec)
            self._save(rec)

    async def _sync(self, rec: dict[str, Any]) -> None:
        if not rec.get("port") or not _alive(rec.get("pid")):
            if rec["state"] == "RUNNING":
                await self._close_port(rec)
                rec.update(state="ERROR", message="the NNI manager exited", uiAvailable=False,
                           completedTime=time.time())
                self._save(rec)
                await self._revoke_token(rec)
            return
        base = f"http://127.0.0.1:{rec['port']}/api/v1/nni"
        try:
            async with httpx.AsyncClient(timeout=10) as c:
                status = (await c.get(base + "/check-status")).json()
                trials = (await c.get(base + "/trial-jobs")).json()
                metrics = (await c.get(base + "/metric-data")).json()
        except (httpx.HTTPError, ValueError):
            return  # starting up, or going away
        before = json.dumps([rec["nniStatus"], rec["trials"]], sort_keys=True)
        rec["nniStatus"] = status.get("status")
        errors = status.get("errors") or []
        await self._merge_trials(rec, trials, metrics)
        if rec["state"] == "RUNNING":
            if rec["nniStatus"] == "DONE":
                rec.update(state="DONE", completedTime=time.time())
            elif rec["nniStatus"] == "ERROR":
                rec.update(state="ERROR", message="; ".join(map(str, errors)) or "NNI reported an error",
                           completedTime=time.time())
        if json.dumps([rec["nniStatus"], rec["trials"]], sort_keys=True) != before or rec["state"] != "RUNNING":
            self._save(rec)
        if rec["state"] != "RUNNING":  # ended: its manager submits no more trials
            await self._revoke_token(rec)

    async def _merge_trials(self, rec: dict[str, Any], trials: list[dict[str, Any]],
                            metrics: list[dict[str, Any]]) -> None:
        inter: dict[str, list[Any]] = {}
        final: dict[str, Any] = {}
        used: dict[str, str] = {}  # trial → the parameter id its metrics were reported for
        for m in sorted(metrics, key=lambda m: (m.get("timestamp", 0), int(m.get("sequence", 0) or 0))):
            tid = m.get("trialJobId")
            if m.get("parameterId") not in (None, ""):
                used.setdefault(tid, str(m["parameterId"]))
            if m.get("type") == "FINAL":
                final[tid] = _metric(m.get("data"))
            elif m.get("type") == "PERIODICAL":
                inter.setdefault(tid, []).append(_metric(m.get("data")))
        # NNI 3.0's local platform hands parameters out first come, first served (compat.js), not by
        # trial: a trial job that starts before an older one gets the older one's parameters. What a
        # trial really ran with is the parameter set its metrics name (parameter_id); NNI's tuner uses
        # the same key, so tuning is right; only NNI's own trial → parameters table can be off.
        by_id: dict[str, Any] = {}
        for t in trials:
            for hp in t.get("hyperParameters") or []:
                doc = _metric(hp)
                if isinstance(doc, dict) and "parameter_id" in doc:
                    by_id[str(doc["parameter_id"])] = doc.get("parameters")
        out = []
        for t in sorted(trials, key=lambda t: t.get("sequenceId", 0)):
            tid = t["trialJobId"]
            params: Any = None
            for hp in t.get("hyperParameters") or []:
                doc = _metric(hp)
                params = doc.get("parameters", doc) if isinstance(doc, dict) else doc
            if used.get(tid) in by_id:
                params = by_id[used[tid]]
            base = framework = f"{rec['username']}~nni_{rec['id']}_{tid}"
            for attempt in range(2, 10):  # the last run of a trial re-run after a resume
                if not self.controller.name_taken(f"{base}_{attempt}"):
                    break
                framework = f"{base}_{attempt}"
            job = await self.controller.find_job(framework)  # an ended trial's job is in the store
            out.append({"id": tid, "sequence": t.get("sequenceId"), "state": t.get("status"),
                        "parameters": params, "intermediate": inter.get(tid, []), "final": final.get(tid),
                        "startTime": t.get("startTime"), "endTime": t.get("endTime"),
                        "job": {"name": framework, "url": f"/api/v2/jobs/{framework}",
                                "state": job.state if job is not None else None}})
        if out or not rec["trials"]:
            rec["trials"] = out


def view(rec: dict[str, Any], detail: bool = True) -> dict[str, Any]:
    """The API's experiment object (without the NNI port, pid, or local paths of other users)."""
    trials = rec["trials"]
    finals = [t["final"] for t in trials if isinstance(t.get("final"), (int, float))]
    mode = optimize_mode(rec["tuner"])
    summary = {
        "id": rec["id"], "name": rec["name"], "username": rec["username"], "state": rec["state"],
        "nniStatus": rec["nniStatus"], "message": rec["message"], "virtualCluster": rec["virtualCluster"],
        "createdTime": int(rec["createdTime"] * 1000),
        "completedTime": int(rec["completedTime"] * 1000) if rec.get("completedTime") else None,
        "maxTrialNumber": rec["maxTrialNumber"], "trialConcurrency": rec["trialConcurrency"],
        "trialCounts": _counts(trials), "optimizeMode": mode,
        "bestFinal": (min if mode == "minimize" else max)(finals) if finals else None,
        "ui": f"/nni/{rec['id']}/" if rec.get("uiAvailable") else None,
    }
    if detail:
        summary.update(searchSpace=rec["searchSpace"], tuner=rec["tuner"], assessor=rec["assessor"],
                       trial=rec["trial"], trials=trials)
    return summary


def optimize_mode(tuner: Any) -> str:
    """``maximize`` or ``minimize``: the tuner's ``classArgs.optimize_mode`` (NNI's default is maximize),
    so the best trial is the one the tuner is looking for."""
    args = tuner.get("classArgs") if isinstance(tuner, dict) else None
    mode = args.get("optimize_mode") if isinstance(args, dict) else None
    return "minimize" if mode == "minimize" else "maximize"


def _counts(trials: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        out[t["state"]] = out.get(t["state"], 0) + 1
    return out


def start_experiments(data_dir: Path, api_port: int, users: UserRepository, controller: Controller,
                      blocking: BlockingPool, isolation: IsolationPolicy | None = None) -> ExperimentService:
    """Called from ``PaiHub.start_services``: the service (``Services.experiments``), polling NNI.
    ``isolation``: the control plane's policy (None: everything runs as the platform, no firewall)."""
    service = ExperimentService(data_dir, api_port, users, controller, blocking, isolation)
    service.start()
    return service
