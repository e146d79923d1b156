"""Users, tokens and basic login (standalone mode), and the ``info`` routes (notes §2.1–2.2).

Stricter than OpenPAI: only admins list users or read another user's record, and tokens are
never shown again after they are created: ``GET /tokens`` lists their ids (the store keeps only
hashes), which ``DELETE /tokens/{id}`` takes as it takes the token. Application tokens may not
manage accounts or tokens (:mod:`.scopes`).
"""

from __future__ import annotations

import logging
import math

from pai_runtime.accounts import AccountError, retire_account

from .. import __version__
from ..store.usernames import InvalidUsername, check_username
from .base import BaseHandler
from .errors import ApiError, bad_params, forbidden, unauthorized
from .scopes import APPLICATIONS_REFUSED, UserTokenOnly
from .throttle import LoginThrottle

log = logging.getLogger(__name__)

DEFAULT_TOKEN_SECONDS = 7 * 24 * 3600


class InfoHandler(BaseHandler):
    public = True

    def get(self) -> None:
        # launcherType is an enum in OpenPAI's clients (yarn | k8s): "k8s" is the launcher whose API
        # this is; where tasks really run is ``backend`` (local, slurm, kubernetes)
        self.send({"name": "PAI RESTful API", "version": __version__, "launcherType": "k8s",
                   "authnMethod": "basic", "server": "pai-hub", "backend": self.controller.backend.name})


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
    """``POST /authn/basic/login`` and ``POST /tokens``: username + password → a browser token.

    An unknown user and a wrong password get the same answer in the same time (a hash is checked
    either way), so a login does not tell who has an account; failures are limited per username
    and per client address (:mod:`.throttle`: 429 with ``Retry-After``). The hash runs off the loop."""

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
        expiration = token_lifetime(body.get("expiration", DEFAULT_TOKEN_SECONDS))
        throttle = login_throttle(self.settings)
        address = self.request.remote_ip or ""
        wait = throttle.retry_after(username, address)
        if wait:  # answered, not raised: an error page would drop the Retry-After header
            self.set_header("Retry-After", str(wait))
            self.send({"code": "TooManyRequestsError",
                       "message": f"Too many failed logins for {username} or from {address}: retry in {wait} s."}, 429)
            return
        users = self.users
        if not await self.blocking(users.verify, username, password):  # argon2: slow on purpose
            throttle.failed(username, address)
            raise ApiError(400, "IncorrectPasswordError", "Username or password is incorrect.")
        user = await self.blocking(users.get, username)
        if user is None:  # deleted meanwhile
            raise ApiError(400, "IncorrectPasswordError", "Username or password is incorrect.")
        token = await self.blocking(users.create_token, username, name="login", application=False,
                                    lifetime=expiration)
        self.send({"user": username, "token": token, "admin": user["admin"], "hasGitHubPAT": False})


def token_lifetime(raw: object) -> int:
    """``expiration`` of a login: whole seconds between 60 and 604800 (a number or a numeric string;
    ``1e400``, NaN, booleans and the rest are a 400 naming the field)."""
    message = "expiration: must be a number of seconds between 60 and 604800"
    if isinstance(raw, bool) or not isinstance(raw, int | float | str) or (isinstance(raw, str) and len(raw) > 32):
        raise bad_params(message)
    try:
        value = float(raw)
    except (ValueError, OverflowError):
        raise bad_params(message) from None
    if not math.isfinite(value) or not 60 <= value <= 604800:
        raise bad_params(f"{message}, got {str(raw)[:32]}")
    return int(value)


def login_throttle(settings: dict) -> LoginThrottle:
    """The application's one failed-login limiter (kept in its settings: one per server)."""
    throttle = settings.get("login_throttle")
    if throttle is None:
        throttle = settings["login_throttle"] = LoginThrottle()
    return throttle


class LogoutHandler(UserTokenOnly):
    """Logout ends the browser session it is called with: a login token is revoked. An application
    token may not log out (OpenPAI's 403); the bootstrap admin token ``pai server`` prints is left
    alone — it is revoked explicitly, ``DELETE /tokens/{id}`` — so that a ``pai logout`` run with it
    cannot lock out whatever else uses it."""

    async def delete(self) -> None:
        token = self.request.headers.get("Authorization", "").partition(" ")[2].strip()
        await self.blocking(self.users.revoke_session, self.me.username, token)
        self.send({"message": "Logout successfully"})


class TokensHandler(LoginHandler):
    """``GET /tokens`` lists my tokens; ``POST /tokens`` logs in, as in OpenPAI's basic mode.

    OpenPAI's list is ``{tokens: [string]}``; ours are the tokens' ids (what ``DELETE /tokens/{id}``
    takes), and ``details`` says what each is (name, application or not, created, expires)."""

    async def get(self) -> None:
        if self.principal is None:  # this route is public for POST (login): say what a private one says
            raise unauthorized() if self.request.headers.get("Authorization") else \
                unauthorized("Guest is not allowed to do this operation.")
        if self.me.application:
            raise forbidden(APPLICATIONS_REFUSED)
        details = await self.blocking(self.users.list_tokens, self.me.username)
        self.send({"tokens": [t["id"] for t in details], "details": details})


class ApplicationTokenHandler(UserTokenOnly):
    async def post(self) -> None:
        name = self.json_body().get("name", "application")
        token = await self.blocking(self.users.create_token, self.me.username, name=str(name), application=True)
        self.send({"token": token, "application": True})


class TokenHandler(UserTokenOnly):
    async def delete(self, token: str) -> None:
        if not await self.blocking(self.users.revoke, self.me.username, token):
            raise ApiError(404, "NoTokenError", "Token is not found among your tokens.")
        self.send({"message": "revoke successfully"})


