"""A job's events as server-sent events (``GET .../events`` with ``Accept: text/event-stream``),
read with httpx-sse for both transports.

The server sends past events first, then new ones as they happen; the stream's last event is
``event: end`` with ``{"state": <final state>}``. Keep-alive comments are skipped by httpx-sse.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse

from .errors import PaiError, raise_for

# the server sends a keep-alive at least every 15 s: a minute of silence is a broken stream
STREAM_TIMEOUT = httpx.Timeout(30.0, read=60.0)


@dataclass(frozen=True)
class SseEvent:
    """One event of a job's stream: ``event`` is ``"message"`` (``data`` is a job event, OpenPAI's
    fields) or ``"end"`` (``data`` is ``{"state": <final state>}``)."""

    event: str
    data: Any


def job_event(sse: ServerSentEvent) -> SseEvent:
    """An event as it arrived, its data decoded from JSON (text when it is not JSON)."""
    try:
        data: Any = json.loads(sse.data)
    except ValueError:
        data = sse.data
    return SseEvent(sse.event or "message", data)


def _unreachable(url: str, exc: Exception) -> PaiError:
    return PaiError(0, "ConnectionError", f"cannot reach {url}: {exc}")


def iter_events(http: httpx.Client, path: str, headers: dict[str, str]) -> Iterator[SseEvent]:
    """The events of ``path`` until ``end``; a refusal or a broken stream is a :class:`PaiError`."""
    try:
        with connect_sse(http, "GET", path, headers=headers, timeout=STREAM_TIMEOUT) as source:
            if source.response.status_code >= 400:
                source.response.read()
                raise_for(source.response)
            for sse in source.iter_sse():
                yield (event := job_event(sse))
                if event.event == "end":
                    return
    except httpx.HTTPError as exc:
        raise _unreachable(str(http.base_url), exc) from None


async def aiter_events(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> AsyncIterator[SseEvent]:
    """:func:`iter_events` over the asynchronous transport."""
    try:
        async with aconnect_sse(http, "GET", path, headers=headers, timeout=STREAM_TIMEOUT) as source:
            if source.response.status_code >= 400:
                await source.response.aread()
                raise_for(source.response)
            async for sse in source.aiter_sse():
                yield (event := job_event(sse))
                if event.event == "end":
                    return
    except httpx.HTTPError as exc:
        raise _unreachable(str(http.base_url), exc) from None
