"""One shared async client per event loop, for servers that call PAI on behalf of many users.

kubespawner shares one Kubernetes client per event loop among all its spawners; PaiSpawner, the hub
pages and the server extension do the same with :class:`AsyncPaiClient`: one connection pool for
every request on the loop (an ``httpx.AsyncClient`` belongs to the loop it was made on). A caller
that acts for a user takes :func:`as_user`, the same client and pool with that user's token, so the
API answers with what that user may see.
"""

from __future__ import annotations

import asyncio
import weakref

from .transport import AsyncPaiClient

#: loop -> (url, token) -> client
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str | None], AsyncPaiClient]] = \
    weakref.WeakKeyDictionary()


def shared_client(url: str, token: str | None = None, *, timeout: float = 30) -> AsyncPaiClient:
    """The running loop's one client of the PAI API at ``url`` (made on first use). Without
    ``token`` the client is meant for :func:`as_user` only, and no credential of its own is sent."""
    clients = _SHARED.setdefault(asyncio.get_running_loop(), {})
    key = (url, token)
    client = clients.get(key)
    if client is None:
        client = clients[key] = AsyncPaiClient(url, token, timeout=timeout)
    return client


def as_user(url: str, token: str, username: str | None = None) -> AsyncPaiClient:
    """The loop's shared client of ``url`` acting with a user's token (a PAI or hub token)."""
    return shared_client(url).with_token(token, username)


async def close_shared() -> None:
    """Close the running loop's shared clients (a server extension stopping, a test ending)."""
    clients = _SHARED.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await client.aclose()
