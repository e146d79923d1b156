"""The one Python client of the PAI REST API, under the CLI, the magics and the server extension.

``PaiClient`` is synchronous, ``AsyncPaiClient`` asynchronous; both take the server URL and token
from arguments or from ``PAI_URL`` / ``PAI_TOKEN``. A job may be named ``name`` (the caller's own)
or ``user~name``. Every failure is a :class:`PaiError` with OpenPAI's code and a readable message.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

API = "/api/v2"
MARKET = "/marketplace/api"  # the marketplace (pai_hub/api/marketplace.py)


class PaiError(Exception):
    """An error answered by the server (or the connection): ``code`` and a one-line ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


def _settings(url: str | None, token: str | None) -> tuple[str, str | None]:
    env_url, env_token = hub_settings()  # PAI_URL / PAI_TOKEN, else the hub's environment (notebook block)
    url = (url or env_url or "http://127.0.0.1:9186").rstrip("/")
    return url, token or env_token


# -- notebook helpers (pai_magics, pai_extension; docs/notebook.md) ------------------ begin notebook helpers
def hub_settings(environ: Any = None) -> tuple[str | None, str | None]:
    """The PAI URL and token of this process: ``PAI_URL`` / ``PAI_TOKEN`` when set; else, inside a
    hub-spawned notebook, the PAI service under the hub (``<hub>/services/<PAI_SERVICE_NAME or pai>``,
    the hub's public URL when known, else the base of ``JUPYTERHUB_API_URL``) with the user's
    ``JUPYTERHUB_API_TOKEN``. ``(None, None)`` when neither is there."""
    env = os.environ if environ is None else environ
    token = env.get("PAI_TOKEN") or env.get("JUPYTERHUB_API_TOKEN") or None
    if env.get("PAI_URL"):
        return env["PAI_URL"], token
    hub = env.get("JUPYTERHUB_PUBLIC_HUB_URL") or env.get("JUPYTERHUB_API_URL")
    if not hub:
        return None, token
    base = hub.rstrip("/")
    for suffix in ("/hub/api", "/hub"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return f"{base}/services/{env.get('PAI_SERVICE_NAME') or 'pai'}", token


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event of a job's stream: ``event`` is ``"message"`` (``data`` is a job event,
    OpenPAI's fields) or ``"end"`` (``data`` is ``{"state": <final state>}``)."""

    event: str
    data: Any


class _SseParser:
    """Server-sent events, fed line by line (``text/event-stream``; comments are keep-alives)."""

    def __init__(self) -> None:
        self.event: str | None = None
        self.data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        line = line.rstrip("\r\n")
        if line == "":
            if not self.data:
                self.event = None
                return None
            text = "\n".join(self.data)
            try:
                data: Any = json.loads(text)
            except ValueError:
                data = text
            out = SseEvent(self.event or "message", data)
            self.event, self.data = None, []
            return out
        if line.startswith(":"):
            return None
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            self.event = value
        elif key == "data":
            self.data.append(value)
        return None


def protocol_text(job: Any) -> str:
    """A job as protocol YAML text: YAML text as it is, a mapping, or a ``pai_hub.protocol.JobProtocol``."""
    if isinstance(job, str):
        return job
    if hasattr(job, "model_dump"):
        job = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    import yaml

    return yaml.safe_dump(job, sort_keys=False)


def _ws_url(http_url: str) -> str:
    return "ws" + http_url[len("http"):] if http_url.startswith("http") else http_url


def _first_debug_task(reservation: dict[str, Any]) -> tuple[str, int]:
    kept = reservation["tasks"][0]
    return kept["taskRole"], int(kept["taskIndex"])
# -- end notebook helpers -----------------------------------------------------------------


def _raise_for(r: httpx.Response) -> None:
    if r.status_code < 400:
        return
    try:
        body = r.json()
        raise PaiError(r.status_code, body.get("code", "Error"), body.get("message", r.text))
    except ValueError:
        raise PaiError(r.status_code, "Error", r.text.strip() or r.reason_phrase) from None


def _decode(r: httpx.Response) -> Any:
    _raise_for(r)
    if r.headers.get("content-type", "").startswith("application/json"):
        return r.json()
    return r.text


class _Paths:
    """Routes, shared by both clients."""

    username: str | None = None

    def framework(self, name: str) -> str:
        if "~" in name:
            return name
        if self.username is None:
            raise PaiError(0, "ClientError", "cannot resolve a job name without knowing who I am")
        return f"{self.username}~{name}"

    def job_path(self, name: str) -> str:
        return f"{API}/jobs/{quote(self.framework(name), safe='~')}"


class PaiClient(_Paths):
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        self.url, self.token = _settings(url, token)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PaiClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise PaiError(0, "ConnectionError", f"cannot reach {self.url}: {exc}") from None
        return _decode(r)

    def whoami(self) -> dict[str, Any]:
        me = self.request("GET", f"{API}/tokens/check")
        self.username = me["username"]
        return me

    def framework(self, name: str) -> str:
        if "~" not in name and self.username is None:
            self.whoami()
        return super().framework(name)

    # -- jobs -----------------------------------------------------------------------------------
    def submit(self, protocol_yaml: str, dry_run: bool = False) -> dict[str, Any]:
        """Submit protocol YAML; ``dry_run``: every check, nothing stored (what the job would be)."""
        return self.request("POST", f"{API}/jobs", content=protocol_yaml.encode(),
                            headers={"Content-Type": "text/yaml"}, params={"dryRun": "true"} if dry_run else None)

    def jobs(self, **filters: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v not in (None, "")}
        return self.request("GET", f"{API}/jobs", params=params)

    def job(self, name: str) -> dict[str, Any]:
        return self.request("GET", self.job_path(name))

    def config(self, name: str) -> str:
        return self.request("GET", self.job_path(name) + "/config")

    def stop(self, name: str) -> dict[str, Any]:
        return self.request("PUT", self.job_path(name) + "/executionType", json={"value": "STOP"})

    def events(self, name: str) -> list[dict[str, Any]]:
        return self.request("GET", self.job_path(name) + "/events")["data"]

    def wait(self, name: str, timeout: float = 600, interval: float = 0.2) -> dict[str, Any]:
        """Poll until the job ends; returns its detail."""
        deadline = time.monotonic() + timeout
        while True:
            detail = self.job(name)
            if detail["jobStatus"]["state"] in ("SUCCEEDED", "FAILED", "STOPPED"):
                return detail
            if time.monotonic() > deadline:
                raise PaiError(0, "Timeout", f"job {name} still {detail['jobStatus']['state']} after {timeout}s")
            time.sleep(interval)

    def log_path(self, name: str, role: str | None = None, index: int = 0) -> str:
        detail = self.job(name)
        roles = detail["taskRoles"]
        if not roles:
            raise PaiError(404, "NoTaskLogError", f"job {name} has no tasks yet")
        if role is None:
            entry = next(iter(roles.values()))
        else:
            entry = next((e for k, e in roles.items() if role in (k, e["taskRoleStatus"]["name"])), None)
            if entry is None:
                raise PaiError(404, "NoTaskLogError", f"job {name} has no task role {role!r}; "
                               f"roles: {', '.join(e['taskRoleStatus']['name'] for e in roles.values())}")
        task = next((t for t in entry["taskStatuses"] if t["taskIndex"] == index), None)
        if task is None:
            raise PaiError(404, "NoTaskLogError", f"task role has no index {index}")
        return task["containerLog"]

    def log(self, name: str, role: str | None = None, index: int = 0, log: str = "all",
            offset: int = 0) -> tuple[str, int]:
        """One log of a task, from ``offset``; returns the text and the next offset."""
        path = self.log_path(name, role, index)
        try:
            r = self._http.get(f"{path}/{log}", params={"offset": offset})
        except httpx.HTTPError as exc:
            raise PaiError(0, "ConnectionError", f"cannot reach {self.url}: {exc}") from None
        _raise_for(r)
        return r.text, int(r.headers.get("X-Log-Offset", offset + len(r.content)))

    def follow(self, name: str, role: str | None = None, index: int = 0, log: str = "all",
               interval: float = 0.5) -> Iterator[str]:
        """Yield log text as it is written, until the job ends."""
        offset = 0
        while True:
            state = self.job(name)["jobStatus"]["state"]
            try:
                text, offset = self.log(name, role, index, log, offset)
            except PaiError as exc:
                if exc.code != "NoTaskLogError":
                    raise
                text = ""
            if text:
                yield text
            if state in ("SUCCEEDED", "FAILED", "STOPPED"):
                return
            time.sleep(interval)


    # -- debugging ------------------------------------------------------------------------------
    def debug_reservation(self, name: str) -> dict[str, Any]:
        """The tasks of a failed job kept for debugging, and until when."""
        return self.request("GET", self.job_path(name) + "/debug")

    def release(self, name: str) -> dict[str, Any]:
        """End a debug reservation early: its GPUs go back to the VC."""
        return self.request("DELETE", self.job_path(name) + "/debug")

    def terminal_url(self, name: str, role: str, index: int) -> str:
        """The websocket of a shell in a task (terminado's protocol)."""
        base = "ws" + self.url[len("http"):] if self.url.startswith("http") else self.url
        return f"{base}{self.job_path(name)}/tasks/{role}/{index}/terminal"

    # -- notebook (pai_magics, pai_extension; docs/notebook.md) --------------------- begin notebook block
    def info(self) -> dict[str, Any]:
        """``GET /api/v2/info``: ``launcherType`` tells whether tasks run on the server's machine."""
        return self.request("GET", f"{API}/info")

    def virtual_clusters(self) -> dict[str, Any]:
        return self.request("GET", f"{API}/virtual-clusters")

    def sku_types(self, vc: str | None = None) -> dict[str, Any]:
        return self.request("GET", f"{API}/cluster/sku-types", params={"vc": vc} if vc else None)

    def submit_job(self, job: Any) -> str:
        """Submit protocol YAML text, a mapping or a ``JobProtocol``; returns the job's ``user~name``."""
        text = protocol_text(job)
        self.submit(text)
        import yaml

        return self.framework(str((yaml.safe_load(text) or {}).get("name", "")))

    def snapshot(self, name: str) -> Any:
        """The job as a typed :class:`pai_client.models.JobSnapshot`."""
        from .models import JobSnapshot

        return JobSnapshot.from_detail(self.job(name), self.framework(name))

    def event_stream(self, name: str) -> Iterator[SseEvent]:
        """The job's events as they happen (server-sent events): past ones first, then new ones;
        the last is ``SseEvent("end", {"state": ...})`` once the job has ended."""
        parser = _SseParser()
        try:
            with self._http.stream("GET", self.job_path(name) + "/events",
                                   headers={"Accept": "text/event-stream"},
                                   timeout=httpx.Timeout(30.0, read=60.0)) as r:
                if r.status_code >= 400:
                    r.read()
                    _raise_for(r)
                for line in r.iter_lines():
                    if (ev := parser.feed(line)) is not None:
                        yield ev
                        if ev.event == "end":
                            return
        except httpx.HTTPError as exc:
            raise PaiError(0, "ConnectionError", f"cannot reach {self.url}: {exc}") from None

    def debug_task(self, name: str) -> tuple[str, int]:
        """The task to open a shell in: the one kept for debugging, else the job's first task."""
        try:
            return _first_debug_task(self.debug_reservation(name))
        except PaiError as exc:
            if exc.code != "NoDebugReservationError":
                raise
        roles = self.job(name)["taskRoles"]
        if not roles:
            raise PaiError(404, "NoTaskError", f"job {name} has no tasks yet")
        return next(iter(roles.values()))["taskRoleStatus"]["name"], 0
    # -- end notebook block ------------------------------------------------------------------

    # -- marketplace (pai_hub/marketplace; docs/marketplace.md) ---------------- begin marketplace block
    def market_path(self, ref: str, *rest: str) -> str:
        """``/marketplace/api/items/<ref>[/...]``; ``ref`` is an item id, name or ``name@version``."""
        return "/".join([f"{MARKET}/items/{quote(ref, safe='@')}", *(quote(r, safe='') for r in rest)])

    def market_items(self, **filters: Any) -> list[dict[str, Any]]:
        """Search: name, author, type, source, keyword, tag / category (comma lists: all must match),
        status, visibility, starred, sort (name | updated | created | stars | uses)."""
        params = {k: (",".join(v) if isinstance(v, (list, tuple)) else v) for k, v in filters.items()
                  if v not in (None, "", [], ())}
        return self.request("GET", f"{MARKET}/items", params=params)

    def market_item(self, ref: str, version: int | None = None) -> dict[str, Any]:
        return self.request("GET", self.market_path(ref), params={"version": version} if version else None)

    def market_versions(self, ref: str) -> list[dict[str, Any]]:
        return self.request("GET", self.market_path(ref, "versions"))

    def market_publish(self, content: str | dict[str, Any], type: str = "template", name: str | None = None,
                       visibility: str | None = None, groups: list[str] | None = None,
                       tags: list[str] | None = None, categories: list[str] | None = None,
                       summary: str | None = None, description: str | None = None) -> dict[str, Any]:
        """Publish ``content`` (a template job, or one data/script/dockerimage prerequisite) as item
        ``name`` — a new item (``visibility`` default private), or a new version of yours (metadata
        left as it is unless given). Returns ``{id, name, version, created, status}``."""
        body: dict[str, Any] = {"name": name, "type": type, "protocol": content}
        for key, value in (("visibility", visibility), ("groupList", groups), ("tags", tags), ("categories", categories),
                           ("summary", summary), ("description", description)):
            if value is not None:
                body[key] = value
        return self.request("POST", f"{MARKET}/items", json=body)

    def market_update(self, ref: str, **fields: Any) -> dict[str, Any]:
        """Change metadata (summary, description, visibility, groupList, tags, categories); a new
        ``protocol`` makes a new version; ``status`` (admins) reviews."""
        return self.request("PUT", self.market_path(ref), json=fields)

    def market_delete(self, ref: str) -> dict[str, Any]:
        return self.request("DELETE", self.market_path(ref))

    def market_star(self, ref: str, star: bool = True) -> dict[str, Any]:
        return self.request("PUT" if star else "DELETE", self.market_path(ref, "star"))

    def market_use(self, ref: str) -> dict[str, Any]:
        """Count one use of an item (after submitting a job made from it)."""
        return self.request("POST", self.market_path(ref, "use"))

    def market_review(self, ref: str, status: str) -> dict[str, Any]:
        """(admins) approve, reject or reset (pending) a public item."""
        return self.request("PUT", self.market_path(ref, "status"), json={"status": status})

    def market_tags(self) -> list[dict[str, Any]]:
        return self.request("GET", f"{MARKET}/tags")

    def market_categories(self) -> list[dict[str, Any]]:
        return self.request("GET", f"{MARKET}/categories")
    # -- end marketplace block ---------------------------------------------------------------


class AsyncPaiClient(_Paths):
    """The asynchronous client (used inside servers and kernels' event loops): what the server
    extension, the widgets and the spawner need — jobs, a job, stop, logs, the events stream as an
    async iterator over server-sent events, debug reservations and terminals."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        self.url, self.token = _settings(url, token)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPaiClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The raw answer (any status): what a proxy passes on. Connection errors are PaiError."""
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise PaiError(0, "ConnectionError", f"cannot reach {self.url}: {exc}") from None

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return _decode(await self.send(method, path, **kwargs))

    def open_stream(self, method: str, path: str, **kwargs: Any) -> Any:
        """``async with client.open_stream(...) as response``: an answer read as it arrives (a
        proxy passing on server-sent events); connection errors surface as ``httpx.HTTPError``."""
        kwargs.setdefault("timeout", httpx.Timeout(30.0, read=None))
        return self._http.stream(method, path, **kwargs)

    async def whoami(self) -> dict[str, Any]:
        me = await self.request("GET", f"{API}/tokens/check")
        self.username = me["username"]
        return me

    async def resolve(self, name: str) -> str:
        """``user~name`` of a job named ``name`` or ``user~name``."""
        if "~" not in name and self.username is None:
            await self.whoami()
        return self.framework(name)

    async def _job(self, name: str) -> str:
        await self.resolve(name)
        return self.job_path(name)

    # -- cluster ------------------------------------------------------------------------------------
    async def info(self) -> dict[str, Any]:
        return await self.request("GET", f"{API}/info")

    async def virtual_clusters(self) -> dict[str, Any]:
        return await self.request("GET", f"{API}/virtual-clusters")

    async def sku_types(self, vc: str | None = None) -> dict[str, Any]:
        return await self.request("GET", f"{API}/cluster/sku-types", params={"vc": vc} if vc else None)

    # -- jobs ---------------------------------------------------------------------------------------
    async def submit(self, protocol_yaml: Any) -> dict[str, Any]:
        """Submit protocol YAML text, a mapping or a ``pai_hub.protocol.JobProtocol``."""
        return await self.request("POST", f"{API}/jobs", content=protocol_text(protocol_yaml).encode(),
                                  headers={"Content-Type": "text/yaml"})

    async def jobs(self, **filters: Any) -> list[dict[str, Any]]:
        return await self.request("GET", f"{API}/jobs",
                                  params={k: v for k, v in filters.items() if v not in (None, "")})

    async def job(self, name: str) -> dict[str, Any]:
        return await self.request("GET", await self._job(name))

    async def snapshot(self, name: str) -> Any:
        """The job as a typed :class:`pai_client.models.JobSnapshot`."""
        from .models import JobSnapshot

        return JobSnapshot.from_detail(await self.job(name), await self.resolve(name))

    async def config(self, name: str) -> str:
        return await self.request("GET", await self._job(name) + "/config")

    async def stop(self, name: str) -> dict[str, Any]:
        return await self.request("PUT", await self._job(name) + "/executionType", json={"value": "STOP"})

    async def events(self, name: str) -> list[dict[str, Any]]:
        return (await self.request("GET", await self._job(name) + "/events"))["data"]

    async def event_stream(self, name: str) -> AsyncIterator[SseEvent]:
        """The job's events as they happen (server-sent events): past ones first, then new ones;
        the last is ``SseEvent("end", {"state": ...})`` once the job has ended."""
        path = await self._job(name) + "/events"
        parser = _SseParser()
        try:
            async with self._http.stream("GET", path, headers={"Accept": "text/event-stream"},
                                         timeout=httpx.Timeout(30.0, read=60.0)) as r:
                if r.status_code >= 400:
                    await r.aread()
                    _raise_for(r)
                async for line in r.aiter_lines():
                    if (ev := parser.feed(line)) is not None:
                        yield ev
                        if ev.event == "end":
                            return
        except httpx.HTTPError as exc:
            raise PaiError(0, "ConnectionError", f"cannot reach {self.url}: {exc}") from None

    async def wait(self, name: str, timeout: float = 600) -> dict[str, Any]:
        """Until the job ends (following its event stream); returns its detail."""
        async def follow() -> None:
            async for ev in self.event_stream(name):
                if ev.event == "end":
                    return

        try:
            await asyncio.wait_for(follow(), timeout)
        except asyncio.TimeoutError:
            raise PaiError(0, "Timeout", f"job {name} did not end within {timeout}s") from None
        return await self.job(name)

    async def log(self, name: str, role: str | None = None, index: int = 0, log: str = "all", offset: int = 0,
                  tail: bool = False, detail: dict[str, Any] | None = None) -> tuple[str, int]:
        """One log of a task from ``offset`` (or its last 16 KiB with ``tail``); returns the text and
        the next offset. ``detail``: the job's detail when the caller has it (saves a request)."""
        detail = detail or await self.job(name)
        roles = detail["taskRoles"]
        entry = next(iter(roles.values()), None) if role is None else next(
            (e for k, e in roles.items() if role in (k, e["taskRoleStatus"]["name"])), None)
        task = next((t for t in (entry or {}).get("taskStatuses", []) if t["taskIndex"] == index), None)
        if task is None:
            raise PaiError(404, "NoTaskLogError", f"job {name} has no task {role or ''}/{index} yet")
        params: dict[str, Any] = {"tail-mode": "true"} if tail else {"offset": offset}
        r = await self.send("GET", f"{task['containerLog']}/{log}", params=params)
        _raise_for(r)
        return r.text, int(r.headers.get("X-Log-Offset", offset + len(r.content)))

    # -- debugging ------------------------------------------------------------------------------------
    async def debug_reservation(self, name: str) -> dict[str, Any]:
        return await self.request("GET", await self._job(name) + "/debug")

    async def release(self, name: str) -> dict[str, Any]:
        return await self.request("DELETE", await self._job(name) + "/debug")

    async def debug_task(self, name: str) -> tuple[str, int]:
        """The task to open a shell in: the one kept for debugging, else the job's first task."""
        try:
            return _first_debug_task(await self.debug_reservation(name))
        except PaiError as exc:
            if exc.code != "NoDebugReservationError":
                raise
        roles = (await self.job(name))["taskRoles"]
        if not roles:
            raise PaiError(404, "NoTaskError", f"job {name} has no tasks yet")
        return next(iter(roles.values()))["taskRoleStatus"]["name"], 0

    async def terminal_url(self, name: str, role: str, index: int) -> str:
        """The websocket of a shell in a task (terminado's protocol); send :meth:`auth_headers`."""
        return f"{_ws_url(self.url)}{await self._job(name)}/tasks/{quote(role, safe='')}/{int(index)}/terminal"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


# == operations (pai_hub/monitoring): usage reports, job timelines, alerts =========================
# One block, apart from the methods above, attached to PaiClient below. docs/operations.md.
def _ops_usage(self: PaiClient, since: str | float | None = None, until: str | float | None = None, by: str = "user",
               csv: bool = False, username: str | None = None) -> Any:
    """GPU-hours by user, vc, sku or job over [since, until) (default: the last 30 days): the report as
    a dict, or CSV text."""
    params = {"since": since, "until": until, "by": by, "format": "csv" if csv else "json", "username": username}
    return self.request("GET", f"{API}/usage", params={k: v for k, v in params.items() if v not in (None, "")})


def _ops_timeline(self: PaiClient, name: str, csv: bool = False, view: str = "events") -> Any:
    """A job's state transitions and per-task phases (dict), or CSV text of its events or tasks."""
    params = {"format": "csv"} if csv else {}
    if csv:
        params["view"] = view
    return self.request("GET", self.job_path(name) + "/timeline", params=params)


def _ops_cluster_timeline(self: PaiClient, since: str | float | None = None, until: str | float | None = None,
                          view: str = "tasks", csv: bool = False) -> Any:
    """(admins) Every job's task phases or events in a window."""
    params = {"since": since, "until": until, "view": view, "format": "csv" if csv else "json"}
    return self.request("GET", f"{API}/cluster/timeline",
                        params={k: v for k, v in params.items() if v not in (None, "")})


def _ops_alerts(self: PaiClient, state: str = "firing") -> list[dict[str, Any]]:
    """Alerts (Alertmanager's shape); a non-admin gets those about their own jobs."""
    return self.request("GET", f"{API}/alerts", params={"state": state})


PaiClient.usage = _ops_usage  # type: ignore[attr-defined]
PaiClient.timeline = _ops_timeline  # type: ignore[attr-defined]
PaiClient.cluster_timeline = _ops_cluster_timeline  # type: ignore[attr-defined]
PaiClient.alerts = _ops_alerts  # type: ignore[attr-defined]
