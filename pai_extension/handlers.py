"""Handlers of the PAI server extension: the REST proxy, the terminal proxy, the context."""

from __future__ import annotations

import asyncio
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

from pai_client import API, MARKET, AsyncPaiClient, PaiError, terminal

AUTH_RESOURCE = "pai"
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_.~@%+=:,-]+$")
PASSED_HEADERS = ("Content-Type", "X-Log-Offset", "Cache-Control", "Location")


class _UsesPai(ExtensionHandlerMixin):
    """What every handler here shares: the extension's one PAI client (as this server's user),
    the auth resource, and PAI's ``{code, message}`` error answer."""

    auth_resource = AUTH_RESOURCE

    @property
    def pai(self) -> AsyncPaiClient:
        return self.extensionapp.client  # type: ignore[attr-defined]

    def fail(self, status: int, code: str, message: str) -> None:
        self.set_status(status)  # type: ignore[attr-defined]
        self.set_header("Content-Type", "application/json")  # type: ignore[attr-defined]
        self.finish(json.dumps({"code": code, "message": message}))  # type: ignore[attr-defined]

    def forwarded(self, header_names: Any) -> dict[str, Any]:
        """The request as the PAI call passes it on: the named headers, the query, the body."""
        request = self.request  # type: ignore[attr-defined]
        kwargs: dict[str, Any] = {"headers": {k: v for k, v in request.headers.items()
                                              if k.lower() in header_names}}
        if request.query:
            kwargs["params"] = httpx.QueryParams(request.query)
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.body:
            kwargs["content"] = request.body
        return kwargs


class _ProxyMethods:
    """GET, POST, PUT and DELETE, each authenticated and authorized, all passed to ``_proxy``."""

    async def _proxy(self, *args: str) -> None:
        raise NotImplementedError

    @web.authenticated
    @authorized
    async def get(self, *args: str) -> None:
        await self._proxy(*args)

    @web.authenticated
    @authorized
    async def post(self, *args: str) -> None:
        await self._proxy(*args)

    @web.authenticated
    @authorized
    async def put(self, *args: str) -> None:
        await self._proxy(*args)

    @web.authenticated
    @authorized
    async def delete(self, *args: str) -> None:
        await self._proxy(*args)


class _PaiHandler(_UsesPai, APIHandler):
    """An API handler of the extension (JSON answers, Jupyter's API security policy)."""


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


class ProxyHandler(_ProxyMethods, _PaiHandler):
    """``/pai/api/*`` → PAI, as this server's user (PAI decides what the user may see)."""

    async def _proxy(self, path: str) -> None:  # type: ignore[override]
        target = target_path(path)
        kwargs = self.forwarded(("content-type", "accept"))
        if "text/event-stream" in kwargs["headers"].get("Accept", ""):
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


_EXPERIMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
UI_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
          "content-encoding", "set-cookie", "content-security-policy", "x-frame-options"}


class ExperimentUiHandler(_ProxyMethods, _UsesPai, JupyterHandler):
    """``/pai/nni/<id>/*``: the experiment's NNI web UI (PAI's ``/nni/<id>/*``), as this server's user,
    for a Lab tab.

    Not under ``/pai/api``: an API handler's content security policy forbids scripts, and the NNI UI is
    a page. It finds its REST API relative to its own path (NNI strips ``/oview`` and ``/detail`` from
    ``location.pathname``), so everything it loads comes back through here; and it renders nothing on a
    path that contains "experiment", hence ``nni``. PAI lets only the owner in.
    """

    def check_xsrf_cookie(self) -> None:
        """NNI's UI changes its experiment with PUT/DELETE (axios, no Jupyter ``_xsrf`` header); they
        are taken when the browser says the request came from this origin, as a same-origin page does."""
        if self.request.headers.get("Sec-Fetch-Site") == "same-origin":
            return
        origin = self.request.headers.get("Origin")
        if origin and origin.split("://", 1)[-1] == self.request.host:
            return
        super().check_xsrf_cookie()

    async def _proxy(self, exp_id: str, path: str) -> None:  # type: ignore[override]
        if not _EXPERIMENT_ID.match(exp_id) or any(s in (".", "..") for s in path.split("/")):
            raise web.HTTPError(400, "bad experiment id or path")
        if not path:
            self.redirect(self.request.path + "/oview")
            return
        try:
            r = await self.pai.send(self.request.method or "GET", f"/nni/{exp_id}{path}",
                                    **self.forwarded(("accept", "content-type", "if-none-match")))
        except PaiError as exc:
            self.fail(502, exc.code, exc.message)
            return
        self.set_status(r.status_code)
        for key, value in r.headers.items():
            if key.lower() not in UI_HOP:
                self.set_header(key, value)
        self.finish(r.content)


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


class TerminalProxyHandler(_UsesPai, WebSocketMixin, JupyterHandler, websocket.WebSocketHandler):
    """A websocket terminal into a task: PAI's terminal, proxied as this server's user. It works
    wherever the server can reach PAI, also when the notebook server is not on the control
    plane's machine.

    Messages are relayed as they are, both ways (text stays text, binary stays binary), so the
    proxy does not depend on the terminal's wire protocol: today terminado's JSON messages
    (``["stdin", text]``, ``["set_size", rows, cols]`` from the browser; ``["setup", {}]``,
    ``["stdout", text]``, ``["disconnect", code]`` from the shell)."""

    upstream: Any = None

    async def get(self, framework: str, role: str, index: str) -> None:  # type: ignore[override]
        if not self.current_user:
            raise web.HTTPError(403)
        if self.authorizer is not None and not self.authorizer.is_authorized(
                self, self.current_user, "execute", AUTH_RESOURCE):
            raise web.HTTPError(403)
        try:
            url = await self.pai.terminal_url(framework, role, int(index))
            self.upstream = await terminal.connect(url, self.pai.auth_headers(), timeout=20)
        except PaiError as exc:  # answer the upgrade request with PAI's refusal (no websocket yet)
            self.fail(exc.status or 502, exc.code, exc.message)
            return
        await super().get(framework, role, index)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self._relay = asyncio.ensure_future(self._from_upstream())

    async def _from_upstream(self) -> None:
        """What the shell says, to the browser, until either side closes."""
        while self.upstream is not None:
            message = await self.upstream.read_message()
            if message is None:  # PAI closed the shell
                break
            try:
                await self.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                return
        self.close()

    def on_message(self, message: str | bytes) -> None:
        if self.upstream is not None:
            self.upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