class TokenCheckHandler(BaseHandler):
    def get(self) -> None:
        self.send({"username": self.me.username, "application": self.me.application, "admin": self.me.admin})


class UserWrites(UserTokenOnly):
    """What the user-changing routes share: VC lists checked against the cluster, one update."""

    def virtual_clusters(self, body: dict, field: str, key: str = "virtualCluster") -> list[str] | None:
        """``body[key]`` as a list of existing VC names (400 naming ``field`` otherwise), or None."""
        vcs = body.get(key)
        if vcs is None:
            return None
        if not isinstance(vcs, list) or not all(isinstance(v, str) for v in vcs):
            raise bad_params(f"{field}: must be a list of virtual cluster names")
        unknown = sorted(set(vcs) - set(self.cluster.virtual_clusters))
        if unknown:
            raise ApiError(400, "NoVirtualClusterError", f"{field}: virtual cluster {', '.join(unknown)} not found")
        return vcs

    async def apply(self, username: str, data: dict, *, password: str | None, admin: bool | None = None,
                    vcs: list[str] | None = None) -> None:
        email, extension = data.get("email"), data.get("extension")
        if email is not None and not isinstance(email, str):
            raise bad_params("data.email: must be a string")
        if extension is not None and not isinstance(extension, dict):
            raise bad_params("data.extension: must be an object")
        caller_token = self.request.headers.get("Authorization", "").partition(" ")[2].strip()
        try:
            await self.blocking(self.users.update, username, email=email, password=password, admin=admin,
                                extension=extension, virtual_clusters=vcs,
                                known_vcs=frozenset(self.cluster.virtual_clusters), keep_token=caller_token)
        except KeyError:
            raise ApiError(404, "NoUserError", f"User {username} is not found.") from None
        self.send({"message": f"Update user {username} successfully"}, 201)



class UsersHandler(UserWrites):
    user_token_methods = frozenset({"POST", "PUT"})

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
        vcs = self.virtual_clusters(body, "virtualCluster")
        try:
            await self.blocking(self.users.create, username, password, admin=admin, email=str(body.get("email", "")))
        except KeyError:
            raise ApiError(409, "ConflictUserError", f"User name {username} already exists.") from None
        if vcs:
            await self.blocking(self.users.update, username, virtual_clusters=vcs,
                                known_vcs=frozenset(self.cluster.virtual_clusters))
        self.send({"message": "User is created successfully"}, 201)

    async def put(self) -> None:
        """OpenPAI's ``PUT /users`` ``{patch, data: {username, email, virtualCluster, admin, password,
        extension}}``: every field unless ``patch`` is true, then only those given change."""
        self.require_admin()
        patch, data = update_form(self.json_body())
        username = data.get("username")
        if not isinstance(username, str) or not username:
            raise bad_params("data.username: required")
        if not patch:
            missing = [k for k in ("email", "virtualCluster", "admin", "password", "extension") if k not in data]
            if missing:
                raise bad_params(f"data.{missing[0]}: required unless patch is true")
        admin = data.get("admin")
        if admin is not None and not isinstance(admin, bool):
            raise bad_params("data.admin: must be true or false")
        await self.apply(username, data, password=new_password(data.get("password"), "data.password"),
                         admin=admin, vcs=self.virtual_clusters(data, "data.virtualCluster", key="virtualCluster"))

def update_form(body: dict) -> tuple[bool, dict]:
    """``{patch, data}`` of OpenPAI's user updates, checked (400 naming the field)."""
    patch, data = body.get("patch", False), body.get("data")
    if not isinstance(patch, bool):
        raise bad_params("patch: must be true or false")
    if not isinstance(data, dict):
        raise bad_params("data: required, an object")
    return patch, data


def new_password(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) < 6:
        raise bad_params(f"{field}: at least 6 characters")
    return value


class UserHandler(UserWrites):
    """``GET|DELETE /users/{u}``, and ``PUT /users/me``: a user's own email, extension and password."""

    user_token_methods = frozenset({"PUT", "DELETE"})

    async def get(self, username: str) -> None:
        if username == "me":
            username = self.me.username
        if username != self.me.username:
            self.require_admin()
        user = await self.blocking(self.users.get, username)
        if user is None:
            raise ApiError(404, "NoUserError", f"User {username} is not found.")
        if username == self.me.username:  # what the caller may do: under the hub, the hub's admin flag
            user["admin"] = self.me.admin
        self.send(user)

    async def put(self, username: str) -> None:
        """OpenPAI's ``PUT /users/me`` ``{patch, data: {username, email, oldPassword, newPassword,
        extension}}``; ``data.username`` must be the caller (403). A new password needs the old one."""
        if username != "me":
            raise ApiError(404, "NoApiError", f"API {self.request.path} is not found.")
        patch, data = update_form(self.json_body())
        if data.get("username") != self.me.username:
            raise forbidden(f"User {self.me.username} is not allowed to update {data.get('username')}.")
        if not patch and "email" not in data:
            raise bad_params("data.email: required unless patch is true")
        password = new_password(data.get("newPassword"), "data.newPassword")
        if password is not None:
            old = data.get("oldPassword")
            if not isinstance(old, str) or not await self.blocking(self.users.verify, self.me.username, old):
                raise ApiError(400, "IncorrectPasswordError", "Password is incorrect.")
        await self.apply(self.me.username, data, password=password)

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
        policy = self.server_settings.isolation
        if policy is not None and policy.switches_users:
            # a new user of the same name must not get this one's Unix account, home or files
            try:
                await self.blocking(retire_account, policy, username)
            except AccountError as exc:
                log.warning("user %s removed, but their Unix account was not retired: %s", username, exc)
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
