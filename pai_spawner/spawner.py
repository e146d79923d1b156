"""PaiSpawner: a JupyterHub Spawner whose notebook servers are PAI jobs.

A server is a one-task job (``extras.paiHub.type: notebook``) in the profile's virtual cluster,
scheduled like any other job; its command runs ``jupyterhub-singleuser`` on the task's ``jupyter``
port with the environment the hub gives (:meth:`get_env`). The job is submitted **as the user**:
the spawner, which runs inside the hub, mints a hub API token for the user with the one scope
``access:services!service=<pai>`` and calls the PAI API with it; the control plane accepts hub
tokens (``pai_hub/api/hubauth.py``), so the job is the user's own, checked against the user's VCs
and counted against that VC. No PAI admin token and no impersonation route are needed.

State (``get_state``) is the job's framework name plus where the server listens, so ``poll`` and
``stop`` work after a hub restart (set ``c.JupyterHub.cleanup_servers = False``).

Like kubespawner: all spawners of the hub share one PAI client per event loop (``pai_client.shared``),
``poll()`` reads a cache that one watcher per hub keeps fresh (``watcher.py``), ``progress()``
follows the job's event stream, and waits back off with JupyterHub's ``exponential_backoff``.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shlex
import shutil
import sys
import time
from contextlib import aclosing
from typing import Any

import yaml
from jupyterhub.spawner import Spawner
from jupyterhub.utils import exponential_backoff
from tornado import web
from traitlets import Bool, Callable, Dict, Float, Integer, List, Unicode, Union, default

from pai_client import API, AsyncPaiClient, PaiError, jobdoc
from pai_client.shared import as_user
from pai_magics import autoload_env

from . import profiles as P
from .watcher import Answer, NotebookJobs, hub_watcher

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
PORT_LABEL = "jupyter"
ROLE = "notebook"
_TOKENS: dict[str, tuple[str, float]] = {}  # hub user → (PAI-scoped hub token, expiry), shared by spawners


class PaiSpawner(Spawner):
    """Notebook servers as PAI jobs."""

    pai_url = Unicode(
        help="URL of the PAI REST API as the hub reaches it (the service's own URL). Default $PAI_URL "
        "or http://127.0.0.1:9186."
    ).tag(config=True)
    pai_service_name = Unicode(
        "pai", help="Name of the PAI service in the hub; minted tokens get access:services!service=<name>."
    ).tag(config=True)
    profile_list = Union(
        [List(Dict()), Callable()],
        default_value=[],
        help="""Profiles offered on the spawn form (kubespawner's shape): a list of dicts with
        display_name, slug, description, default, and the PAI resources vc, sku, gpu, cpu, memoryMB
        (and optionally image); or a callable(spawner) returning such a list (may be async).
        Empty: two built-in profiles in VC ``default`` (CPU only, 1 GPU). Users see only profiles
        whose VC they may use.""",
    ).tag(config=True)
    image = Unicode(
        "python:3.11", help="Default docker image of the notebook job (the local backend runs on the host)."
    ).tag(config=True)
    home_dir_template = Unicode(
        "", help="Directory the notebook server starts in and HOME, e.g. /data/homes/{username}; "
        "empty = the task's directory."
    ).tag(config=True)
    notebook_in_home = Bool(
        False, help="With no home_dir_template: start the notebook server in $HOME as the task sees it. "
        "Set when each user's tasks run as their own Unix account (PaiHub.isolation users or sandbox), "
        "where HOME is the account's home; off, the server starts in the task's directory."
    ).tag(config=True)
    job_name_prefix = Unicode("jupyter", help="Prefix of notebook job names.").tag(config=True)
    allow_root = Bool(
        None, allow_none=True, help="Pass --allow-root to the server; None = when the hub runs as root."
    ).tag(config=True)
    pai_poll_interval = Float(
        0.1, help="Seconds before the first look at a starting server's job; the waits between looks "
        "then double (with jitter, JupyterHub's exponential_backoff) up to pai_poll_max_interval."
    ).tag(config=True)
    pai_poll_max_interval = Float(
        2.0, help="The longest wait between two looks at a starting or stopping server's job."
    ).tag(config=True)
    pai_watch_interval = Float(
        10.0, help="Seconds between two listings of the hub's notebook jobs by the hub's one watcher, "
        "whose cache answers poll() (one request per user with a server, per listing)."
    ).tag(config=True)
    pai_connect_timeout = Float(
        120.0, help="How long poll() keeps retrying while the PAI service is unreachable (e.g. it is "
        "restarting) before it reports the server as still running. Not for a server restored by a "
        "starting hub: the hub polls those before it starts the PAI service, so they are reported "
        "running at once and the hub checks their URL itself."
    ).tag(config=True)
    stop_timeout = Float(60.0, help="Seconds stop() waits for the job to end.").tag(config=True)
    token_lifetime = Integer(24 * 3600, help="Lifetime (s) of the hub tokens the spawner mints.").tag(config=True)

    framework = Unicode("", help="The job (user~name) of the current server; persisted in state.")

    @default("pai_url")
    def _default_pai_url(self) -> str:
        return os.environ.get("PAI_URL", "http://127.0.0.1:9186")

    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        return 600  # a notebook may wait in its VC's queue; the user sees why on the progress page

    @default("http_timeout")
    def _default_http_timeout(self) -> int:
        return 120

    @default("server_token_scopes")
    def _default_server_token_scopes(self) -> list[str]:
        # the hub's 'server' role, plus the PAI service, so PaiClient works inside the notebook
        return ["users:activity!user", "access:servers!server", f"access:services!service={self.pai_service_name}"]

    @default("options_form")
    def _default_options_form(self) -> Any:
        return self._render_options_form

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        return self._options_from_form

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return self._apply_profile

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.profile: dict[str, Any] | None = None
        self._submitted = asyncio.Event()
        self._start_error: str | None = None
        self._restored = False
        self.task_ip = ""
        self.task_port = 0

    # -- PAI access -----------------------------------------------------------------------------
    def _token(self) -> str:
        """A hub token of this user that may call the PAI service (minted, reused until near expiry)."""
        name = self.user.name
        hit = _TOKENS.get(name)
        if hit and hit[1] - time.time() > 600:
            return hit[0]
        token = self.user.new_api_token(
            note=f"PaiSpawner: PAI API for {name}",
            expires_in=self.token_lifetime,
            scopes=[f"access:services!service={self.pai_service_name}"],
        )
        _TOKENS[name] = (token, time.time() + self.token_lifetime)
        return token

    @property
    def pai(self) -> AsyncPaiClient:
        """PAI as this spawner's user: the event loop's one shared client with the user's token."""
        return as_user(self.pai_url, self._token(), self.user.name)

    def _as_user(self) -> AsyncPaiClient:
        return self.pai

    @property
    def watcher(self) -> NotebookJobs:
        """The hub's one watcher of notebook jobs (per event loop, PAI URL and job name prefix)."""
        return hub_watcher(self.pai_url, self.job_name_prefix, self.pai_watch_interval)

    # -- profiles and the options form -------------------------------------------------------------
    async def _all_profiles(self) -> list[dict[str, Any]]:
        source = self.profile_list
        if callable(source):
            source = source(self)
            if asyncio.iscoroutine(source):
                source = await source
        return P.normalize(list(source or P.DEFAULT_PROFILES))

    async def _my_profiles(self) -> list[dict[str, Any]]:
        profiles = await self._all_profiles()
        me = await self.pai.request("GET", f"{API}/users/me")
        vcs = set(me.get("virtualCluster") or [])
        skus: dict[str, set[str] | None] = {}
        for vc in {p["vc"] for p in profiles if p.get("sku") and p["vc"] in vcs}:
            try:
                skus[vc] = set(await self.pai.sku_types(vc))
            except PaiError:
                skus[vc] = None  # the route is not there (yet): do not filter on SKUs
        return P.allowed(profiles, vcs, skus)

    async def _render_options_form(self, spawner: Spawner) -> str:
        previous = (self.orm_spawner.user_options or {}).get("profile") if self.orm_spawner else None
        return P.render_form(await self._my_profiles(), previous)

    def _options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        slug = (formdata.get("profile") or [""])[0]
        return {"profile": slug} if slug else {}

    async def _apply_profile(self, spawner: Spawner, user_options: dict[str, Any]) -> None:
        """Pick the profile before the spawn starts: a bad choice is a 400 with the reason."""
        try:
            self.profile = P.choose(await self._my_profiles(), user_options or {})
        except P.ProfileError as exc:
            raise web.HTTPError(400, str(exc)) from None
        except PaiError as exc:
            raise web.HTTPError(503, f"cannot read your virtual clusters from PAI: {exc.message}") from None

    # -- the job ----------------------------------------------------------------------------------
    def _job_name(self) -> str:
        server = re.sub(r"[^A-Za-z0-9_-]", "-", self.name or "default")[:40]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return f"{self.job_name_prefix}-{server}-{stamp}-{secrets.token_hex(2)}"

    def _command(self) -> list[str]:
        cmd = list(self.cmd or ["jupyterhub-singleuser"])
        if "/" not in cmd[0]:
            found = shutil.which(cmd[0]) or os.path.join(os.path.dirname(sys.executable), cmd[0])
            cmd[0] = found
        return cmd

    def job_protocol(self, name: str, profile: dict[str, Any]) -> str:
        """The notebook's job (protocol v2 YAML, built by the one job-document builder,
        :mod:`pai_client.jobdoc`). Tokens travel as secrets, masked in the job's config."""
        env = self.get_env()
        env["PAI_URL"] = self.pai_url
        env["PAI_TOKEN"] = env.get("JUPYTERHUB_API_TOKEN", "")
        env.update(autoload_env())  # every kernel of the notebook loads the %pai magics
        secret_values: dict[str, str] = {}
        exports = []
        for key in sorted(env):
            value = str(env[key])
            if key in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "PAI_TOKEN") or "<%" in value:
                secret_key = "env_" + re.sub(r"[^A-Za-z0-9_]", "_", key)
                secret_values[secret_key] = value
                exports.append(f"export {key}='<% $secrets.{secret_key} %>'")
            else:
                exports.append(f"export {key}={shlex.quote(value)}")
        home = self.format_string(self.home_dir_template) if self.home_dir_template else ""
        commands = list(exports)
        if home:
            commands += [f"mkdir -p {shlex.quote(home)}", f"cd {shlex.quote(home)}", f"export HOME={shlex.quote(home)}"]
        elif self.notebook_in_home:
            commands.append('cd "$HOME"')  # the user's account home, set by the backend (issue 16)
        args = [f"--ip={self.ip or '127.0.0.1'}", f"--port=$PAI_CONTAINER_HOST_{PORT_LABEL}_PORT_LIST"]
        allow_root = self.allow_root if self.allow_root is not None else os.geteuid() == 0
        if allow_root:
            args.append("--allow-root")
        args += [shlex.quote(a) for a in self.get_args()]
        commands.append("exec " + " ".join([shlex.quote(c) for c in self._command()] + args))
        doc = jobdoc.build(jobdoc.JobDescription(
            name=name,
            image=profile.get("image") or self.image,
            virtual_cluster=profile["vc"],
            retries=0,
            secrets=secret_values,
            extras={"paiHub": {"type": "notebook", "server": self.name or "", "hubUser": self.user.name,
                               "profile": profile["slug"]}},
            roles=[jobdoc.RoleDescription(name=ROLE, commands=commands, cpu=profile["cpu"],
                                          memory_mb=profile["memoryMB"], gpu=profile["gpu"],
                                          ports={PORT_LABEL: 1}, sku=profile.get("sku"))],
        ))
        return yaml.safe_dump(doc, sort_keys=False)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        self._submitted = asyncio.Event()
        self._start_error = None
        try:
            profile = self.profile or P.choose(await self._my_profiles(), self.user_options or {})
            name = self._job_name()
            await self.pai.submit(self.job_protocol(name, profile))
        except (P.ProfileError, PaiError) as exc:
            self._start_error = str(getattr(exc, "message", exc))
            self._submitted.set()
            raise RuntimeError(f"cannot start the notebook job: {self._start_error}") from None
        self.framework = f"{self.user.name}~{name}"
        self._restored = False
        self.watcher.record(self.framework, {"name": name, "username": self.user.name, "state": "WAITING"})
        self.log.info("%s: submitted PAI job %s (profile %s, VC %s)", self._log_name, self.framework,
                      profile["slug"], profile["vc"])
        self._submitted.set()
        self.task_ip, self.task_port = await exponential_backoff(
            self._listening, f"notebook job {self.framework} did not start", start_wait=self.pai_poll_interval,
            max_wait=self.pai_poll_max_interval, timeout=self.start_timeout)
        return (self.task_ip, self.task_port)

    async def _listening(self) -> tuple[str, int] | None:
        """Where the server listens once its task runs; None while it does not (yet)."""
        detail = await self.pai.job(self.framework)
        status = detail["jobStatus"]
        if status["state"] in TERMINAL:
            raise RuntimeError(f"notebook job {self.framework} ended {status['state']} before the "
                               f"server was up: {status.get('appExitDiagnostics') or 'see its logs'}")
        for role in detail["taskRoles"].values():
            for task in role["taskStatuses"]:
                port = (task.get("containerPorts") or {}).get(PORT_LABEL)
                if task["taskState"] == "RUNNING" and port:
                    return task.get("containerIp") or "127.0.0.1", int(str(port).split(",")[0])
        return None

    async def poll(self) -> int | None:
        """From the hub's watched cache of notebook jobs: no request per server and poll."""
        if not self.framework:
            return 0
        try:
            answer = await exponential_backoff(
                self._known, f"PAI did not answer about {self.framework}", start_wait=0.5, max_wait=5,
                timeout=self.pai_connect_timeout)
        except asyncio.TimeoutError:
            answer = Answer(error=PaiError(0, "Timeout", f"no answer within {self.pai_connect_timeout}s"))
        if answer.error is not None:
            self.log.warning("%s: cannot poll %s: %s; assuming it runs", self._log_name, self.framework,
                             answer.error)
            return None
        self._restored = False
        job = answer.job
        if job is None:  # not among its user's notebook jobs: look at it once, it may be gone
            try:
                job = (await self.pai.job(self.framework))["jobStatus"]
            except PaiError as exc:
                if exc.status == 404:
                    self.watcher.forget(self.framework)
                    return 0
                self.log.warning("%s: cannot poll %s: %s; assuming it runs", self._log_name, self.framework, exc)
                return None
            self.watcher.record(self.framework, job)
        return exit_status(job)

    async def _known(self) -> Answer | None:
        """The watcher's answer, or None to ask again later: PAI is unreachable (e.g. restarting).

        Right after a hub restart, JupyterHub polls every restored server before it starts its
        managed services, the PAI service among them: waiting for PAI here would hold the hub's
        start-up until its init_spawners_timeout. A restored server is then reported running; the
        hub checks the server's own URL, which is the truth for a restored server anyway."""
        answer = await self.watcher.lookup(self.framework, self._as_user)
        if answer.error is not None and answer.error.status in (0, 502, 503) and not self._restored:
            return None
        return answer

    async def stop(self, now: bool = False) -> None:
        if not self.framework:
            return
        try:
            await self.pai.stop(self.framework)
        except PaiError as exc:
            if exc.status == 404:
                return
            raise
        try:
            await exponential_backoff(self._ended, f"job {self.framework} did not end",
                                      max_wait=self.pai_poll_max_interval, timeout=self.stop_timeout)
        except asyncio.TimeoutError:
            self.log.warning("%s: job %s did not end within %ss", self._log_name, self.framework, self.stop_timeout)

    async def _ended(self) -> bool:
        try:
            status = (await self.pai.job(self.framework))["jobStatus"]
        except PaiError as exc:
            if exc.status == 404:
                return True
            raise
        self.watcher.record(self.framework, status)
        return status["state"] in TERMINAL

    async def progress(self) -> Any:
        """The job's events as progress: submitted, waiting (with the scheduler's reason), placed, started."""
        await self._submitted.wait()
        if self._start_error:
            yield {"progress": 100, "failed": True, "message": self._start_error}
            return
        try:
            async with aclosing(self.pai.event_stream(self.framework)) as events:  # closed here, not by GC
                async for sse in events:
                    if sse.event == "end":
                        return
                    item = progress_event(sse.data) if isinstance(sse.data, dict) else None
                    if item is not None:
                        yield item
        except PaiError as exc:
            self.log.info("%s: event stream of %s ended: %s", self._log_name, self.framework, exc)

    # -- state ------------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.framework:
            state.update(framework=self.framework, ip=self.task_ip, port=self.task_port)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._restored = bool(state.get("framework"))  # restored by a (re)starting hub: see poll()
        self.framework = state.get("framework", "")
        self.task_ip = state.get("ip", "")
        self.task_port = int(state.get("port") or 0)

    def clear_state(self) -> None:
        super().clear_state()
        if self.framework:
            try:
                self.watcher.forget(self.framework)
            except RuntimeError:
                pass  # no event loop runs: no watcher to tell
        self.framework = ""
        self.task_ip = ""
        self.task_port = 0


def exit_status(job: dict[str, Any]) -> int | None:
    """poll()'s answer for a job (its summary or its ``jobStatus``): None while it runs, else its exit code."""
    if job["state"] not in TERMINAL:
        return None
    code = job.get("appExitCode")
    return int(code) if isinstance(code, int) else (0 if job["state"] == "SUCCEEDED" else 1)


PROGRESS = {"JobSubmitted": 10, "Waiting": 20, "Preempted": 20, "Placed": 40, "TaskStarted": 60}


def progress_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """One PAI job event as a JupyterHub progress event (None: not worth showing)."""
    reason, message = event.get("reason") or "", event.get("message") or ""
    if reason == "Waiting":
        return {"progress": 20, "message": f"Waiting: {message}"}
    if reason == "TaskStarted":
        return {"progress": 60, "message": f"{message}; waiting for the Jupyter server to answer"}
    if reason in PROGRESS:
        return {"progress": PROGRESS[reason], "message": message}
    if reason.startswith("Job") or reason in ("TaskFailed", "TaskRetried"):
        return {"progress": 90, "message": message}
    return None
