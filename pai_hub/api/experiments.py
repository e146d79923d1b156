"""Experiments: NNI hyperparameter searches whose trials are PAI jobs (PAI Hub extension; docs/experiments.md).

``POST /api/v2/experiments`` (JSON or YAML) → 202; ``GET /api/v2/experiments[?all=true]``;
``GET /api/v2/experiments/{id}`` (with trials); ``GET .../{id}/trials``; ``PUT .../{id}/executionType``
``{"value": "STOP"|"RESUME"}``; ``/nni/{id}/...`` (and ``.../{id}/ui/...``): NNI's web UI and REST API,
proxied for the owner only (Bearer header, or ``?token=`` once, which sets an HttpOnly cookie scoped to
that path). The page lives at ``/nni/{id}/`` because NNI's UI renders nothing under a path that contains
"experiment" (it takes that for its experiment-management page).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from tornado import web

from .. import protocol
from ..experiments import ExperimentError, ExperimentService, view
from ..experiments.request import validate
from .base import BaseHandler
from .errors import ApiError, bad_params, forbidden

EXP = r"([a-z0-9]{8})"
COOKIE = "pai_experiment_ui"
#: codes pai_hub/experiments raises (as ExperimentError) and this API answers with
SERVICE_CODES = ("NoExperimentError", "NniUnavailableError", "InvalidParametersError")


class ExperimentAccess(BaseHandler):
    @property
    def service(self) -> ExperimentService:
        return self.services.experiments

    def find(self, exp_id: str) -> dict[str, Any]:
        try:
            return self.service.get(exp_id, self.me.username, self.me.admin)
        except ExperimentError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None


class ExperimentsHandler(ExperimentAccess):
    def get(self) -> None:
        everyone = self.get_argument("all", "false").lower() == "true"
        self.send([view(r, detail=False) for r in self.service.list(self.me.username, self.me.admin, everyone)])

    async def post(self) -> None:
        limits = self.server_settings.limits
        try:  # the one bounded loader: a 100,000-deep body is a 400, not a RecursionError
            body = protocol.load_document(self.request.body.decode("utf-8") or "{}", limits,
                                          what="the experiment request")
        except UnicodeDecodeError:
            raise bad_params("the request body must be UTF-8 text (JSON or YAML)") from None
        except protocol.InvalidProtocol as exc:
            raise bad_params(str(exc)) from None
        if not isinstance(body, dict):
            raise bad_params("the request body must be an object")
        check_class_args(body)
        try:
            request = validate(body, limits)
        except ExperimentError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        vc = request["virtualCluster"]
        if vc not in self.cluster.virtual_clusters:
            raise ApiError(400, "NoVirtualClusterError", f"virtualCluster: {vc!r} does not exist")
        if not self.me.admin and vc not in self.me.virtual_clusters:
            raise forbidden(f"User {self.me.username} is not allowed to do operation in {vc}")
        try:
            rec = await self.service.create(self.me.username, request)
        except ExperimentError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        self.send(view(rec), 202)


def check_class_args(body: dict[str, Any]) -> None:
    """``tuner.classArgs`` and ``assessor.classArgs`` are mappings: anything else would reach NNI,
    whose refusal is a traceback (a 500) instead of a 400 naming the field."""
    for part in ("tuner", "assessor"):
        spec = body.get(part)
        args = spec.get("classArgs") if isinstance(spec, dict) else None
        if args is not None and not (isinstance(args, dict) and all(isinstance(k, str) for k in args)):
            raise bad_params(f"{part}.classArgs: must be a mapping of the {part}'s arguments by name, "
                             "e.g. {optimize_mode: maximize}")


class ExperimentHandler(ExperimentAccess):
    def get(self, exp_id: str) -> None:
        self.send(view(self.find(exp_id)))


class TrialsHandler(ExperimentAccess):
    def get(self, exp_id: str) -> None:
        self.send(self.find(exp_id)["trials"])


class ExperimentExecutionHandler(ExperimentAccess):
    async def put(self, exp_id: str) -> None:
        rec = self.find(exp_id)  # someone else's experiment is 404 to a non-admin
        value = self.json_body().get("value")
        if value not in ("STOP", "RESUME"):
            raise bad_params('value: must be "STOP" or "RESUME"')
        try:
            if value == "STOP":
                await self.service.stop(rec)
            else:
                await self.service.resume(rec)
        except ExperimentError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        self.send(view(rec), 202)


HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
       "proxy-authenticate", "content-length", "content-encoding", "host", "authorization", "cookie"}


class ExperimentUiHandler(ExperimentAccess):
    """NNI's web UI and REST API for the experiment's owner; NNI itself listens on 127.0.0.1 only."""

    async def prepare(self) -> None:
        header = self.request.headers.get("Authorization")
        token = self.get_query_argument("token", None) or (None if header else self.get_cookie(COOKIE))
        if token and not header:
            self.request.headers["Authorization"] = f"Bearer {token}"
        try:
            await super().prepare()
        finally:
            if token and not header:
                del self.request.headers["Authorization"]
        self._query_token = self.get_query_argument("token", None)

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    async def _proxy(self, exp_id: str, path: str | None) -> None:
        rec = self.find(exp_id)
        if rec["username"] != self.me.username:
            raise ApiError(404, "NoExperimentError", f"Experiment {exp_id} is not found.")
        # the proxy's own root, whichever route (and hub service prefix) the request came by
        base = self.request.path[: len(self.request.path) - len(path or "")].rstrip("/")
        if self._query_token:  # keep the token out of URLs: a cookie for this path, then redirect
            self.set_cookie(COOKIE, self._query_token, path=base, httponly=True, samesite="Strict")
            args = {k: v for k, v in self.request.query_arguments.items() if k != "token"}
            query = "&".join(f"{quote(k)}={quote(x.decode())}" for k, vs in args.items() for x in vs)
            self.redirect(self.request.path + ("?" + query if query else ""))
            return
        if not path:
            self.redirect(base + "/")
            return
        if not rec.get("uiAvailable") or not rec.get("port"):
            raise ApiError(409, "ExperimentNotRunningError",
                           f"Experiment {exp_id} is {rec['state']}: its NNI web UI is not running (resume it).")
        url = f"http://127.0.0.1:{rec['port']}{quote(path)}"
        if self.request.query:
            url += "?" + self.request.query
        headers = {k: v for k, v in self.request.headers.items() if k.lower() not in HOP}
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None
        try:
            async with httpx.AsyncClient(timeout=60) as c:
                r = await c.request(self.request.method, url, headers=headers, content=body)
        except httpx.HTTPError as exc:
            raise ApiError(502, "ExperimentNotRunningError", f"NNI did not answer: {exc}") from None
        self.set_status(r.status_code)
        for k, v in r.headers.items():
            if k.lower() not in HOP:
                self.set_header(k, v)
        self.finish(r.content)

    async def get(self, exp_id: str, path: str | None = None) -> None:
        await self._proxy(exp_id, path)

    async def post(self, exp_id: str, path: str | None = None) -> None:
        await self._proxy(exp_id, path)

    async def put(self, exp_id: str, path: str | None = None) -> None:
        await self._proxy(exp_id, path)

    async def delete(self, exp_id: str, path: str | None = None) -> None:
        await self._proxy(exp_id, path)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        super().write_error(status_code, **kwargs)


def experiment_routes() -> list[tuple[str, type[web.RequestHandler]]]:
    table = [
        (r"/experiments", ExperimentsHandler),
        (rf"/experiments/{EXP}", ExperimentHandler),
        (rf"/experiments/{EXP}/trials", TrialsHandler),
        (rf"/experiments/{EXP}/executionType", ExperimentExecutionHandler),
        (rf"/experiments/{EXP}/ui", ExperimentUiHandler),
        (rf"/experiments/{EXP}/ui(/.*)", ExperimentUiHandler),
    ]
    out = [(prefix + path, handler) for prefix in ("/api/v2", "/rest-server/api/v2") for path, handler in table]
    return [*out, (rf"/nni/{EXP}", ExperimentUiHandler), (rf"/nni/{EXP}(/.*)", ExperimentUiHandler)]


__all__ = ["experiment_routes"]
