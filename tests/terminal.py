"""Debug terminals in tests: a shell over a task-terminal websocket, or a backend's terminal itself.

The websocket speaks terminado's JSON messages: the server says ``["setup", {}]`` first, then
``["stdout", text]`` as the shell prints and ``["disconnect", 1]`` when it ends; the client sends
``["set_size", rows, cols]`` and ``["stdin", text]``.
"""

from __future__ import annotations

import asyncio
import json
import select
import time
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect


async def connect(url: str, headers: dict[str, str], timeout: float = 20) -> WebSocketClientConnection:
    """Open the terminal and wait until the server has set it up."""
    try:
        conn = await websocket_connect(HTTPRequest(url, headers=headers))
    except HTTPClientError as exc:  # say why the server refused the terminal, not only the status
        body = exc.response.body.decode(errors="replace") if exc.response is not None else ""
        raise HTTPClientError(exc.code, f"terminal {url} refused: {body}", exc.response) from None
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


def terminal_output(terminal: Any, script: str, timeout: float = 30) -> str:
    """Type ``script`` into a backend's terminado terminal (``exec_shell``) and return what it printed
    until it ended. Blocking: call it in a thread from async code."""
    terminal.ptyproc.write(script)
    out = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([terminal.ptyproc.fd], [], [], 0.2)[0]:
            try:
                out += terminal.ptyproc.read(65536)
            except EOFError:
                terminal.ptyproc.close()
                return out
    terminal.killpg()
    raise AssertionError(f"the shell did not end: {out!r}")
