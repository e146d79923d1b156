"""Every method of the PAI REST API, defined once, whatever the transport.

A method is a *plan*: a generator that yields what it needs done and returns the method's result.
It yields a :class:`Request` (and is sent the decoded answer, or has the :class:`PaiError` thrown
into it), a :class:`Sleep`, or, in a streaming method, an :class:`Emit` of one value for the
caller. :class:`~pai_client.transport.PaiClient` runs plans over ``httpx.Client``,
:class:`~pai_client.transport.AsyncPaiClient` over ``httpx.AsyncClient``; neither defines an API
method of its own, so the two cannot drift (this is the "sans-I/O" shape of h11 and h2). A plan
that needs another method's answer — a job name to qualify, a job's detail to find its log —
runs that method's plan with ``yield from``.

Paths are built here and only here: a job's ``user~name`` is quoted by :meth:`Api.job_path`, a
marketplace reference by :meth:`Api.market_path`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from .errors import PaiError, raise_for
from .models import END_STATES, JobPage, JobSnapshot

API = "/api/v2"
MARKET = "/marketplace/api"  # the marketplace (pai_hub/api/marketplace.py)
LOG_NAMES = ("all", "stdout", "stderr", "runtime.log")

T = TypeVar("T")


def decode_body(response: Any) -> Any:
    """A JSON answer as data, any other as text; a refusal raises :class:`PaiError`."""
    raise_for(response)
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


@dataclass(frozen=True)
class Request:
    """One HTTP request of a plan, and how its answer becomes the value sent back into the plan."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    decode: Callable[[Any], Any] = decode_body


@dataclass(frozen=True)
class Sleep:
    """Wait before the next step (``time.sleep`` or ``asyncio.sleep``, as the transport is)."""

    seconds: float


@dataclass(frozen=True)
class Emit:
    """A value a streaming method hands to its caller (one iteration of the stream)."""

    value: Any


Plan = Generator[Request | Sleep | Emit, Any, T]


class Operation(Generic[T]):
    """A plan as a method of every transport: reading it from a client gives a callable that runs
    the plan there (a function, a coroutine function, an iterator or an async iterator)."""

    def __init__(self, plan: Callable[..., Plan[T]], streams: bool = False) -> None:
        self.plan, self.streams = plan, streams
        functools.update_wrapper(self, plan)  # type: ignore[arg-type]

    def __get__(self, client: Any, owner: type | None = None) -> Any:
        if client is None:
            return self
        return client._bind(self)


def call(plan: Callable[..., Plan[T]]) -> Operation[T]:
    """A method that returns one result."""
    return Operation(plan)


def stream(plan: Callable[..., Plan[None]]) -> Operation[None]:
    """A method that yields values as they come (its plan yields :class:`Emit`)."""
    return Operation(plan, streams=True)


