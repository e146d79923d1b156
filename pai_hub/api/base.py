"""The base handler: authentication on every call, JSON in and out, errors as ``{code, message}``."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from tornado import web

from ..orchestrator.loop import StoreUnavailable
from ..store.users import Principal
from .errors import ApiError, bad_params, unauthorized
from .hubauth import hub_principal

log = logging.getLogger("pai_hub.api")


class BaseHandler(web.RequestHandler):
    """Every route authenticates unless it sets ``public = True``."""

    public = False

    @property
    def pai(self) -> Any:
        return self.application.settings["pai"]

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    async def prepare(self) -> None:
        """Authenticate. Subclasses overriding it must ``await super().prepare()``."""
        self.principal: Principal | None = None
        header = self.request.headers.get("Authorization", "")
        if header:
            # PAI's own tokens first (a cached, synchronous look-up); then, under JupyterHub, a hub token
            self.principal = self._resolve(header) or await hub_principal(self.pai, header)
            if self.principal is None:
                raise unauthorized()
        elif not self.public:
            raise unauthorized("Guest is not allowed to do this operation.")
        controller = getattr(self.pai, "controller", None)
        if controller is not None and self.request.method in ("GET", "HEAD"):
            try:
                await controller.settled()  # read only what is committed
            except StoreUnavailable as exc:
                raise ApiError(503, "UnavailableError", str(exc)) from None

    def _resolve(self, header: str) -> Principal | None:
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            principal = self.pai.users.resolve(value)
            if principal is not None:
                return principal
        elif scheme.lower() == "basic" and value:
            try:
                username, _, token = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            principal = self.pai.users.resolve(token)
            if principal is not None and principal.username == username and principal.application:
                return principal
        return None

    @property
    def me(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def require_admin(self) -> None:
        if not self.me.admin:
            raise ApiError(403, "ForbiddenUserError", "Non-admin is not allow to do this operation.")

    def json_body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_params(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise bad_params("the request body must be a JSON object")
        return body

    def send(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.set_status(exc.status)
            body = {"code": exc.code, "message": exc.message}
        elif isinstance(exc, web.HTTPError) and status_code < 500:
            body = {"code": _HTTP_CODES.get(status_code, "InvalidParametersError"),
                    "message": exc.log_message or self._reason}
        else:
            body = {"code": "UnknownError", "message": "internal error; the administrator can find details "
                    "in the server log"}
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[override]
        if isinstance(value, ApiError):
            return  # client errors are answered, not logged as failures
        super().log_exception(typ, value, tb)


_HTTP_CODES = {404: "NoApiError", 405: "NoApiError", 413: "PayloadTooLargeError"}


class NotFoundHandler(BaseHandler):
    public = True

    def prepare(self) -> None:
        raise ApiError(404, "NoApiError", f"API {self.request.path} is not found.")
