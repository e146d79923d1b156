"""A shell over a task-terminal websocket (terminado's JSON messages), for tests of debug terminals."""

from __future__ import annotations

import asyncio
import json

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


async def shell_session(url: str, headers: dict[str, str], script: str) -> str:
    """Send ``script`` to the shell at ``url`` and return everything it printed until it disconnects."""
    conn = await websocket_connect(HTTPRequest(url, headers=headers))
    conn.write_message(json.dumps(["set_size", 24, 100]))
    conn.write_message(json.dumps(["stdin", script]))
    out = ""
    while (msg := await asyncio.wait_for(conn.read_message(), 20)) is not None:
        kind, *rest = json.loads(msg)
        if kind == "stdout":
            out += rest[0]
        if kind == "disconnect":
            break
    return out
