"""JupyterHub API tokens on the PAI API, HubAuth-style, and the mirror of hub users into the store.

When the control plane runs as a JupyterHub service, a caller may present a hub API token
(``Authorization: token X`` or ``Bearer X``) instead of a PAI application token. We ask the hub
who it is (``GET /hub/api/user`` with that token), require that the token may access this service
(``access:services`` or ``access:services!service=<name>``, as ``HubAuth`` checks access scopes),
then read the user's full model with the service's own token (admin flag and groups, which a
narrow token cannot see) and mirror it into the store:

* the user is created on first sight (no password: under the hub, the hub logs people in);
* hub admins are members of PAI's admin group, others are not;
* each hub group becomes a PAI group of the same name (created on first sight; a group named like
  a virtual cluster grants that VC, as OpenPAI's groups do); the user's memberships are exactly
  their hub groups plus ``default`` (plus the admin group for admins).

Answers are cached per token for ``PaiHub.hub_token_cache_seconds`` (a refusal for a few
seconds), so the hub is asked at most once per token and TTL, without blocking the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any
from urllib.parse import quote

import httpx

from ..store.users import ADMIN_GROUP, DEFAULT_GROUP, Principal

log = logging.getLogger("pai_hub.hubauth")

GROUPNAME = re.compile(r"^[A-Za-z0-9_]+$")
REFUSAL_SECONDS = 5.0
MAX_CACHE = 10_000


class HubTokenAuth:
    """Resolves hub API tokens to principals; one per control plane (see :func:`hub_principal`)."""

    def __init__(self, pai: Any) -> None:
        self.pai = pai
        self.api_url = pai.hub_api_url.rstrip("/")
        self.service_name = pai.hub_service_name
        self.ttl = float(pai.hub_token_cache_seconds)
        self._http = httpx.AsyncClient(timeout=10.0)
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    async def resolve(self, token: str) -> Principal | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = await self._ask_hub(token)
        if len(self._cache) >= MAX_CACHE:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
        self._cache[key] = (principal, now + (self.ttl if principal is not None else REFUSAL_SECONDS))
        return principal

    def forget(self) -> None:
        self._cache.clear()

    # -- the hub ------------------------------------------------------------------------------
    async def _get(self, path: str, token: str) -> httpx.Response | None:
        try:
            return await self._http.get(self.api_url + path, headers={"Authorization": f"token {token}"})
        except httpx.HTTPError as exc:
            log.warning("cannot reach the hub at %s: %s", self.api_url, exc)
            return None

    async def _ask_hub(self, token: str) -> Principal | None:
        r = await self._get("/user", token)
        if r is None or r.status_code != 200:
            return None
        model = r.json()
        if model.get("kind", "user") != "user" or not isinstance(model.get("name"), str):
            return None  # services (the culler, ourselves) are not PAI users
        if not self._may_access(set(model.get("scopes") or [])):
            log.info("hub token of %s lacks access:services!service=%s", model["name"], self.service_name)
            return None
        name = model["name"]
        full = await self._get(f"/users/{quote(name, safe='')}", self.pai.hub_api_token)
        if full is not None and full.status_code == 200:
            model = full.json()
        else:
            log.warning("cannot read hub user %s with the service token (needs read:users); "
                        "treating it as a non-admin without groups", name)
            model = {"name": name, "admin": False, "groups": model.get("groups") or []}
        return mirror_user(self.pai, name, bool(model.get("admin")), list(model.get("groups") or []))

    def _may_access(self, scopes: set[str]) -> bool:
        if not self.service_name:
            return True
        return bool({"access:services", f"access:services!service={self.service_name}"} & scopes)


def mirror_user(pai: Any, name: str, admin: bool, hub_groups: list[str]) -> Principal | None:
    """Create or update the PAI user ``name`` from the hub's model; returns its principal."""
    users, groups = pai.users, pai.groups
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
            vcs = [g] if g in pai.virtual_clusters else []
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
    return Principal(username=name, admin=bool(user["admin"]), application=False,
                     virtual_clusters=frozenset(user["virtualCluster"]))


async def hub_principal(pai: Any, header: str) -> Principal | None:
    """The principal of a hub API token in ``header`` (``token X`` or ``Bearer X``), or None.

    None as well when this control plane does not run under a hub (no ``hub_api_url``).
    """
    if not getattr(pai, "hub_api_url", ""):
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() not in ("token", "bearer") or not value:
        return None
    auth = getattr(pai, "_hub_token_auth", None)
    if auth is None:
        auth = HubTokenAuth(pai)
        pai._hub_token_auth = auth
    return await auth.resolve(value)
