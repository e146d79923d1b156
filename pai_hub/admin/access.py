"""How the hub pages reach the PAI API: one shared client per event loop, each call made as the
logged-in user.

The pages are clients of the REST API, like OpenPAI's web portal, so they use the one client
(:class:`~pai_client.AsyncPaiClient`) as PaiSpawner and the server extension do: one connection
pool for every page request on the loop (an ``httpx.AsyncClient`` belongs to the loop it was made
on), and :meth:`~pai_client.AsyncPaiClient.with_token` per request so the API answers with what
that user may see.
"""

from __future__ import annotations

import asyncio
import weakref

from pai_client import AsyncPaiClient

_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncPaiClient] = weakref.WeakKeyDictionary()


def pages_client(url: str) -> AsyncPaiClient:
    """The running loop's one client of this server's API at ``url`` (made on first use). The pages
    only use it through :func:`as_user`, so a credential of its own (from the environment) is never
    sent."""
    loop = asyncio.get_running_loop()
    client = _SHARED.get(loop)
    if client is None or client.url != url:
        client = _SHARED[loop] = AsyncPaiClient(url, timeout=30)
    return client


def as_user(url: str, token: str) -> AsyncPaiClient:
    """The loop's shared client acting with a user's Hub OAuth token (the API takes it as a hub
    token, ``pai_hub/api/hubauth.py``)."""
    return pages_client(url).with_token(token)
