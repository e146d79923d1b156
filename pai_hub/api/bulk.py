"""Bulk submission: many jobs in one request, stored in one transaction (a PAI Hub extension).

``POST /api/v2/jobs/batch`` takes, as YAML or JSON,

* a **list of job documents** (each item a protocol mapping or its YAML text; a multi-document
  YAML stream works too). Each is checked exactly as ``POST /jobs`` checks one job, and an error
  names its item: ``jobs[3]: taskRoles.worker.commands: ...``;
* or a **job array**, ``{"job": <document or its YAML text>, "array": "0-9999"}``: one document,
  one job per index, named ``<name>-<index>`` (``pai_hub/protocol/arrays.py``). The document is
  checked once; each element costs string replaces, so 10,000 elements take well under a second.

``POST /api/v2/jobs?array=0-9999`` with one job's YAML is the same array, for clients that know only
OpenPAI's submit route (``JobsHandler.post`` hands it here).

All or nothing: every element is checked before any is stored, a bad one refuses the request with
every element's errors (400), and ``Controller.submit_many`` adds the jobs in one loop turn and one
commit — a name already taken refuses them all (409 naming the element). ``?dryRun=true`` runs
every check and stores nothing. The count is bounded by ``PaiHub.max_array_size`` and the body by
``PaiHub.max_batch_bytes``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import yaml
from tornado import web

from .. import protocol
from ..marketplace.resolve import has_references, record_use
from ..orchestrator.loop import ConflictError
from ..orchestrator.records import JobRecord
from ..protocol.arrays import InvalidArraySpec, JobArray, parse_array_spec
from .errors import ApiError, bad_params
from .jobs import JobsHandler

#: How many elements' errors one answer spells out before it only counts the rest.
MAX_SHOWN_ELEMENT_ERRORS = 20

Submission = list[tuple[JobRecord, Any]]
_Dumper: type = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@web.stream_request_body
class BatchHandler(JobsHandler):
    """``POST /jobs/batch``: a list of job documents, or one document and an array spec → 202."""

    get = web.RequestHandler.get  # listing is GET /jobs; only POST is served here

    def _body_limit(self) -> int:
        return self.server_settings.max_batch_bytes

    def _too_large(self) -> ApiError:
        return ApiError(413, "PayloadTooLargeError",
                        f"the batch is larger than {self.server_settings.max_batch_bytes} bytes (PaiHub."
                        "max_batch_bytes); send it in several requests, or send one document with an array spec")

    async def post(self) -> None:
        self.refuse_if_needed()
        try:
            text = b"".join(self._chunks).decode("utf-8")
        except UnicodeDecodeError:
            raise bad_params("the batch must be UTF-8 text (YAML or JSON)") from None
        settings = self.server_settings
        items, array = read_batch(text, dataclasses.replace(settings.limits, max_bytes=settings.max_batch_bytes))
        if array is not None:
            await submit_array(self, items[0], array)
            return
        limit = self.server_settings.max_array_size
        if len(items) > limit:
            raise bad_params(f"jobs: {len(items)} documents, more than {limit} (PaiHub.max_array_size); "
                             "split the batch into several requests")
        jobs, used = await self._check_each(items)
        await submit_checked(self, jobs, lambda position: f"jobs[{position}]", used)

    async def _check_each(self, items: list[Any]) -> tuple[Submission, list[dict[str, Any]]]:
        """Every document through the one-job checks; all of their errors, or all of their jobs."""
        jobs: Submission = []
        used: list[dict[str, Any]] = []
        errors: list[tuple[str, ApiError]] = []
        for position, item in enumerate(items):
            text = item if isinstance(item, str) else yaml.dump(item, Dumper=_Dumper, sort_keys=False,
                                                                 allow_unicode=True)
            try:
                jobs.append(await self._validate(text))
            except ApiError as exc:
                errors.append((f"jobs[{position}]", exc))
                continue
            used += self._market_used
        if errors:
            raise element_errors(errors)
        return jobs, used


def read_batch(text: str, limits: protocol.Limits = protocol.DEFAULT_LIMITS) -> tuple[list[Any], str | None]:
    """The batch body as ``(documents, None)`` or, for a job array, ``([document], spec)``; the whole
    stream is held to ``limits`` (each document is held to them again when it is checked as a job)."""
    try:
        documents = protocol.split_documents(text, limits)
    except protocol.InvalidProtocol as exc:
        raise ApiError(400, "InvalidProtocolError", str(exc)) from None
    documents = [d for d in documents if d is not None]
    if len(documents) > 1:  # a multi-document YAML stream: one job each
        return documents, None
    body = documents[0] if documents else None
    if isinstance(body, list):
        bad = [i for i, item in enumerate(body) if not isinstance(item, (dict, str))]
        if bad:
            raise ApiError(400, "InvalidProtocolError",
                           f"jobs[{bad[0]}]: expected a job document (a mapping) or its YAML text")
        if not body:
            raise bad_params("jobs: the list is empty; send at least one job document")
        return body, None
    if isinstance(body, dict) and "job" in body:
        unknown = sorted(set(body) - {"job", "array"})
        if unknown:
            raise bad_params(f"{unknown[0]}: unknown key; a job array is {{job: <document>, array: '0-99'}}")
        if "array" not in body:
            raise bad_params("array: missing; give the indices, e.g. array: '0-99'")
        return [body["job"]], str(body["array"])
    raise bad_params("expected a list of job documents, or {job: <document>, array: '0-99'}")


async def submit_array(handler: JobsHandler, document: dict[str, Any] | str, spec: str) -> None:
    """Check a job array (the document once) and submit its elements; answers 202 (or 200 dry run)."""
    try:
        indices = parse_array_spec(spec, handler.server_settings.max_array_size)
    except InvalidArraySpec as exc:
        raise bad_params(f"array: {exc}") from None
    limits = handler.server_settings.limits
    try:
        if isinstance(document, str):
            doc = protocol.parse(document, limits)
        else:  # a mapping already read with the batch: measured before a template is made of it
            protocol.limits.check_object(document, limits, what="job")
            doc = document
    except protocol.InvalidProtocol as exc:
        raise ApiError(400, "InvalidProtocolError", str(exc)) from None
    if not isinstance(doc, dict):
        raise ApiError(400, "InvalidProtocolError", "job: expected a job document (a mapping) or its YAML text")
    used: list[dict[str, Any]] = []
    if has_references(doc):  # marketplace items by name: resolved (and pinned) once for every element
        doc, _ = await handler._resolve_marketplace(doc)
        used = handler._market_used
    try:
        array = JobArray(doc, indices, username=handler.me.username, limits=limits)
    except protocol.InvalidProtocol as exc:
        raise ApiError(400, "InvalidProtocolError", str(exc)) from None
    # the one-job checks (virtual cluster and its grant, priority, capacity) hold for every element
    template, _ = await handler._validate(yaml.dump(array.template_document(), Dumper=_Dumper, sort_keys=False,
                                                    allow_unicode=True))
    jobs = await handler.blocking(array_jobs, template, array)  # 10,000 records: off the event loop
    await submit_checked(handler, jobs, lambda position: f"array element {indices[position]}", used)


def array_jobs(template: JobRecord, array: JobArray) -> Submission:
    """One record and plan per element: the template's record with the element's name and config."""
    replace = dataclasses.replace
    return [
        (replace(template, framework_name=element.plan.framework_name, name=element.name,
                 config_yaml=element.config_yaml, protocol=element.protocol, tags=[]), element.plan)
        for element in array
    ]


async def submit_checked(handler: JobsHandler, jobs: Submission, describe: Callable[[int], str],
                         used: list[dict[str, Any]]) -> None:
    """Store checked jobs in one turn (or, with ``?dryRun``, only check their names) and answer."""
    names = [job.name for job, _ in jobs]
    user = handler.me.username
    if handler.get_query_argument("dryRun", "").lower() in ("true", "all", "1"):
        seen: set[str] = set()
        for position, (job, _) in enumerate(jobs):
            if job.framework_name in seen or handler.controller.name_taken(job.framework_name):
                raise ApiError(409, "ConflictJobError",
                               f"{describe(position)}: Job {job.framework_name} already exists.")
            seen.add(job.framework_name)
        handler.send({"status": 200, "message": f"{len(jobs)} jobs are valid for user {user}.", "dryRun": True,
                      "count": len(jobs), "names": names, **batch_warnings(handler, jobs)})
        return
    try:
        await handler.controller.submit_many(jobs)
    except ConflictError as exc:
        where = describe(getattr(exc, "position", 0))
        raise ApiError(409, "ConflictJobError", f"{where}: {exc} Nothing was submitted.") from None
    if used:
        await handler.blocking(record_use, used, user, getattr(handler, "_groups", []), admin=handler.me.admin,
                               repository=handler.market)
    handler.send({"status": 202, "message": f"Submitted {len(jobs)} jobs for user {user} successfully.",
                  "count": len(jobs), "names": names, **batch_warnings(handler, jobs)}, 202)


def batch_warnings(handler: JobsHandler, jobs: Submission) -> dict[str, list[str]]:
    """The first job's warnings that has any, once for the whole batch (an array repeats one job)."""
    return next((found for job, _ in jobs if (found := handler.warnings(job))), {})


def element_errors(errors: list[tuple[str, ApiError]]) -> ApiError:
    """Every element's errors in one OpenPAI error body; status and code are the first element's."""
    shown = [f"{where}: {exc.message}" for where, exc in errors[:MAX_SHOWN_ELEMENT_ERRORS]]
    hidden = len(errors) - len(shown)
    if hidden > 0:
        shown.append(f"... and {hidden} more element{'s' if hidden != 1 else ''} with errors")
    first = errors[0][1]
    return ApiError(first.status, first.code, f"{len(errors)} of the jobs are invalid, nothing was submitted: "
                    + "; ".join(shown))
