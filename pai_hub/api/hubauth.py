"""JupyterHub API tokens on the PAI API, and the mirror of hub users into the store.

When the control plane runs as a JupyterHub service, a caller may present a hub API token
(``Authorization: token X`` or ``Bearer X``) instead of a PAI application token. JupyterHub's own
:class:`~jupyterhub.services.auth.HubAuth` asks the hub who it is (``user_for_token``, with the
hub's answer cached for ``PaiHub.hub_token_cache_seconds``); we require that the token may access
this service (``access:services`` or ``access:services!service=<name>``, HubAuth's access scopes),
then read the user's full model with the service's own token (admin flag and groups, which a narrow
token cannot see) and mirror it into the store:

* the user is created on first sight (no password: under the hub, the hub logs people in); a hub
  name that breaks PAI's username rule (:mod:`pai_hub.store.usernames`: path-like, too long…) is
  refused, with a log line naming the rule;
* hub admins are members of PAI's admin group, others are not; a hub user is a PAI admin only if
  the hub says so, even when the name is that of a PAI admin created otherwise (``pai server``'s
  bootstrap ``admin``): the principal's admin flag is the hub's;
* each hub group becomes a PAI group of the same name (created on first sight; a group named like
  a virtual cluster grants that VC, as OpenPAI's groups do); the user's memberships are exactly
  their hub groups plus ``default`` (plus the admin group for admins).

The resulting principal is kept in HubAuth's expiring cache too, so a token costs the hub two
requests and the store one mirror per TTL; the mirror's store calls run off the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from tornado.web import HTTPError

from ..blocking import BlockingPool
from ..store.usernames import InvalidUsername, check_username
from ..store.users import ADMIN_GROUP, DEFAULT_GROUP, GroupRepository, Principal, UserRepository

log = logging.getLogger("pai_hub.hubauth")

GROUPNAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class HubSettings:
    """Where the hub is and who this service is (``PaiHub.hub_*``; the hub sets them in the env)."""

    api_url: str
    api_token: str
    service_name: str
    cache_seconds: float = 30.0


class HubTokenAuth:
    """Resolves hub API tokens to principals; one per control plane (``Services.hub_auth``)."""

    def __init__(self, settings: HubSettings, users: UserRepository, groups: GroupRepository,
                 virtual_clusters: Callable[[], list[str]], blocking: BlockingPool) -> None:
        self.settings = settings
        self.users = users
        self.groups = groups
        self.virtual_clusters = virtual_clusters
        self.blocking = blocking
        # imported here: a standalone server (no hub) does not pay for jupyterhub and aiohttp at start-up
        from jupyterhub.services.auth import HubAuth

        access = {f"access:services!service={settings.service_name}"} if settings.service_name else set()
        self.hub = HubAuth(api_url=settings.api_url.rstrip("/"), api_token=settings.api_token,
                           cache_max_age=max(1, round(settings.cache_seconds)), access_scopes=access)
        self._http = httpx.AsyncClient(timeout=10.0)

    async def principal(self, header: str) -> Principal | None:
        """The principal of a hub API token in ``header`` (``token X`` or ``Bearer X``), or None."""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() not in ("token", "bearer") or not token:
            return None
        key = "pai-principal:" + hashlib.sha256(token.encode()).hexdigest()
        try:
            return self.hub.cache[key]
        except KeyError:
            pass
        try:
            principal = await self._ask_hub(token)
        except HTTPError as exc:  # the hub is unreachable or failing: refused now, asked again next time
            log.warning("cannot check a hub token: %s", exc.log_message)
            return None
        self.hub.cache[key] = principal
        return principal

    async def _ask_hub(self, token: str) -> Principal | None:
        model = await self.hub.user_for_token(token, sync=False)
        if model is None:
            return None
        if model.get("kind", "user") != "user" or not isinstance(model.get("name"), str):
            return None  # services (the culler, ourselves) are not PAI users
        from jupyterhub.services.auth import check_scopes

        if self.hub.access_scopes and not check_scopes(self.hub.access_scopes, set(model.get("scopes") or [])):
            log.info("hub token of %s lacks access:services!service=%s", model["name"], self.settings.service_name)
            return None
        name = model["name"]
        full = await self._full_model(name)
        if full is None:
            log.warning("cannot read hub user %s with the service token (needs read:users); "
                        "treating it as a non-admin without groups", name)
            full = {"name": name, "admin": False, "groups": model.get("groups") or []}
        return await self.blocking.run(mirror_user, self.users, self.groups, self.virtual_clusters(), name,
                                       bool(full.get("admin")), list(full.get("groups") or []))

    async def _full_model(self, name: str) -> dict | None:
        url = f"{self.hub.api_url}/users/{quote(name, safe='')}"
        try:
            r = await self._http.get(url, headers={"Authorization": f"token {self.settings.api_token}"})
        except httpx.HTTPError as exc:
            log.warning("cannot reach the hub at %s: %s", self.hub.api_url, exc)
            return None
        return r.json() if r.status_code == 200 else None


def mirror_user(users: UserRepository, groups: GroupRepository, virtual_clusters: list[str], name: str,
                admin: bool, hub_groups: list[str]) -> Principal | None:
    """Create or update the PAI user ``name`` from the hub's model; returns its principal (None for a
    name PAI cannot take). Synchronous (the store): call it off the event loop."""
    try:
        check_username(name)
    except InvalidUsername as exc:
        log.warning("hub user %r refused: %s", name[:80], exc)
        return None
    if users.get(name) is None:
        try:
            users.create(name, None, admin=False)
        except KeyError:
            pass  # created meanwhile
    wanted: list[str] = []
    for g in hub_groups:
        if g in (ADMIN_GROUP, DEFAULT_GROUP) or not GROUPNAME.match(g):
            if g not in (ADMIN_GROUP, DEFAULT_GROUP):
                log.info("hub group %r is not a valid PAI group name (letters, digits, '_'); ignored", g)
            continue  # only the hub's admin flag makes an admin
        if groups.get(g) is None:
            vcs = [g] if g in virtual_clusters else []
            try:
                groups.create(g, f"JupyterHub group {g}", vcs, False, f"jupyterhub:{g}")
            except KeyError:
                pass
        wanted.append(g)
    if admin:
        wanted.append(ADMIN_GROUP)
    user = users.get(name)
    if user is None:
        return None
    if set(user["grouplist"]) != set(wanted) | {DEFAULT_GROUP}:
        groups.set_membership(name, wanted)
        user = users.get(name) or user
    if user["admin"] and not admin:
        log.warning("hub user %s is a PAI admin by a local account of the same name, but not a hub admin: "
                    "acting as a non-admin", name)
    return Principal(username=name, admin=admin, application=False,
                     virtual_clusters=frozenset(user["virtualCluster"]))
