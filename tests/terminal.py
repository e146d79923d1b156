"""A shell over a task-terminal websocket, for tests of debug terminals.

The websocket speaks terminado's JSON messages: the server says ``["setup", {}]`` first, then
``["stdout", text]`` as the shell prints and ``["disconnect", 1]`` when it ends; the client sends
``["set_size", rows, cols]`` and ``["stdin", text]``.
"""

from __future__ import annotations

import asyncio
import json

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect


async def connect(url: str, headers: dict[str, str], timeout: float = 20) -> WebSocketClientConnection:
    """Open the terminal and wait until the server has set it up."""
    conn = await websocket_connect(HTTPRequest(url, headers=headers))
    first = await asyncio.wait_for(conn.read_message(), timeout)
    assert first is not None and json.loads(first) == ["setup", {}], first
    return conn


async def output_until_end(conn: WebSocketClientConnection, timeout: float = 20) -> str:
    """Everything the shell prints from now until it ends."""
    out = ""
    while (msg := await asyncio.wait_for(conn.read_message(), timeout)) is not None:
        kind, *rest = json.loads(msg)
        if kind == "stdout":
            out += rest[0]
        if kind == "disconnect":
            break
    return out


async def shell_session(url: str, headers: dict[str, str], script: str, timeout: float = 20) -> str:
    """Send ``script`` to the shell at ``url`` once it is set up, and return everything it printed
    until it disconnects."""
    conn = await connect(url, headers, timeout)
    conn.write_message(json.dumps(["set_size", 24, 100]))
    conn.write_message(json.dumps(["stdin", script]))
    return await output_until_end(conn, timeout)