def _present(params: Mapping[str, Any]) -> dict[str, Any]:
    """Query parameters that were given (lists joined with commas, as OpenPAI takes them)."""
    return {k: (",".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for k, v in params.items()
            if v not in (None, "", [], ())}


def _segment(value: Any) -> str:
    return quote(str(value), safe="")


def protocol_text(job: Any) -> str:
    """A job as protocol YAML text: YAML text as it is, a mapping, or a ``JobProtocol`` model."""
    if isinstance(job, str):
        return job
    if hasattr(job, "model_dump"):
        job = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    import yaml

    return yaml.safe_dump(job, sort_keys=False)


def _log_answer(offset: int) -> Callable[[Any], tuple[str, int]]:
    def decode(response: Any) -> tuple[str, int]:
        raise_for(response)
        return response.text, int(response.headers.get("X-Log-Offset", offset + len(response.content)))

    return decode


def _find_task(detail: dict[str, Any], name: str, role: str | None, index: int) -> dict[str, Any]:
    """The task ``role/index`` of a job's detail (``role`` None: the first role)."""
    roles = detail.get("taskRoles") or {}
    if not roles:
        raise PaiError(404, "NoTaskLogError", f"job {name} has no tasks yet")
    if role is None:
        entry = next(iter(roles.values()))
    else:
        entry = next((e for k, e in roles.items() if role in (k, e["taskRoleStatus"]["name"])), None)
        if entry is None:
            raise PaiError(404, "NoTaskLogError", f"job {name} has no task role {role!r}; "
                           f"roles: {', '.join(e['taskRoleStatus']['name'] for e in roles.values())}")
    task = next((t for t in entry.get("taskStatuses") or [] if t["taskIndex"] == index), None)
    if task is None:
        raise PaiError(404, "NoTaskLogError", f"job {name} has no task {role or ''}/{index} yet")
    return task


class Api:
    """The REST API's methods (OpenPAI v2 and PAI Hub's extensions), for both transports.

    A job may be named ``name`` (the caller's own) or ``user~name``; the caller's name is asked of
    the server once (``whoami``) when first needed."""

    url: str
    token: str | None
    username: str | None = None

    # -- names and paths (pure) ---------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def qualified(self, name: str) -> str:
        """``user~name`` of a job, with the caller's name already known."""
        if "~" in name:
            return name
        if self.username is None:
            raise PaiError(0, "ClientError", "cannot resolve a job name without knowing who I am")
        return f"{self.username}~{name}"

    def job_path(self, name: str) -> str:
        """``/api/v2/jobs/<user~name>``, quoted (``~`` kept)."""
        return f"{API}/jobs/{quote(self.qualified(name), safe='~')}"

    def market_path(self, ref: str, *rest: str) -> str:
        """``/marketplace/api/items/<ref>[/...]``; ``ref`` is an item id, name or ``name@version``."""
        return "/".join([f"{MARKET}/items/{quote(ref, safe='@')}", *(_segment(r) for r in rest)])

    def _job(self, name: str) -> Plan[str]:
        """The path of a job, asking who I am first when ``name`` has no ``user~``."""
        yield from Api.resolve.plan(self, name)
        return self.job_path(name)

    # -- the raw call ---------------------------------------------------------------------------------
    @call
    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None, json: Any = None,
                content: bytes | None = None, headers: Mapping[str, str] | None = None) -> Plan[Any]:
        """Any route: the decoded answer (JSON as data, else text)."""
        return (yield Request(method, path, params=params, json=json, content=content, headers=headers))

    # -- who and where --------------------------------------------------------------------------------
    @call
    def whoami(self) -> Plan[dict[str, Any]]:
        """``{username, admin, application}`` of the token; remembers the username."""
        me = yield Request("GET", f"{API}/tokens/check")
        self.username = me["username"]
        return me

    @call
    def resolve(self, name: str) -> Plan[str]:
        """``user~name`` of a job named ``name`` or ``user~name``."""
        if "~" not in name and self.username is None:
            yield from Api.whoami.plan(self)
        return self.qualified(name)

    @call
    def info(self) -> Plan[dict[str, Any]]:
        """``GET /api/v2/info``: ``backend`` (ours: ``local``, ``slurm``, ``kubernetes``) tells whether tasks
        run on the server's machine; ``launcherType`` is OpenPAI's enum (``k8s``), for its clients."""
        return (yield Request("GET", f"{API}/info"))

    # -- jobs -----------------------------------------------------------------------------------------
    @call
    def jobs(self, **filters: Any) -> Plan[Any]:
        """Job summaries. Filters (OpenPAI's): username, vc, state, keyword, tagsContain,
        tagsNotContain, jobPriority; paging: offset, limit, order (``field,ASC|DESC``),
        withTotalCount (the answer is then ``{totalCount, data}``)."""
        return (yield Request("GET", f"{API}/jobs", params=_present(filters)))

    @call
    def job_page(self, offset: int = 0, limit: int = 50, **filters: Any) -> Plan[JobPage]:
        """One page of job summaries with the number of jobs that match (:class:`JobPage`); the
        filters are :meth:`jobs`'. The server pages by keyset, so the next page costs the same at
        any depth: go on with ``offset=page.next_offset``."""
        params = _present({**filters, "offset": offset, "limit": limit, "withTotalCount": "true"})
        answer = yield Request("GET", f"{API}/jobs", params=params)
        return JobPage.from_json(answer, offset, limit)

    @call
    def job(self, name: str) -> Plan[dict[str, Any]]:
        """The job's detail (OpenPAI ``JobDetail``, current attempt)."""
        return (yield Request("GET", (yield from self._job(name))))

    @call
    def snapshot(self, name: str) -> Plan[JobSnapshot]:
        """The job as a typed :class:`~pai_client.models.JobSnapshot`."""
        detail = yield from Api.job.plan(self, name)
        return JobSnapshot.from_detail(detail, self.qualified(name))

    @call
    def config(self, name: str) -> Plan[str]:
        """The job's protocol YAML as submitted (secrets masked)."""
        return (yield Request("GET", (yield from self._job(name)) + "/config"))

    @call
    def submit(self, job: Any, dry_run: bool = False) -> Plan[dict[str, Any]]:
        """Submit protocol YAML text, a mapping or a ``JobProtocol``; ``dry_run``: every check,
        nothing stored (the answer says what the job would be)."""
        return (yield Request("POST", f"{API}/jobs", content=protocol_text(job).encode(),
                              headers={"Content-Type": "text/yaml"}, params={"dryRun": "true"} if dry_run else None))

    @call
    def submit_many(self, jobs: Any, array: str | None = None, dry_run: bool = False) -> Plan[dict[str, Any]]:
        """Submit many jobs in one request, stored in one transaction (all of them or none).

        ``jobs`` is a list of jobs (YAML text, mappings or ``JobProtocol`` models), or, with
        ``array`` (``"0-9999"``, ``"0-99:2"``, ``"1,3,5-7"``), one job submitted as a job array: a job
        per index, named ``<name>-<index>``, ``PAI_ARRAY_INDEX`` in its environment. Returns
        ``{status, message, count, names}``; a bad element raises :class:`PaiError` naming it."""
        import json

        if array is not None:
            body: Any = {"job": protocol_text(jobs), "array": str(array)}
        elif isinstance(jobs, (str, Mapping)) or hasattr(jobs, "model_dump"):
            raise PaiError(0, "InvalidParametersError", "submit_many: give a list of jobs, or one job and array=")
        else:
            body = [protocol_text(job) for job in jobs]
        return (yield Request("POST", f"{API}/jobs/batch", content=json.dumps(body).encode(),
                              headers={"Content-Type": "application/json"},
                              params={"dryRun": "true"} if dry_run else None))

    @call
    def submit_job(self, job: Any) -> Plan[str]:
        """Submit a job; returns its ``user~name``."""
        import yaml

        text = protocol_text(job)
        yield from Api.submit.plan(self, text)
        return (yield from Api.resolve.plan(self, str((yaml.safe_load(text) or {}).get("name", ""))))

    @call
    def stop(self, name: str) -> Plan[dict[str, Any]]:
        return (yield Request("PUT", (yield from self._job(name)) + "/executionType", json={"value": "STOP"}))

    @call
    def events(self, name: str, type: str | None = None) -> Plan[list[dict[str, Any]]]:
        """The job's events so far, newest first (``type``: only ``Normal`` or ``Warning``)."""
        path = (yield from self._job(name)) + "/events"
        return (yield Request("GET", path, params=_present({"type": type})))["data"]

    @call
    def job_attempt(self, name: str, attempt: int) -> Plan[dict[str, Any]]:
        """One attempt of the job (OpenPAI's ``JobDetail`` of that attempt)."""
        return (yield Request("GET", f"{(yield from self._job(name))}/attempts/{int(attempt)}"))

    @call
    def task_attempts(self, name: str, attempt: int, role: str, index: int) -> Plan[list[dict[str, Any]]]:
        """Every attempt of one task within a job attempt."""
        path = f"{(yield from self._job(name))}/attempts/{int(attempt)}/taskRoles/{_segment(role)}" \
               f"/taskIndex/{int(index)}/attempts"
        return (yield Request("GET", path))

    @call
    def wait(self, name: str, timeout: float = 600, interval: float = 0.2) -> Plan[dict[str, Any]]:
        """Until the job ends; returns its detail. :class:`PaiError` ``Timeout`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            detail = yield from Api.job.plan(self, name)
            if detail["jobStatus"]["state"] in END_STATES:
                return detail
            if time.monotonic() > deadline:
                raise PaiError(0, "Timeout", f"job {name} still {detail['jobStatus']['state']} after {timeout:g}s")
            yield Sleep(interval)

    # -- logs -----------------------------------------------------------------------------------------
    @call
    def log_path(self, name: str, role: str | None = None, index: int = 0,
                 detail: dict[str, Any] | None = None) -> Plan[str]:
        """The log-locations route of a task's current attempt (``role`` None: the first role)."""
        detail = detail or (yield from Api.job.plan(self, name))
        return _find_task(detail, name, role, index)["containerLog"]

    @call
    def log(self, name: str, role: str | None = None, index: int = 0, log: str = "all", offset: int = 0,
            tail: bool = False, detail: dict[str, Any] | None = None) -> Plan[tuple[str, int]]:
        """One log of a task from ``offset`` (or its last 16 KiB with ``tail``); returns the text and
        the next offset. ``detail``: the job's detail when the caller has it (saves a request)."""
        path = yield from Api.log_path.plan(self, name, role, index, detail)
        params: dict[str, Any] = {"tail-mode": "true"} if tail else {"offset": offset}
        return (yield Request("GET", f"{path}/{_segment(log)}", params=params, decode=_log_answer(offset)))

    @stream
    def follow(self, name: str, role: str | None = None, index: int = 0, log: str = "all",
               interval: float = 0.5) -> Plan[None]:
        """The log's text as it is written, until the job ends (a task not started yet is waited for)."""
        offset = 0
        while True:
            detail = yield from Api.job.plan(self, name)
            try:
                text, offset = yield from Api.log.plan(self, name, role, index, log, offset, detail=detail)
            except PaiError as exc:
                if exc.code != "NoTaskLogError":
                    raise
                text = ""
            if text:
                yield Emit(text)
            if detail["jobStatus"]["state"] in END_STATES:
                return
            yield Sleep(interval)

    # -- debugging ------------------------------------------------------------------------------------
    @call
    def debug_reservation(self, name: str) -> Plan[dict[str, Any]]:
        """The tasks of a failed job kept for debugging, and until when."""
        return (yield Request("GET", (yield from self._job(name)) + "/debug"))

    @call
    def release(self, name: str) -> Plan[dict[str, Any]]:
        """End a debug reservation early: its GPUs go back to the VC."""
        return (yield Request("DELETE", (yield from self._job(name)) + "/debug"))

    @call
    def debug_task(self, name: str) -> Plan[tuple[str, int]]:
        """Which task to open a shell in — the one rule of the CLI, the magics and the Lab: the
        first task kept for debugging, else the job's first task."""
        try:
            kept = (yield from Api.debug_reservation.plan(self, name))["tasks"][0]
            return kept["taskRole"], int(kept["taskIndex"])
        except PaiError as exc:
            if exc.code != "NoDebugReservationError":
                raise
        roles = (yield from Api.job.plan(self, name))["taskRoles"]
        if not roles:
            raise PaiError(404, "NoTaskError", f"job {name} has no tasks yet")
        return next(iter(roles.values()))["taskRoleStatus"]["name"], 0

    @call
    def terminal_url(self, name: str, role: str, index: int) -> Plan[str]:
        """The websocket of a shell in a task (terminado's messages); connect with
        :meth:`auth_headers` (``pai_client.terminal.connect``)."""
        path = f"{(yield from self._job(name))}/tasks/{_segment(role)}/{int(index)}/terminal"
        base = "ws" + self.url[len("http"):] if self.url.startswith("http") else self.url
        return base + path

    # -- operations: usage, timelines, alerts (pai_hub/monitoring; docs/operations.md) ----------------
    @call
    def usage(self, since: str | float | None = None, until: str | float | None = None, by: str = "user",
              csv: bool = False, username: str | None = None) -> Plan[Any]:
        """GPU-hours by user, vc, sku or job over [since, until) (default: the last 30 days): the
        report as a dict, or CSV text."""
        params = {"since": since, "until": until, "by": by, "format": "csv" if csv else "json", "username": username}
        return (yield Request("GET", f"{API}/usage", params=_present(params)))

    @call
    def timeline(self, name: str, csv: bool = False, view: str = "events") -> Plan[Any]:
        """A job's state transitions and per-task phases (dict), or CSV text of its events or tasks."""
        params = {"format": "csv", "view": view} if csv else {}
        return (yield Request("GET", (yield from self._job(name)) + "/timeline", params=params))

    @call
    def cluster_timeline(self, since: str | float | None = None, until: str | float | None = None,
                         view: str = "tasks", csv: bool = False) -> Plan[Any]:
        """(admins) Every job's task phases or events in a window."""
        params = {"since": since, "until": until, "view": view, "format": "csv" if csv else "json"}
        return (yield Request("GET", f"{API}/cluster/timeline", params=_present(params)))

    @call
    def alerts(self, state: str = "firing") -> Plan[list[dict[str, Any]]]:
        """Alerts (Alertmanager's shape); a non-admin gets those about their own jobs."""
        return (yield Request("GET", f"{API}/alerts", params={"state": state}))

    # -- the cluster ----------------------------------------------------------------------------------
    @call
    def virtual_clusters(self) -> Plan[dict[str, Any]]:
        return (yield Request("GET", f"{API}/virtual-clusters"))

    @call
    def virtual_cluster(self, vc: str) -> Plan[dict[str, Any]]:
        return (yield Request("GET", f"{API}/virtual-clusters/{_segment(vc)}"))

    @call
    def set_virtual_cluster(self, vc: str, cells: dict[str, int], pinned_cells: list[str] | None = None
                            ) -> Plan[dict[str, Any]]:
        """(admins) A VC's quota in cells of each type."""
        body: dict[str, Any] = {"cells": cells, **({"pinnedCells": pinned_cells} if pinned_cells is not None else {})}
        return (yield Request("PUT", f"{API}/virtual-clusters/{_segment(vc)}", json=body))

    @call
    def sku_types(self, vc: str | None = None) -> Plan[dict[str, Any]]:
        return (yield Request("GET", f"{API}/cluster/sku-types", params=_present({"vc": vc})))

    @call
    def nodes(self) -> Plan[Any]:
        return (yield Request("GET", f"{API}/cluster/nodes"))

    @call
    def set_node_health(self, node: str, healthy: bool) -> Plan[dict[str, Any]]:
        """(admins) Take a node out of scheduling, or back."""
        return (yield Request("PUT", f"{API}/cluster/nodes/{_segment(node)}/health", json={"healthy": healthy}))

    # -- users, tokens, groups (admins for other users) -------------------------------------------------
    @call
    def login(self, username: str, password: str, expiration: int | None = None) -> Plan[dict[str, Any]]:
        """``{token, user, admin}`` for a password (OpenPAI basic mode)."""
        body = {"username": username, "password": password, **_present({"expiration": expiration})}
        return (yield Request("POST", f"{API}/tokens", json=body))

    @call
    def tokens(self) -> Plan[list[str]]:
        return (yield Request("GET", f"{API}/tokens"))["tokens"]

    @call
    def create_application_token(self, name: str = "application") -> Plan[str]:
        return (yield Request("POST", f"{API}/tokens/application", json={"name": name}))["token"]

    @call
    def revoke_token(self, token: str) -> Plan[dict[str, Any]]:
        return (yield Request("DELETE", f"{API}/tokens/{_segment(token)}"))

    @call
    def users(self) -> Plan[list[dict[str, Any]]]:
        return (yield Request("GET", f"{API}/users"))

    @call
    def user(self, username: str) -> Plan[dict[str, Any]]:
        return (yield Request("GET", f"{API}/users/{_segment(username)}"))

    @call
    def create_user(self, username: str, password: str | None = None, admin: bool = False,
                    **fields: Any) -> Plan[dict[str, Any]]:
        body = {"username": username, "admin": admin, **_present({"password": password}), **fields}
        return (yield Request("POST", f"{API}/users", json=body))

    @call
    def delete_user(self, username: str) -> Plan[dict[str, Any]]:
        return (yield Request("DELETE", f"{API}/users/{_segment(username)}"))

    @call
    def user_groups(self, username: str, groups: list[str]) -> Plan[dict[str, Any]]:
        """(admins) Set a user's groups (its virtual clusters follow them)."""
        return (yield Request("PUT", f"{API}/users/{_segment(username)}/grouplist", json={"grouplist": groups}))

    @call
    def groups(self) -> Plan[list[dict[str, Any]]]:
        return (yield Request("GET", f"{API}/groups"))

    @call
    def group(self, name: str) -> Plan[dict[str, Any]]:
        return (yield Request("GET", f"{API}/groups/{_segment(name)}"))

    @call
    def create_group(self, name: str, **fields: Any) -> Plan[dict[str, Any]]:
        """(admins) ``fields``: description, externalName, extension."""
        return (yield Request("POST", f"{API}/groups", json={"groupname": name, **fields}))

    @call
    def update_group(self, name: str, **fields: Any) -> Plan[dict[str, Any]]:
        """(admins) Our extension: change a group's ``virtualClusters`` (the VCs it grants its
        members), ``description`` or ``extension``."""
        return (yield Request("PUT", f"{API}/groups/{_segment(name)}", json=fields))

    @call
    def delete_group(self, name: str) -> Plan[dict[str, Any]]:
        return (yield Request("DELETE", f"{API}/groups/{_segment(name)}"))

    @call
    def group_users(self, name: str) -> Plan[list[dict[str, Any]]]:
        return (yield Request("GET", f"{API}/groups/{_segment(name)}/userlist"))

    # -- experiments (pai_hub/experiments; docs/experiments.md) ---------------------------------------
    @call
    def experiments(self, all: bool = False) -> Plan[list[dict[str, Any]]]:
        """Your experiments (``all``: everyone's, for admins)."""
        return (yield Request("GET", f"{API}/experiments", params={"all": "true"} if all else None))

    @call
    def experiment(self, experiment_id: str) -> Plan[dict[str, Any]]:
        return (yield Request("GET", f"{API}/experiments/{_segment(experiment_id)}"))

    @call
    def experiment_trials(self, experiment_id: str) -> Plan[list[dict[str, Any]]]:
        return (yield Request("GET", f"{API}/experiments/{_segment(experiment_id)}/trials"))

    @call
    def create_experiment(self, body: dict[str, Any]) -> Plan[dict[str, Any]]:
        """Start an experiment (``pai_client.experiments.load_request`` reads one from a file)."""
        return (yield Request("POST", f"{API}/experiments", json=body))

    @call
    def experiment_execution(self, experiment_id: str, value: str) -> Plan[dict[str, Any]]:
        """``STOP`` or ``RESUME`` an experiment."""
        return (yield Request("PUT", f"{API}/experiments/{_segment(experiment_id)}/executionType",
                              json={"value": value}))

    # -- the marketplace (pai_hub/marketplace; docs/marketplace.md) -----------------------------------
    @call
    def market_items(self, **filters: Any) -> Plan[list[dict[str, Any]]]:
        """Items visible to me. Filters: type, tag, category (lists: all must match), keyword, author,
        status, visibility, starred, sort (name | updated | created | stars | uses)."""
        return (yield Request("GET", f"{MARKET}/items", params=_present(filters)))

    @call
    def market_item(self, ref: str, version: int | None = None) -> Plan[dict[str, Any]]:
        return (yield Request("GET", self.market_path(ref), params=_present({"version": version})))

    @call
    def market_versions(self, ref: str) -> Plan[list[dict[str, Any]]]:
        return (yield Request("GET", self.market_path(ref, "versions")))

    @call
    def market_publish(self, content: str | dict[str, Any], type: str = "template", name: str | None = None,
                       visibility: str | None = None, groups: list[str] | None = None,
                       tags: list[str] | None = None, categories: list[str] | None = None,
                       summary: str | None = None, description: str | None = None) -> Plan[dict[str, Any]]:
        """Publish ``content`` (a template job, or one data/script/dockerimage prerequisite) as item
        ``name`` — a new item (``visibility`` default private), or a new version of yours (metadata
        left as it is unless given). Returns ``{id, name, version, created, status}``."""
        body: dict[str, Any] = {"name": name, "type": type, "protocol": content}
        for key, value in (("visibility", visibility), ("groupList", groups), ("tags", tags),
                           ("categories", categories), ("summary", summary), ("description", description)):
            if value is not None:
                body[key] = value
        return (yield Request("POST", f"{MARKET}/items", json=body))

    @call
    def market_update(self, ref: str, **fields: Any) -> Plan[dict[str, Any]]:
        """Change metadata (summary, description, visibility, groupList, tags, categories); a new
        ``protocol`` makes a new version; ``status`` (admins) reviews."""
        return (yield Request("PUT", self.market_path(ref), json=fields))

    @call
    def market_delete(self, ref: str) -> Plan[dict[str, Any]]:
        return (yield Request("DELETE", self.market_path(ref)))

    @call
    def market_star(self, ref: str, star: bool = True) -> Plan[dict[str, Any]]:
        return (yield Request("PUT" if star else "DELETE", self.market_path(ref, "star")))

    @call
    def market_use(self, ref: str) -> Plan[dict[str, Any]]:
        """Count one use of an item (after submitting a job made from it)."""
        return (yield Request("POST", self.market_path(ref, "use")))

    @call
    def market_review(self, ref: str, status: str) -> Plan[dict[str, Any]]:
        """(admins) approve, reject or reset (pending) a public item."""
        return (yield Request("PUT", self.market_path(ref, "status"), json={"status": status}))

    @call
    def market_tags(self) -> Plan[list[dict[str, Any]]]:
        return (yield Request("GET", f"{MARKET}/tags"))

    @call
    def market_categories(self) -> Plan[list[dict[str, Any]]]:
        return (yield Request("GET", f"{MARKET}/categories"))
