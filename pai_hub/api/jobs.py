"""Jobs: submit, list, detail, config, stop, attempts, logs and events (OpenPAI REST v2 §2.2–2.3).

Stricter than OpenPAI: a user sees, stops and reads the logs of only their own jobs; admins of
all. Someone else's job answers 404, as if it did not exist, so job names do not leak.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import yaml
from tornado import iostream, web

from .. import protocol
from ..marketplace.resolve import has_references, record_use, resolve_references
from ..orchestrator.loop import ConflictError
from ..orchestrator.records import TERMINAL, JobRecord, TaskRecord
from ..protocol.prerequisites import RUNTIME_PLUGIN_EXTRAS_KEY
from ..scheduler.feasibility import infeasible_reason
from ..scheduler.requests import RequestError, build_gangs, job_priority
from ..store import jobs as job_store
from ..store.history import ORDER_COLUMNS, JobQuery
from . import images, logs, views
from .base import BaseHandler, parse_int
from .errors import ApiError, bad_params, forbidden, no_job
from .paging import PageCursors

MAX_LIST_LIMIT = 50000
#: Bytes past a POST's limit read (and dropped) before the 413 is sent, so that an ordinary client,
#: which reads the answer only once it has sent its body, gets it on a connection that stays open.
DRAIN_BYTES = 8 << 20
#: Tornado's own body limit for streamed POSTs: never reached (ours answers first).
MAX_STREAMED_BODY = 1 << 62
FINAL_REASONS = frozenset({"JobSucceeded", "JobFailed", "JobStopped"})
#: Gang shapes whose placeability verdict is remembered (the table starts over when full).
MAX_PLACEABLE_VERDICTS = 1024


class JobAccess(BaseHandler):
    """Shared look-up of ``{user}~{job}`` with the ownership rule."""

    async def find_job(self, framework_name: str) -> JobRecord:
        """The job, live (memory) or ended (the store, off the loop); 404 when not the caller's."""
        job = await self.controller.find_job(framework_name)
        if job is None or (job.username != self.me.username and not self.me.admin):
            raise no_job(framework_name)
        return job

    def current_tasks(self, job: JobRecord) -> list[TaskRecord]:
        """The live job's current tasks (a debug reservation's); :meth:`status` for any job."""
        return self.controller.tasks(job.id)

    async def status(self, job: JobRecord) -> tuple[Any, list[TaskRecord]]:
        """The job's current attempt and tasks, live or stored."""
        return await self.controller.job_status(job)

    def detail(self, job: JobRecord, attempt: Any, tasks: list[TaskRecord]) -> dict[str, Any]:
        """OpenPAI's job detail, plus whether the job's images were applied (pai_hub/api/images.py)."""
        detail = views.job_detail(job, attempt, tasks)
        shown = images.images_view(job.protocol, self.controller.backend)
        if shown is not None:
            detail["images"] = shown
        return detail

    async def history(self, job: JobRecord, attempt: int | None = None) -> list[TaskRecord]:
        return await self.blocking(job_store.task_history, self.services.store, job.id, attempt)


