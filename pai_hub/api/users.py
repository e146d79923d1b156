"""Users, tokens and basic login (standalone mode), and the ``info`` routes (notes §2.1–2.2).

Stricter than OpenPAI: only admins list users or read another user's record, and tokens are
never shown again after they are created (only their ids): the store keeps only their hashes.
"""

from __future__ import annotations

from .. import __version__
from ..store.usernames import InvalidUsername, check_username
from .base import BaseHandler
from .errors import ApiError, bad_params, forbidden

DEFAULT_TOKEN_SECONDS = 7 * 24 * 3600


class InfoHandler(BaseHandler):
    public = True

    def get(self) -> None:
        self.send({"name": "PAI RESTful API", "version": __version__, "launcherType": "local",
                   "authnMethod": "basic", "server": "pai-hub"})


class V2RootHandler(BaseHandler):
    public = True

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish("PAI RESTful API v2")


class AuthnInfoHandler(BaseHandler):
    public = True

    def get(self) -> None:
        self.send({"authn_type": "basic", "loginURI": "/api/v2/authn/basic/login", "loginURIMethod": "post"})


class LoginHandler(BaseHandler):
    """``POST /authn/basic/login`` and ``POST /tokens``: username + password → a browser token."""

    public = True

    async def post(self) -> None:
        if self.request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            body = {k: self.get_body_argument(k) for k in ("username", "password", "expiration")
                    if self.get_body_argument(k, None) is not None}
        else:
            body = self.json_body()
        username, password = body.get("username"), body.get("password")
        valid_username(username)
        if not isinstance(password, str) or not password:
            raise bad_params("password: required")
        try:
            expiration = int(body.get("expiration", DEFAULT_TOKEN_SECONDS))
        except (TypeError, ValueError):
            raise bad_params("expiration: must be a number of seconds between 60 and 604800") from None
        if not 60 <= expiration <= 604800:
            raise bad_params("expiration: must be a number of seconds between 60 and 604800")
        users = self.users
        user = await self.blocking(users.get, username)
        if user is None:
            raise ApiError(400, "NoUserError", f"User {username} is not found.")
        if not await self.blocking(users.verify, username, password):  # argon2: slow on purpose
            raise ApiError(400, "IncorrectPasswordError", "Password is incorrect.")
        token = await self.blocking(users.create_token, username, name="login", application=False,
                                    lifetime=expiration)
        self.send({"user": username, "token": token, "admin": user["admin"], "hasGitHubPAT": False})


class LogoutHandler(BaseHandler):
    """Logout ends the browser session it is called with: a login token is revoked; a long-lived
    application token (a script's, the bootstrap admin token ``pai server`` prints) is left alone —
    those are revoked explicitly, ``DELETE /tokens/{id}`` — so that a ``pai logout`` run with one
    cannot lock out whatever else uses it."""

    async def delete(self) -> None:
        if not self.me.application:
            token = self.request.headers.get("Authorization", "").partition(" ")[2].strip()
            await self.blocking(self.users.revoke, self.me.username, token)
        self.send({"message": "Logout successfully"})


class TokensHandler(LoginHandler):
    """``GET /tokens`` lists my tokens; ``POST /tokens`` logs in, as in OpenPAI's basic mode."""

    async def get(self) -> None:
        if self.principal is None:
            raise ApiError(401, "UnauthorizedUserError", "Guest is not allowed to do this operation.")
        self.send({"tokens": await self.blocking(self.users.list_tokens, self.me.username)})


class ApplicationTokenHandler(BaseHandler):
    async def post(self) -> None:
        if self.me.application:
            raise forbidden("Applications are not allowed to do this operation.")
        name = self.json_body().get("name", "application")
        token = await self.blocking(self.users.create_token, self.me.username, name=str(name), application=True)
        self.send({"token": token, "application": True})


class TokenHandler(BaseHandler):
    async def delete(self, token: str) -> None:
        if not await self.blocking(self.users.revoke, self.me.username, token):
            raise ApiError(404, "NoTokenError", "Token is not found among your tokens.")
        self.send({"message": "revoke successfully"})


class TokenCheckHandler(BaseHandler):
    def get(self) -> None:
        self.send({"username": self.me.username, "application": self.me.application, "admin": self.me.admin})


class UsersHandler(BaseHandler):
    async def get(self) -> None:
        self.require_admin()
        self.send(await self.blocking(self.users.list))

    async def post(self) -> None:
        self.require_admin()
        body = self.json_body()
        username = valid_username(body.get("username"))
        password = body.get("password")
        if password is not None and (not isinstance(password, str) or len(password) < 6):
            raise bad_params("password: at least 6 characters")
        admin = body.get("admin", False)
        if not isinstance(admin, bool):
            raise bad_params("admin: must be true or false")
        try:
            await self.blocking(self.users.create, username, password, admin=admin, email=str(body.get("email", "")))
        except KeyError:
            raise ApiError(409, "ConflictUserError", f"User name {username} already exists.") from None
        self.send({"message": "User is created successfully"}, 201)


class UserHandler(BaseHandler):
    async def get(self, username: str) -> None:
        if username == "me":
            username = self.me.username
        if username != self.me.username:
            self.require_admin()
        user = await self.blocking(self.users.get, username)
        if user is None:
            raise ApiError(404, "NoUserError", f"User {username} is not found.")
        self.send(user)

    async def delete(self, username: str) -> None:
        self.require_admin()
        user = await self.blocking(self.users.get, username)
        if user is None:
            raise ApiError(404, "NoUserError", f"User {username} is not found.")
        if user["admin"]:
            raise ApiError(403, "RemoveAdminError", f"Admin {username} is not allowed to remove.")
        # the live jobs are the control plane's (in memory, under the user's name): they must end
        # first, or a new user of the same name would find them (the stored ones get a tombstone owner)
        live = [j.framework_name for j in self.controller.jobs(username=username)]
        if live:
            shown = ", ".join(live[:5]) + (f" and {len(live) - 5} more" if len(live) > 5 else "")
            raise ApiError(409, "ConflictUserError",
                           f"User {username} has {len(live)} live job(s) ({shown}): stop them (and end debug "
                           "reservations) before removing the user.")
        await self.blocking(self.users.delete, username)
        self.send({"message": "user is removed successfully"})


def valid_username(name: object) -> str:
    """The one username rule (:mod:`pai_hub.store.usernames`) as OpenPAI's 400 naming the field."""
    try:
        return check_username(name)
    except InvalidUsername as exc:
        raise bad_params(str(exc)) from None


class OpenApiHandler(BaseHandler):
    """The REST reference: ``openapi.yaml`` shipped in the package, served as JSON."""

    public = True
    _spec: bytes | None = None

    def get(self) -> None:
        if OpenApiHandler._spec is None:
            import json
            from importlib.resources import files

            import yaml

            doc = yaml.safe_load(files("pai_hub.api").joinpath("openapi.yaml").read_text())
            OpenApiHandler._spec = json.dumps(doc).encode()
        self.finish(OpenApiHandler._spec)
