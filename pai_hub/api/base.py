"""The base handler: authentication on every call, JSON in and out, errors as ``{code, message}``.

Handlers reach the server's parts through typed properties over the one
:class:`~pai_hub.services.Services` of the server (``self.users``, ``self.controller``...), and run
every synchronous call (SQLAlchemy, password hashing) through :meth:`BaseHandler.blocking`, so that
no request holds the event loop.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from sqlalchemy.exc import OperationalError
from tornado import web
from tornado.log import app_log

from ..orchestrator import store_faults
from ..orchestrator.loop import ControlPlaneFailed, StoreUnavailable
from ..protocol.errors import InvalidProtocol
from ..protocol.limits import check_object
from ..services import ServerSettings, Services
from ..store.users import Principal
from .errors import ApiError, bad_params, unauthorized
from .redact import redacted
from .streams import Slot, stream_slots

if TYPE_CHECKING:
    from ..cluster_config import ClusterConfig
    from ..marketplace.repository import MarketRepository
    from ..orchestrator.loop import Controller
    from ..store.users import GroupRepository, UserRepository

log = logging.getLogger("pai_hub.api")
P = ParamSpec("P")
T = TypeVar("T")

#: The largest number a path or query parameter may carry (attempts, indexes, offsets stay far below).
#: Checked on the text before ``int()``: Python refuses to convert more than 4,300 digits (a
#: ValueError that used to surface as a 500), and a number past any real id means nothing anyway.
MAX_PARAM_INT = 2**63 - 1


def parse_int(text: str | None, field: str, *, low: int = 0, high: int = MAX_PARAM_INT) -> int:
    """``text`` as an integer in ``[low, high]``; otherwise a 400 naming ``field`` and the range."""
    value: int | None = None
    if text is not None and 0 < len(text) <= 20:
        try:
            value = int(text)
        except ValueError:
            value = None
    if value is None or not low <= value <= high:
        raise bad_params(f"{field}: must be an integer from {low} to {high}")
    return value


class BaseHandler(web.RequestHandler):
    """Every route authenticates unless it sets ``public = True``."""

    public = False

    # -- the server's parts (pai_hub/services.py) ------------------------------------------------
    @property
    def services(self) -> Services:
        return self.application.settings["services"]

    @property
    def server_settings(self) -> ServerSettings:
        return self.services.settings

    @property
    def users(self) -> UserRepository:
        return self.services.users

    @property
    def groups(self) -> GroupRepository:
        return self.services.groups

    @property
    def controller(self) -> Controller:
        return self.services.controller

    @property
    def cluster(self) -> ClusterConfig:
        return self.services.cluster

    @property
    def market(self) -> MarketRepository:
        return self.services.market

    async def blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a synchronous call (the store, password hashing) off the event loop and wait for it."""
        return await self.services.blocking.run(fn, *args, **kwargs)

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    async def prepare(self) -> None:
        """Authenticate. Subclasses overriding it must ``await super().prepare()``."""
        self.principal: Principal | None = None
        header = self.request.headers.get("Authorization", "")
        if header:
            # PAI's own tokens first; then, under JupyterHub, a hub token
            self.principal = await self._resolve(header)
            if self.principal is None and self.services.hub_auth is not None:
                self.principal = await self.services.hub_auth.principal(header)
            if self.principal is None and not self.public:
                raise unauthorized()
            # a public route answers as documented whatever the header: a stale token is a guest
        elif not self.public:
            raise unauthorized("Guest is not allowed to do this operation.")
        if self.request.method in ("GET", "HEAD"):
            try:
                await self.controller.settled()  # read only what is committed
            except StoreUnavailable as exc:
                raise ApiError(503, "UnavailableError", str(exc)) from None

    async def _resolve(self, header: str) -> Principal | None:
        """A PAI token (``Bearer``, or ``Basic`` user:application-token): from the cache, else the store."""
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return await self._principal_of(value)
        if scheme.lower() == "basic" and value:
            try:
                username, _, token = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            principal = await self._principal_of(token)
            if principal is not None and principal.username == username and principal.application:
                return principal
        return None

    async def _principal_of(self, token: str) -> Principal | None:
        return self.users.cached(token) or await self.blocking(self.users.resolve, token)

    @property
    def me(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def open_stream(self, what: str) -> Slot:
        """A slot for one long-lived stream of the caller (429 past the per-user limit); the caller
        releases it when the stream ends (pai_hub/api/streams.py)."""
        slots = stream_slots(self.application.settings, self.server_settings.max_streams_per_user)
        return slots.take(self.me.username, what)

    def require_admin(self) -> None:
        if not self.me.admin:
            raise ApiError(403, "ForbiddenUserError", "Non-admin is not allow to do this operation.")

    def int_argument(self, name: str, default: int, *, low: int = 0, high: int = MAX_PARAM_INT) -> int:
        """A query parameter as a bounded integer (400 naming it otherwise); ``default`` when absent."""
        text = self.get_argument(name, None)
        return default if text is None else parse_int(text, name, low=low, high=high)

    def json_body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_params(f"the request body is not valid JSON: {exc}") from None
        except RecursionError:  # json's decoder recurses once per level: 100,000 '[' is enough
            raise bad_params(f"the request body is nested more than {self.server_settings.limits.max_depth} "
                             "levels deep") from None
        if not isinstance(body, dict):
            raise bad_params("the request body must be a JSON object")
        try:  # the same bounds as every document a user sends (pai_hub/protocol/limits.py)
            check_object(body, self.server_settings.limits, what="the request body")
        except InvalidProtocol as exc:
            raise bad_params(str(exc)) from None
        return body

    def send(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.set_status(exc.status)
            body = {"code": exc.code, "message": exc.message}
        elif isinstance(exc, (ControlPlaneFailed, StoreUnavailable)):  # the change was not stored: retry later
            self.set_status(503)
            body = {"code": "UnavailableError", "message": str(exc)}
        elif isinstance(exc, OperationalError):  # the store refused a direct write (login, tokens, marketplace)
            self.set_status(503)
            body = {"code": "UnavailableError",
                    "message": f"{store_faults.RETRY}: {store_faults.describe(exc, self.services.store.url)}"}
        elif isinstance(exc, web.HTTPError) and status_code < 500:
            body = {"code": _HTTP_CODES.get(status_code, "InvalidParametersError"),
                    "message": exc.log_message or self._reason}
        else:
            body = {"code": "UnknownError", "message": "internal error; the administrator can find details "
                    "in the server log"}
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def _request_summary(self) -> str:
        """tornado's summary of the request in its warning and exception lines, tokens redacted."""
        return f"{self.request.method} {redacted(self.request.uri or '')} ({self.request.remote_ip})"

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[override]
        if isinstance(value, ApiError):
            return  # client errors are answered, not logged as failures
        if isinstance(value, (ControlPlaneFailed, StoreUnavailable, OperationalError)):
            # an outage the loop already logs: one line per refused request, never a traceback (or SQL)
            cause = store_faults.describe(value, self.services.store.url) if isinstance(value, OperationalError) \
                else str(value)
            app_log.warning("503 %s: %s", self._request_summary(), cause)
            return
        super().log_exception(typ, value, tb)


_HTTP_CODES = {404: "NoApiError", 405: "NoApiError", 413: "PayloadTooLargeError"}


class NotFoundHandler(BaseHandler):
    public = True

    def prepare(self) -> None:
        raise ApiError(404, "NoApiError", f"API {self.request.path} is not found.")
