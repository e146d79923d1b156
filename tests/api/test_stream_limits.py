"""One user cannot hold the server's connections: at most 16 open streams each, then 429.

Issue 17: every event stream (``GET /jobs/{fw}/events`` with ``Accept: text/event-stream``) and
every debug terminal held a socket and descriptors for as long as the client wanted, without any
bound per user. Real clients on real sockets against a real ``pai server``, a job that runs.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Iterator

import pytest

from tests.server import job_yaml, wait_state

LIMIT = 16  # ServerSettings.max_streams_per_user's default


def open_stream(server, token: str, path: str, extra: str = "") -> tuple[socket.socket, int, bytes]:
    """A raw GET whose answer is read only up to its headers; the socket is left open."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(65536)
        if not data:
            break
        head += data
    status = int(head.split(b" ", 2)[1]) if head else 0
    return sock, status, head


def events(server, token: str, framework: str) -> tuple[socket.socket, int, bytes]:
    return open_stream(server, token, f"/api/v2/jobs/{framework}/events", "Accept: text/event-stream\r\n")


def terminal(server, token: str, framework: str) -> tuple[socket.socket, int, bytes]:
    key = base64.b64encode(os.urandom(16)).decode()
    return open_stream(server, token, f"/api/v2/jobs/{framework}/tasks/worker/0/terminal",
                       f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                       "Sec-WebSocket-Version: 13\r\n")


@pytest.fixture(scope="module")
def running(server) -> Iterator[tuple[str, str]]:
    token = server.add_user("streamer")
    with server.client(token) as c:
        r = c.post("/api/v2/jobs", content=job_yaml("long", ["sleep 300"]))
        assert r.status_code == 202, r.text
        wait_state(c, "streamer~long", {"RUNNING"})
        yield token, "streamer~long"
        c.put("/api/v2/jobs/streamer~long/executionType", json={"value": "STOP"})


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()
    socks.clear()


def test_the_17th_stream_of_a_user_is_429_and_a_closed_one_frees_its_slot(server, running):
    token, framework = running
    held: list[socket.socket] = []
    try:
        for _ in range(LIMIT):
            sock, status, head = events(server, token, framework)
            held.append(sock)
            assert status == 200, head
        sock, status, head = events(server, token, framework)
        sock.close()
        assert status == 429, head
        sock, status, head = terminal(server, token, framework)  # terminals share the limit
        sock.close()
        assert status == 429, head
        # another user is not affected
        with server.client() as admin:
            sock, status, head = events(server, server.admin_token, framework)
            held.append(sock)
            assert status == 200, head
            assert admin.get("/api/v2/info").status_code == 200
        # a client that hangs up gives its slot back (without waiting for the job to end)
        held.pop(0).close()
        deadline = time.monotonic() + 10
        while True:
            sock, status, head = events(server, token, framework)
            held.append(sock)
            if status == 200:
                break
            assert status == 429 and time.monotonic() < deadline, head
            held.pop().close()
            time.sleep(0.1)
    finally:
        close_all(held)


def test_all_slots_come_back_after_the_clients_hang_up(server, running):
    token, framework = running
    held: list[socket.socket] = []
    try:
        for _ in range(3):  # three rounds of a full set: nothing leaks from a round to the next
            deadline = time.monotonic() + 10
            while len(held) < LIMIT:
                sock, status, head = events(server, token, framework)
                if status == 429 and time.monotonic() < deadline:
                    sock.close()
                    time.sleep(0.1)
                    continue
                held.append(sock)
                assert status == 200, head
            close_all(held)
    finally:
        close_all(held)


def test_the_429_names_the_limit(server, running):
    token, framework = running
    held = []
    try:
        for _ in range(LIMIT):
            sock, status, _ = events(server, token, framework)
            held.append(sock)
        deadline = time.monotonic() + 10
        while held and time.monotonic() < deadline:
            sock, status, head = open_stream(server, token, f"/api/v2/jobs/{framework}/events",
                                             "Accept: text/event-stream\r\nConnection: close\r\n")
            rest = b""
            while status == 429 and (data := sock.recv(65536)):
                rest += data
            sock.close()
            if status == 429:
                message = json.loads((head + rest).split(b"\r\n\r\n", 1)[1])["message"]
                assert f"{LIMIT} open streams" in message and "max_streams_per_user" in message
                return
            time.sleep(0.1)
        raise AssertionError("never refused")
    finally:
        close_all(held)


def test_an_open_terminal_holds_a_slot_until_its_websocket_closes(server, running):
    token, framework = running
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 10
        while True:  # slots of the earlier tests' clients may still be coming back
            sock, status, head = terminal(server, token, framework)
            if status == 101 or time.monotonic() > deadline:
                break
            sock.close()
            time.sleep(0.1)
        assert status == 101, head
        shell = sock
        deadline = time.monotonic() + 10
        while len(held) < LIMIT - 1:  # slots of the earlier tests' clients may still be coming back
            sock, status, head = events(server, token, framework)
            if status == 429 and time.monotonic() < deadline:
                sock.close()
                time.sleep(0.1)
                continue
            assert status == 200, head
            held.append(sock)
        sock, status, head = events(server, token, framework)
        sock.close()
        assert status == 429, head
        shell.close()
        deadline = time.monotonic() + 10
        while True:
            sock, status, head = events(server, token, framework)
            held.append(sock)
            if status == 200:
                break
            assert status == 429 and time.monotonic() < deadline, head
            held.pop().close()
            time.sleep(0.1)
    finally:
        close_all(held)
