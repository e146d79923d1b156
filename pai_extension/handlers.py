"""Handlers of the PAI server extension: the REST proxy, the terminal proxy, the context."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import httpx
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import iostream, web, websocket
from tornado.httpclient import HTTPClientError, HTTPRequest

from pai_client.client import API, MARKET, AsyncPaiClient, PaiError

AUTH_RESOURCE = "pai"
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_.~@%+=:,-]+$")
PASSED_HEADERS = ("Content-Type", "X-Log-Offset", "Cache-Control", "Location")


class _PaiHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def pai(self) -> AsyncPaiClient:
        return self.extensionapp.client  # type: ignore[attr-defined]

    def fail(self, status: int, code: str, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"code": code, "message": message}))


def target_path(path: str) -> str:
    """``/pai/api/<path>`` → the PAI route: ``marketplace/...`` → ``/marketplace/api/...``, else
    ``/api/v2/<path>``. Segments are checked so that a path can never leave those trees."""
    segments = path.split("/") if path else []
    for s in segments:
        if not _SAFE_SEGMENT.match(s) or s in (".", ".."):
            raise web.HTTPError(400, f"bad path segment {s!r}")
    if segments and segments[0] == "marketplace":
        return "/".join([MARKET, *segments[1:]])
    return "/".join([API, *segments]) if segments else API


class ProxyHandler(_PaiHandler):
    """``/pai/api/*`` → PAI, as this server's user (PAI decides what the user may see)."""

    async def _proxy(self, path: str) -> None:
        target = target_path(path)
        headers = {k: self.request.headers[k] for k in ("Content-Type", "Accept") if k in self.request.headers}
        kwargs: dict[str, Any] = {"headers": headers}
        if self.request.query:
            kwargs["params"] = httpx.QueryParams(self.request.query)
        if self.request.method in ("POST", "PUT", "PATCH", "DELETE") and self.request.body:
            kwargs["content"] = self.request.body
        if "text/event-stream" in headers.get("Accept", ""):
            await self._stream(target, kwargs)
            return
        try:
            r = await self.pai.send(self.request.method or "GET", target, **kwargs)
        except PaiError as exc:
            self.fail(502, exc.code, exc.message)
            return
        self.set_status(r.status_code)
        for key in PASSED_HEADERS[1:]:
            if key in r.headers:
                self.set_header(key, r.headers[key])
        self.finish(r.content, set_content_type=r.headers.get("Content-Type", "application/json"))

    async def _stream(self, target: str, kwargs: dict[str, Any]) -> None:
        """Server-sent events, passed on as they come (the job's event stream)."""
        try:
            async with self.pai.open_stream("GET", target, **kwargs) as r:
                self.set_status(r.status_code)
                self.set_header("Content-Type", r.headers.get("Content-Type", "text/event-stream"))
                self.set_header("Cache-Control", "no-store")
                self.set_header("X-Accel-Buffering", "no")
                async for chunk in r.aiter_raw():
                    self.write(chunk)
                    await self.flush()
        except httpx.HTTPError as exc:
            if not self._headers_written:
                self.fail(502, "ConnectionError", f"cannot reach PAI: {exc}")
                return
        except iostream.StreamClosedError:
            return  # the browser went away
        if not self._finished:
            self.finish(set_content_type=self._headers.get("Content-Type", "text/event-stream"))

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        await self._proxy(path)

    @web.authenticated
    @authorized
    async def post(self, path: str) -> None:
        await self._proxy(path)

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        await self._proxy(path)

    @web.authenticated
    @authorized
    async def delete(self, path: str) -> None:
        await self._proxy(path)


_EXPERIMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
UI_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
          "content-encoding", "set-cookie", "content-security-policy", "x-frame-options"}


class ExperimentUiHandler(ExtensionHandlerMixin, JupyterHandler):
    """``/pai/nni/<id>/*``: the experiment's NNI web UI (PAI's ``/nni/<id>/*``), as this server's user,
    for a Lab tab.

    Not under ``/pai/api``: an API handler's content security policy forbids scripts, and the NNI UI is
    a page. It finds its REST API relative to its own path (NNI strips ``/oview`` and ``/detail`` from
    ``location.pathname``), so everything it loads comes back through here; and it renders nothing on a
    path that contains "experiment", hence ``nni``. PAI lets only the owner in.
    """

    auth_resource = AUTH_RESOURCE

    @property
    def pai(self) -> AsyncPaiClient:
        return self.extensionapp.client  # type: ignore[attr-defined]

    def check_xsrf_cookie(self) -> None:
        """NNI's UI changes its experiment with PUT/DELETE (axios, no Jupyter ``_xsrf`` header); they
        are taken when the browser says the request came from this origin, as a same-origin page does."""
        if self.request.headers.get("Sec-Fetch-Site") == "same-origin":
            return
        origin = self.request.headers.get("Origin")
        if origin and origin.split("://", 1)[-1] == self.request.host:
            return
        super().check_xsrf_cookie()

    async def _proxy(self, exp_id: str, path: str) -> None:
        if not _EXPERIMENT_ID.match(exp_id) or any(s in (".", "..") for s in path.split("/")):
            raise web.HTTPError(400, "bad experiment id or path")
        if not path:
            self.redirect(self.request.path + "/oview")
            return
        target = f"/nni/{exp_id}{path}"
        kwargs: dict[str, Any] = {"headers": {k: v for k, v in self.request.headers.items()
                                              if k.lower() in ("accept", "content-type", "if-none-match")}}
        if self.request.query:
            kwargs["params"] = httpx.QueryParams(self.request.query)
        if self.request.method in ("POST", "PUT", "PATCH", "DELETE") and self.request.body:
            kwargs["content"] = self.request.body
        try:
            r = await self.pai.send(self.request.method or "GET", target, **kwargs)
        except PaiError as exc:
            self.set_status(502)
            self.finish(json.dumps({"code": exc.code, "message": exc.message}))
            return
        self.set_status(r.status_code)
        for key, value in r.headers.items():
            if key.lower() not in UI_HOP:
                self.set_header(key, value)
        self.finish(r.content)

    @web.authenticated
    @authorized
    async def get(self, exp_id: str, path: str) -> None:
        await self._proxy(exp_id, path)

    @web.authenticated
    @authorized
    async def post(self, exp_id: str, path: str) -> None:
        await self._proxy(exp_id, path)

    @web.authenticated
    @authorized
    async def put(self, exp_id: str, path: str) -> None:
        await self._proxy(exp_id, path)

    @web.authenticated
    @authorized
    async def delete(self, exp_id: str, path: str) -> None:
        await self._proxy(exp_id, path)


def own_context(environ: Any = None) -> dict[str, Any]:
    """What this server's environment says about itself: its PAI job, VC, task and GPUs."""
    env = os.environ if environ is None else environ
    gpus = [g for g in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip() != ""]
    index = env.get("PAI_TASK_INDEX")
    return {
        "job": env.get("PAI_FRAMEWORK_NAME") or None,
        "user": env.get("PAI_USER_NAME") or env.get("JUPYTERHUB_USER") or None,
        "virtualCluster": env.get("PAI_VIRTUAL_CLUSTER") or None,
        "taskRole": env.get("PAI_CURRENT_TASK_ROLE_NAME") or None,
        "taskIndex": int(index) if index and index.isdigit() else None,
        "gpus": gpus,
        "gpuCount": len(gpus),
        "hub": bool(env.get("JUPYTERHUB_API_URL")),
        "server": env.get("JUPYTERHUB_SERVER_NAME") or "",
    }


class ContextHandler(_PaiHandler):
    """``/pai/api/context``: this server's own job (from its environment) and, when PAI answers,
    the job's state, the user PAI sees, and where PAI is."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        ctx = own_context()
        ctx["paiUrl"] = self.pai.url
        try:
            me = await self.pai.whoami()
            ctx["paiUser"] = me["username"]
        except PaiError as exc:
            ctx["paiUser"] = None
            ctx["paiError"] = f"{exc.code}: {exc.message}"
        ctx["jobState"] = None
        if ctx["job"] and ctx.get("paiUser"):
            try:
                detail = await self.pai.job(ctx["job"])
                ctx["jobState"] = detail["jobStatus"]["state"]
            except PaiError:
                pass
        self.finish(json.dumps(ctx))


class TerminalProxyHandler(ExtensionHandlerMixin, WebSocketMixin, JupyterHandler, websocket.WebSocketHandler):
    """A websocket terminal into a task: PAI's terminal (terminado's JSON messages), proxied as
    this server's user. It works wherever the server can reach PAI — also when the notebook server
    is not on the control plane's machine."""

    auth_resource = AUTH_RESOURCE
    upstream: Any = None

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._opened = False
        self._pending: list[str | bytes | None] = []

    @property
    def pai(self) -> AsyncPaiClient:
        return self.extensionapp.client  # type: ignore[attr-defined]

    async def get(self, framework: str, role: str, index: str) -> None:  # type: ignore[override]
        if not self.current_user:
            raise web.HTTPError(403)
        if self.authorizer is not None and not self.authorizer.is_authorized(
                self, self.current_user, "execute", AUTH_RESOURCE):
            raise web.HTTPError(403)
        try:
            url = await self.pai.terminal_url(framework, role, int(index))
        except PaiError as exc:
            self._refuse(exc.status or 502, exc.code, exc.message)
            return
        try:
            self.upstream = await websocket.websocket_connect(
                HTTPRequest(url, headers=self.pai.auth_headers(), request_timeout=20),
                on_message_callback=self._from_upstream)
        except HTTPClientError as exc:
            body = exc.response.body if exc.response is not None else b""
            try:
                err = json.loads(body)
                self._refuse(exc.code, err["code"], err["message"])
            except (ValueError, KeyError, TypeError):
                self._refuse(exc.code, "Error", str(exc))
            return
        except OSError as exc:
            self._refuse(502, "ConnectionError", f"cannot reach PAI: {exc}")
            return
        await super().get(framework, role, index)

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer the upgrade request with PAI's error (before any websocket exists)."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": code, "message": message}))

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self._opened = True
        pending, self._pending = self._pending, []
        for message in pending:
            self._from_upstream(message)

    def _from_upstream(self, message: str | bytes | None) -> None:
        if not self._opened:  # the shell spoke before our side of the socket was open
            self._pending.append(message)
            return
        if message is None:  # PAI closed the shell
            self.close()
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            pass

    def on_message(self, message: str | bytes) -> None:
        if self.upstream is not None:
            self.upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
