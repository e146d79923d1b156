"""How the spawner reaches PAI: one shared client per event loop, each call made as a hub user.

kubespawner shares one Kubernetes client per event loop among all its spawners; here the same
holds for :class:`~pai_client.AsyncPaiClient` (one connection pool for the whole hub). What differs
is the credential: every notebook job is submitted *as its user*, with a hub token of that user
(``pai_hub/api/hubauth.py``), so :class:`UserPai` sends the user's token with each request instead
of giving each user a client of their own.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent

from pai_client import API, AsyncPaiClient, PaiError

_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncPaiClient]] = \
    weakref.WeakKeyDictionary()


def shared_client(url: str) -> AsyncPaiClient:
    """The event loop's one client of the PAI service at ``url`` (made on first use).

    It carries no credential of its own that matters: every call through :class:`UserPai` names
    its user's token."""
    clients = _SHARED.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(url)
    if client is None:
        client = clients[url] = AsyncPaiClient(url, "-", timeout=30)
    return client


def _error(r: httpx.Response) -> PaiError:
    try:
        body = r.json()
        return PaiError(r.status_code, body.get("code", "Error"), body.get("message", r.text))
    except ValueError:
        return PaiError(r.status_code, "Error", r.text.strip() or r.reason_phrase)


class UserPai:
    """Calls to PAI as one hub user, through the loop's shared client."""

    def __init__(self, client: AsyncPaiClient, token: Callable[[], str]) -> None:
        self.client = client
        self.token = token

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**(extra or {}), "Authorization": f"Bearer {self.token()}"}

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """The decoded answer; a refusal or an unreachable server is a :class:`PaiError`."""
        return await self.client.request(method, path, headers=self._headers(headers), **kwargs)

    async def job(self, framework: str) -> dict[str, Any]:
        return await self.request("GET", self.client.job_path(framework))

    async def stop(self, framework: str) -> dict[str, Any]:
        return await self.request("PUT", self.client.job_path(framework) + "/executionType", json={"value": "STOP"})

    async def jobs(self, **filters: Any) -> list[dict[str, Any]]:
        return await self.request("GET", f"{API}/jobs", params={k: v for k, v in filters.items() if v})

    async def events(self, framework: str) -> AsyncIterator[ServerSentEvent]:
        """The job's events as server-sent events (past ones first, then live ones; the last is
        ``event: end``); a refusal is a :class:`PaiError`, a broken stream an ``httpx.HTTPError``."""
        path = self.client.job_path(framework) + "/events"
        async with self.client.open_stream("GET", path, headers=self._headers({"Accept": "text/event-stream"})) as r:
            if r.status_code >= 400:
                await r.aread()
                raise _error(r)
            async for event in EventSource(r).aiter_sse():
                yield event
