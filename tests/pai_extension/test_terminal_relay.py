"""The terminal proxy relays messages as they are, both ways: it works whatever the task
terminal's wire protocol is (terminado's JSON messages today), with text kept text and binary
kept binary. PAI is a websocket echo here, served in the test's own event loop, that notes what
it was sent."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application
from tornado.websocket import WebSocketHandler, websocket_connect

from tests.pai_extension.jupyter import JupyterServer


class EchoPai:
    """``/api/v2/jobs/{job}/tasks/{role}/{index}/terminal``: every message comes back as it was.
    Its socket is bound at once (the Jupyter server is told where PAI is before it starts); it
    answers while :meth:`serving` runs in an event loop."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.authorization: list[str] = []
        self.sockets: list[socket.socket] = bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{self.sockets[0].getsockname()[1]}"

    def serving(self) -> HTTPServer:
        echo = self

        class Terminal(WebSocketHandler):
            def open(self, *args: str) -> None:
                echo.authorization.append(self.request.headers.get("Authorization", ""))

            def on_message(self, message: str | bytes) -> None:
                echo.received.append(message)
                self.write_message(message, binary=isinstance(message, bytes))

        server = HTTPServer(Application([(r"/api/v2/jobs/[^/]+/tasks/[^/]+/\d+/terminal", Terminal)]))
        server.add_sockets(self.sockets)
        return server


@pytest.fixture(scope="module")
def echo_and_jupyter(tmp_path_factory) -> Iterator[tuple[EchoPai, JupyterServer]]:
    echo = EchoPai()
    server = JupyterServer(tmp_path_factory.mktemp("relay"), {"PAI_URL": echo.url, "PAI_TOKEN": "alice-token"}).start()
    yield echo, server
    server.stop()
    for sock in echo.sockets:
        sock.close()


def test_messages_pass_unchanged_both_ways(echo_and_jupyter):
    echo, jupyter = echo_and_jupyter
    url = jupyter.url.replace("http", "ws", 1) + "/pai/api/jobs/alice~x/tasks/worker/0/terminal"
    sent: list[str | bytes] = [
        json.dumps(["set_size", 24, 80]),  # terminado's messages
        json.dumps(["stdin", "ls é\r"]),
        "plain text, not JSON",  # and anything else, as it is
        b"\x00\xffbinary",
    ]

    async def session() -> list[str | bytes]:
        pai = echo.serving()
        try:
            conn = await websocket_connect(HTTPRequest(url, headers=jupyter.headers))
            back = []
            for message in sent:
                await conn.write_message(message, binary=isinstance(message, bytes))
                back.append(await asyncio.wait_for(conn.read_message(), 10))
            conn.close()
            return back
        finally:
            pai.stop()

    assert asyncio.run(session()) == sent  # the same text as text, the same bytes as bytes
    assert echo.received == sent
    assert echo.authorization == ["Bearer alice-token"]  # PAI is called as the server's user
