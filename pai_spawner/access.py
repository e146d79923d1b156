"""How the spawner reaches PAI: one shared client per event loop, each call made as a hub user.

kubespawner shares one Kubernetes client per event loop among all its spawners; here the same
holds for :class:`~pai_client.AsyncPaiClient` (one connection pool for the whole hub). What differs
is the credential: every notebook job is submitted *as its user*, with a hub token of that user
(``pai_hub/api/hubauth.py``), so each call goes through :meth:`AsyncPaiClient.with_token` (the
same client and pool, acting with that user's token) instead of a client per user or request.
"""

from __future__ import annotations

import asyncio
import weakref

from pai_client import AsyncPaiClient

_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncPaiClient]] = \
    weakref.WeakKeyDictionary()


def shared_client(url: str) -> AsyncPaiClient:
    """The event loop's one client of the PAI service at ``url`` (made on first use). It is only
    ever used through :func:`as_user`, so its own credential (if the environment gives one) is
    never sent."""
    clients = _SHARED.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(url)
    if client is None:
        client = clients[url] = AsyncPaiClient(url, timeout=30)
    return client


def as_user(url: str, username: str, token: str) -> AsyncPaiClient:
    """The loop's shared client acting as ``username`` with their hub ``token``."""
    return shared_client(url).with_token(token, username)