@web.stream_request_body
class JobsHandler(JobAccess):
    """``GET /jobs`` (list with filters) and ``POST /jobs`` (submit protocol YAML → 202)."""

    async def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._refusal: ApiError | None = None
        if self.request.method != "POST":
            try:
                await super().prepare()
            except ApiError as exc:
                if self.request.method != "GET" or type(self).get is web.RequestHandler.get:
                    raise
                # Answered from the method, once the (empty) body is read: an error raised before
                # the body of a streamed request is read makes tornado drop the keep-alive connection
                # without saying so, and the client's next request on it is reset.
                self._refusal = exc
            return
        limit = self._body_limit()
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and len(length) < 20 and int(length) > limit:
            raise self._too_large()  # refused before a byte is read (the connection is closed after)
        try:
            await super().prepare()
        except ApiError as exc:
            # Answered once the body is read (and dropped), so the keep-alive connection stays usable;
            # answering now would leave the body unread and tornado would close the connection.
            self._refusal = exc
        # Tornado's own limit would answer an empty 400; ours answers 413 with a message. Past
        # ``limit + DRAIN_BYTES`` the refusal is sent at once and the connection closed.
        self.request.connection.set_max_body_size(MAX_STREAMED_BODY)

    def _body_limit(self) -> int:
        """The largest body a POST here may send (checked before and while it is read)."""
        return self.server_settings.max_job_bytes

    def _too_large(self) -> ApiError:
        return ApiError(413, "PayloadTooLargeError",
                        f"the job protocol is larger than {self.server_settings.max_job_bytes} bytes; "
                        "move large data into prerequisites or files")

    def data_received(self, chunk: bytes) -> None:
        """Keep the body up to the limit; past it keep nothing. A body that goes on past the limit
        by more than :data:`DRAIN_BYTES` is answered 413 at once, with ``Connection: close``."""
        if self._finished:
            return
        self._size += len(chunk)
        if self._refusal is None and self._size > self._body_limit():
            self._refusal = self._too_large()
        if self._refusal is None:
            self._chunks.append(chunk)
            return
        self._chunks = []
        if self._size > self._body_limit() + DRAIN_BYTES:
            self.clear()
            self.set_status(self._refusal.status)
            self.set_header("Connection", "close")
            self.finish(json.dumps({"code": self._refusal.code, "message": self._refusal.message}))

    def refuse_if_needed(self) -> None:
        """Raise the refusal found while the body was read (a bad token, an oversized body)."""
        if self._refusal is not None:
            raise self._refusal

    async def post(self) -> None:
        self.refuse_if_needed()
        try:
            text = b"".join(self._chunks).decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "InvalidProtocolError", "the job protocol must be UTF-8 text") from None
        array = self.get_query_argument("array", None)
        if array is not None:  # a job array: one document, one job per index (pai_hub/api/bulk.py)
            from .bulk import submit_array

            await submit_array(self, text, array)
            return
        job, plan = await self._validate(text)
        if self.get_query_argument("dryRun", "").lower() in ("true", "all", "1"):
            # everything a submission checks, nothing stored or run (as kubectl's --dry-run=server)
            if self.controller.name_taken(job.framework_name):
                raise ApiError(409, "ConflictJobError", f"Job {job.framework_name} already exists.")
            self.send({"status": 200, "message": f"Job {job.name} is valid for user {job.username}.",
                       "dryRun": True, "name": job.name, "virtualCluster": job.virtual_cluster,
                       "totalGpuNumber": job.total_gpu, "totalTaskNumber": job.total_tasks,
                       **self.warnings(job)})
            return
        try:
            await self.controller.submit(job, plan)
        except ConflictError as exc:
            raise ApiError(409, "ConflictJobError", str(exc)) from None
        if self._market_used:
            await self.blocking(record_use, self._market_used, self.me.username, self._groups, admin=self.me.admin,
                                repository=self.market)
        self.send({"status": 202, "message": f"Update job {job.name} for user {job.username} successfully.",
                   **self.warnings(job)}, 202)

    def warnings(self, job: JobRecord) -> dict[str, list[str]]:
        """``{"warnings": [...]}`` when something the job asks for will not happen here; else nothing."""
        found = images.submit_warnings(job.protocol, self.controller.backend)
        return {"warnings": found} if found else {}

    async def _validate(self, text: str) -> tuple[JobRecord, Any]:
        self._market_used: list[dict[str, Any]] = []
        limits = self.server_settings.limits
        try:
            doc = protocol.parse(text, limits)
            if has_references(doc):  # marketplace items by name: resolved (and pinned) now
                doc, text = await self._resolve_marketplace(doc)
            parsed = protocol.load_dict(doc, limits)
            plan = protocol.render(parsed, username=self.me.username, limits=limits)
        except protocol.InvalidProtocol as exc:
            raise ApiError(400, "InvalidProtocolError", str(exc)) from None
        try:
            priority, _ = job_priority(plan)
        except RequestError as exc:
            raise ApiError(400, "InvalidProtocolError", str(exc)) from None
        _refuse_unavailable_plugins(parsed)
        vc = plan.virtual_cluster
        if vc not in self.cluster.virtual_clusters:
            raise ApiError(400, "NoVirtualClusterError",
                           f"defaults.virtualCluster: virtual cluster {vc!r} does not exist; "
                           f"available: {', '.join(sorted(self.cluster.virtual_clusters))}")
        if not self.me.admin and vc not in self.me.virtual_clusters:
            raise forbidden(f"User {self.me.username} is not allowed to do operation in {vc}")
        self._check_placeable(plan, vc)
        roles = plan.task_roles.values()
        job = JobRecord(
            id=0,
            framework_name=plan.framework_name,
            username=self.me.username,
            name=plan.name,
            virtual_cluster=vc,
            state="WAITING",
            config_yaml=protocol.mask_secrets(text, limits, parsed=doc),  # doc is what text reads as
            protocol=protocol.masked_config(parsed),
            secrets=dict(plan.secrets or {}),
            submitted_at=time.time(),
            priority=priority,
            job_priority=plan.priority_class,
            total_gpu=sum(r.gpu * r.instances for r in roles),
            total_tasks=sum(r.instances for r in roles),
            total_task_roles=len(plan.task_roles),
        )
        return job, plan

    async def _resolve_marketplace(self, doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Replace prerequisites that name marketplace items by the items' content; the job records
        the versions (``extras.marketplace``), so later edits of an item never change it."""
        self._groups = (await self.blocking(self.users.get, self.me.username) or {}).get("grouplist", [])
        try:
            doc, self._market_used = await self.blocking(resolve_references, doc, self.me.username, self._groups,
                                                         admin=self.me.admin, repository=self.market,
                                                         limits=self.server_settings.limits)
        except ValueError as exc:
            raise ApiError(400, "InvalidProtocolError", str(exc)) from None
        return doc, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)

    def _check_placeable(self, plan: Any, vc: str) -> None:
        """Refuse now what the scheduler could never place (OpenPAI's hived.js 400s), naming the field."""
        controller = self.controller
        tasks = [(r.name, i) for r in plan.task_roles.values() for i in range(r.instances)]
        try:
            gangs = build_gangs(0, 0, plan, tasks, controller.cluster_facts, vc=vc)
        except RequestError as exc:
            raise ApiError(400, "InvalidProtocolError", str(exc)) from None
        verdicts = self._placeable_verdicts()
        for gang in gangs:
            try:
                reason = verdicts[gang]
            except KeyError:
                reason = controller.validate(gang) or infeasible_reason(gang, self.cluster.config,
                                                                        controller.leaf_cells)
                if len(verdicts) >= MAX_PLACEABLE_VERDICTS:
                    verdicts.clear()
                verdicts[gang] = reason
            if reason:
                roles = sorted({p.role for p in gang.pods})
                raise ApiError(400, "InvalidProtocolError",
                               f"taskRoles.{'/'.join(roles)}.resourcePerInstance: {reason}")

    def _placeable_verdicts(self) -> dict[Any, str | None]:
        """Verdicts of :meth:`_check_placeable` per gang (its id is the same ``0.0`` for every
        submission): submissions repeat a few shapes, and a verdict depends only on the gang and on
        the scheduler and cluster config in force, so a reload starts a new table."""
        settings = self.application.settings
        config, scheduler = self.cluster.config, self.controller.scheduler_identity()
        held = settings.get("pai_placeable_verdicts")
        if held is None or held[0] is not config or held[1] != scheduler:
            held = settings["pai_placeable_verdicts"] = (config, scheduler, {})  # holds config: its id stays unique
        return held[2]

    async def get(self) -> None:
        """OpenPAI's job list: filters, order, offset/limit, from the store's indexes (see
        pai_hub/store/history.py); offsets continue from the previous page's last row."""
        self.refuse_if_needed()
        offset = self.int_argument("offset", 0)
        limit = self.int_argument("limit", 5000)
        if limit > MAX_LIST_LIMIT:
            raise bad_params(f"Limit exceeds max number {MAX_LIST_LIMIT}.")
        with_total = self.get_argument("withTotalCount", "false").lower() == "true"
        query = self._query()
        if query is None:  # a user asking only for others' jobs
            self.send({"totalCount": 0, "data": []} if with_total else [])
            return
        key = (self.me.username, query)
        after = self.cursors.before(key, offset) if query.keyset and offset else None
        page = await self.controller.list_jobs(query, 0 if after else offset, limit, after=after,
                                               with_total=with_total)
        if page.last is not None and query.keyset:
            self.cursors.remember(key, offset + len(page.jobs), page.last)
        data = [views.job_summary(j) for j in page.jobs]
        self.send({"totalCount": page.total, "data": data} if with_total else data)

    @property
    def cursors(self) -> PageCursors:
        cursors = self.application.settings.get("pai_page_cursors")
        if cursors is None:
            cursors = self.application.settings["pai_page_cursors"] = PageCursors()
        return cursors

    def _query(self) -> JobQuery | None:
        def listed(name: str, alias: str | None = None) -> tuple[str, ...]:
            text = self.get_argument(name, "") or (self.get_argument(alias, "") if alias else "")
            return tuple(sorted({v for v in text.split(",") if v}))

        usernames = listed("username")
        if not self.me.admin:  # a user lists only their own jobs
            if usernames and self.me.username not in usernames:
                return None
            usernames = (self.me.username,)
        field, _, direction = self.get_argument("order", "submissionTime,DESC").partition(",")
        return JobQuery(
            usernames=usernames, virtual_clusters=listed("vc", "virtualCluster"), states=listed("state"),
            keyword=self.get_argument("keyword", ""), tags_contain=listed("tagsContain"),
            tags_not_contain=listed("tagsNotContain"), priorities=listed("jobPriority"),
            order=field if field in ORDER_COLUMNS else "submissionTime",
            descending=(direction or "DESC").upper() != "ASC",
        )


class JobHandler(JobAccess):
    async def get(self, framework_name: str) -> None:
        job = await self.find_job(framework_name)
        self.send(self.detail(job, *await self.status(job)))


class JobAttemptHandler(JobAccess):
    async def get(self, framework_name: str, attempt_id: str) -> None:
        attempt = parse_int(attempt_id, "jobAttemptId")
        job = await self.find_job(framework_name)
        if attempt > job.attempt_id or attempt < 0:
            raise ApiError(404, "NoJobError", f"JobAttemptId {attempt} is not found in {framework_name}.")
        if attempt == job.attempt_id:
            self.send(self.detail(job, *await self.status(job)))
            return
        tasks = _latest_per_task(await self.history(job, attempt))
        attempts = await self.blocking(job_store.job_attempts, self.services.store, job.id)
        record = next((a for a in attempts if a.attempt_id == attempt), None)
        self.send(self.detail(job, record, tasks))


def _latest_per_task(tasks: list[TaskRecord]) -> list[TaskRecord]:
    best: dict[tuple[str, int], TaskRecord] = {}
    for t in tasks:
        if (t.role, t.task_index) not in best or t.attempt_id > best[(t.role, t.task_index)].attempt_id:
            best[(t.role, t.task_index)] = t
    return list(best.values())


class JobConfigHandler(JobAccess):
    async def get(self, framework_name: str) -> None:
        job = await self.find_job(framework_name)
        # OpenPAI sends the masked config object; we send the masked YAML text the user submitted.
        self.set_header("Content-Type", "text/yaml; charset=UTF-8")
        self.finish(job.config_yaml)


class ExecutionTypeHandler(JobAccess):
    """``{"value": "STOP"}`` stops the job. ``{"value": "START"}`` is accepted and changes nothing, as
    in OpenPAI: its REST server patches FrameworkController's ``spec.executionType`` to ``Start``,
    and FrameworkController only ever moves a framework from Start to Stop. A job starts when it is
    submitted, and a stopped one cannot be started again (submit it again under another name)."""

    async def put(self, framework_name: str) -> None:
        job = await self.find_job(framework_name)  # someone else's job is 404 (not 403: names do not leak)
        value = self.json_body().get("value")
        if value not in ("STOP", "START"):
            raise bad_params('value: must be "STOP" or "START"')
        if value == "STOP":
            await self.controller.stop(job.id)
        self.send({"status": 202, "message": f"Execute job {framework_name} successfully."}, 202)


class TaskAttemptsHandler(JobAccess):
    async def get(self, framework_name: str, attempt_id: str, role: str, index: str) -> None:
        attempt, task_index = parse_int(attempt_id, "jobAttemptId"), parse_int(index, "taskIndex")
        job = await self.find_job(framework_name)
        tasks = [t for t in await self.history(job, attempt)
                 if (t.role == role or views.fc_role_name(t.role) == role) and t.task_index == task_index]
        if not tasks:
            raise no_job(framework_name)
        tasks.sort(key=lambda t: -t.attempt_id)
        current = tasks[0]
        self.send({
            "username": job.username, "jobName": job.name, "jobAttemptId": attempt,
            "taskRoleName": current.role, "taskIndex": current.task_index, "taskUid": current.task_uid,
            "taskState": current.state, "retries": current.retries,
            "accountableRetries": current.accountable_retries,
            "createdTime": views.ms(tasks[-1].created_at), "launchedTime": views.ms(current.launched_at),
            "completedTime": views.ms(current.completed_at),
            "attempts": [views.task_attempt_view(job, t) for t in tasks],
        })


class TaskLogsHandler(JobAccess):
    """``.../attempts/{ta}/logs`` lists log locations; ``.../logs/{name}`` returns the bytes.

    The content route is our extension (OpenPAI served logs from a separate log manager):
    ``?offset=N`` reads from byte N, ``?tail-mode=true`` the last 16 KiB.
    """

    async def get(self, framework_name: str, attempt_id: str, role: str, index: str, task_attempt: str,
                  name: str | None = None) -> None:
        numbers = (parse_int(attempt_id, "jobAttemptId"), parse_int(index, "taskIndex"),
                   parse_int(task_attempt, "taskAttemptId"))
        job = await self.find_job(framework_name)
        task_id = f"{job.id}.{numbers[0]}.{role}.{numbers[1]}.{numbers[2]}"
        backend = self.controller.backend
        try:
            names = await self.blocking(backend.log_names, task_id)
        except KeyError as exc:
            if getattr(exc, "gone", False):  # deleted by the retention policy: say when and why
                raise ApiError(410, "TaskLogExpiredError", str(exc)) from None
            names = []
        if not names:
            raise ApiError(404, "NoTaskLogError", "Log of task is not found.")
        base = self.request.path.rstrip("/")
        if name is None:
            tail = self.get_argument("tail-mode", "false") == "true"
            self.send({"locations": [{"name": n, "uri": f"{base}/{n}" + ("?tail-mode=true" if tail else "")}
                                     for n in names]})
            return
        if name not in names:
            raise ApiError(404, "NoTaskLogError", f"Log {name} of task is not found; available: {', '.join(names)}")
        offset = self.int_argument("offset", 0)
        tail = self.get_argument("tail-mode", "false") == "true"
        # measured first, then streamed in chunks (pai_hub/api/logs.py): memory stays one chunk
        size = await logs.log_size(self.blocking, backend, task_id, name)
        start, end = logs.byte_range(size, offset, tail)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("X-Log-Offset", str(end))  # where the next read continues, also in tail mode
        slot = self.open_stream("log read") if end - start > logs.CHUNK else None  # one chunk: no stream
        try:
            async for data in logs.chunks(self.blocking, backend, task_id, name, start, end):
                self.write(data)
                await self.flush()
        except iostream.StreamClosedError:
            return  # the client went away: stop reading
        finally:
            if slot is not None:
                slot.release()
        self.finish()


class EventsHandler(JobAccess):
    """OpenPAI's ``{totalCount, data}``; with ``Accept: text/event-stream``, a live stream."""

    async def get(self, framework_name: str) -> None:
        job = await self.find_job(framework_name)
        etype = self.get_argument("type", None)
        rows = await self.blocking(job_store.events, self.services.store, job.id, 0, etype)
        roles = {t.task_id: f"{t.role}/{t.task_index}" for t in await self.history(job)}
        if "text/event-stream" not in self.request.headers.get("Accept", ""):
            data = [views.event_view(job, r, roles) for r in reversed(rows)]
            self.send({"totalCount": len(data), "data": data})
            return
        await self._stream(job, rows, roles)

    async def _stream(self, job: JobRecord, rows: list[dict[str, Any]], roles: dict[str, str]) -> None:
        controller = self.controller
        slot = self.open_stream("event stream")  # 429 past the caller's open streams
        queue = self._queue = controller.subscribe(job.id)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("X-Accel-Buffering", "no")
        last = 0
        try:
            for r in rows:
                last = r["id"]
                await self._emit(views.event_view(job, r, roles))
            # events committed between the query and the subscription
            for r in await self.blocking(job_store.events, self.services.store, job.id, last, None):
                last = r["id"]
                await self._emit(views.event_view(job, r, roles))
            # The job's final event ends the stream; the rest of that turn's events (published
            # together, after the commit) are drained first. A job already over ends it at once.
            done = job.state in TERMINAL and any(r["reason"] in FINAL_REASONS for r in rows)
            while not done:
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout=15)
                    if ev is None:  # the client went away (on_connection_close)
                        break
                except asyncio.TimeoutError:
                    if job.state in TERMINAL:
                        break  # over, and nothing more will come
                    self.write(": keep-alive\n\n")
                    await self.flush()
                    continue
                batch = [ev]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                if None in batch:
                    break
                for t in controller.tasks(job.id):
                    roles[t.task_id] = f"{t.role}/{t.task_index}"
                for ev in batch:
                    if ev.id <= last:
                        continue  # already sent from the store
                    last = ev.id
                    await self._emit(views.event_view(job, dict(ev.__dict__), roles))
                    done = done or (ev.reason in FINAL_REASONS and job.state in TERMINAL)
            self.write(f"event: end\ndata: {json.dumps({'state': job.state})}\n\n")
            await self.flush()
        except iostream.StreamClosedError:
            pass
        finally:
            controller.unsubscribe(job.id, queue)
            slot.release()
        self.finish()

    def on_connection_close(self) -> None:
        """The client hung up: end the stream now (its slot is free), not at the next keep-alive."""
        queue = getattr(self, "_queue", None)
        if queue is not None:
            queue.put_nowait(None)

    async def _emit(self, payload: dict[str, Any]) -> None:
        self.write(f"data: {json.dumps(payload)}\n\n")
        await self.flush()


#: Runtime plugins OpenPAI has that need what this platform does not provide yet: refused at submit
#: (a 400 naming the plugin) rather than accepted and failed in every task (exit 240).
UNAVAILABLE_PLUGINS = {
    "teamwise_storage": "it mounts team storages (/api/v2/storages), which PAI Hub does not provide yet; "
                        "remove it and read your data from a path on the node or your home",
}


def _refuse_unavailable_plugins(parsed: Any) -> None:
    items = (parsed.extras or {}).get(RUNTIME_PLUGIN_EXTRAS_KEY) or []
    for i, item in enumerate(items if isinstance(items, list) else []):
        name = item.get("plugin") if isinstance(item, dict) else None
        if name in UNAVAILABLE_PLUGINS:
            raise ApiError(400, "InvalidProtocolError",
                           f"extras.{RUNTIME_PLUGIN_EXTRAS_KEY}[{i}].plugin: {name}: "
                           f"{UNAVAILABLE_PLUGINS[name]}")
