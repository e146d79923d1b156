"""Refused POSTs answer with a message and leave the keep-alive connection usable (issue 17).

Before: an oversized chunked body got an empty ``400 Bad Request`` (tornado's own limit), and after
one 401 on ``POST /api/v2/jobs`` the server reset the connection (the unread body, and a
``data_received`` on a handler whose ``prepare`` had failed): 99 of 200 follow-up requests on the
same client got ECONNRESET. Each test here speaks HTTP/1.1 on one socket to a real ``pai server``.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import httpx

from tests.server import job_yaml

MB = 1 << 20


def chunks(total: int, size: int = 64 << 10) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        sent += part
        yield b"x" * part


def connection(server) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.connect()
    return conn


def assert_error(response: http.client.HTTPResponse, status: int, code: str) -> dict:
    body = response.read()
    assert response.status == status, (response.status, body[:200])
    error = json.loads(body)
    assert error["code"] == code and error["message"], error
    return error


def test_oversized_chunked_body_is_413_with_a_message_and_the_connection_stays(server):
    conn = connection(server)
    sock = conn.sock
    conn.request("POST", "/api/v2/jobs", body=chunks(3 * MB), encode_chunked=True,
                 headers={"Authorization": f"Bearer {server.admin_token}", "Content-Type": "text/yaml",
                          "Transfer-Encoding": "chunked"})
    error = assert_error(conn.getresponse(), 413, "PayloadTooLargeError")
    assert "larger than" in error["message"]
    conn.request("GET", "/api/v2/info")
    assert conn.getresponse().status == 200 and conn.sock is sock, "the connection was not kept"
    conn.close()


def test_batch_route_refuses_its_oversized_chunked_body_too(server):
    conn = connection(server)
    conn.request("POST", "/api/v2/jobs/batch", body=chunks(65 * MB, 1 * MB), encode_chunked=True,
                 headers={"Authorization": f"Bearer {server.admin_token}", "Transfer-Encoding": "chunked"})
    assert "max_batch_bytes" in assert_error(conn.getresponse(), 413, "PayloadTooLargeError")["message"]
    conn.close()


def test_an_endless_chunked_body_is_refused_at_once_and_closed(server):
    """Far past the limit the server answers without reading on, and closes the connection."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"POST /api/v2/jobs HTTP/1.1\r\nHost: pai\r\nTransfer-Encoding: chunked\r\n"
                 b"Authorization: Bearer " + server.admin_token.encode() + b"\r\n\r\n")
    try:
        for part in chunks(200 * MB):
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused (and closed) before all of it was sent: what we want
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except ConnectionResetError:
        pass
    sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), received[:300]
    assert b"Connection: close" in head
    assert json.loads(body)["code"] == "PayloadTooLargeError"


def test_a_401_on_post_jobs_keeps_the_connection(server):
    conn = connection(server)
    sock = conn.sock
    document = job_yaml("never", ["true"]).encode()
    for _ in range(100):
        conn.request("POST", "/api/v2/jobs", body=document, headers={"Authorization": "Bearer not-a-token"})
        assert_error(conn.getresponse(), 401, "UnauthorizedUserError")
        conn.request("GET", "/api/v2/jobs", headers={"Authorization": f"Bearer {server.admin_token}"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    assert conn.sock is sock, "the connection was replaced"
    conn.close()


def test_a_401_on_get_jobs_keeps_the_connection(server):
    """GET /jobs is a streamed-body route too: a refusal raised before its (empty) body was read made
    tornado drop the connection after answering, without ``Connection: close`` (the next request on
    it was reset)."""
    conn = connection(server)
    sock = conn.sock
    for _ in range(50):
        conn.request("GET", "/api/v2/jobs?token=x", headers={"Authorization": "Bearer not-a-token"})
        assert_error(conn.getresponse(), 401, "UnauthorizedUserError")
        conn.request("GET", "/api/v2/jobs")
        assert_error(conn.getresponse(), 401, "UnauthorizedUserError")
        conn.request("GET", "/api/v2/info")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    assert conn.sock is sock, "the connection was replaced"
    conn.close()


def test_200_follow_ups_on_one_httpx_client_after_401s(server):
    document = job_yaml("never", ["true"])
    errors = 0
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(200):
            try:
                r = client.post("/api/v2/jobs", content=document, headers={"Authorization": "Bearer bad"})
                assert r.status_code == 401
                assert client.get("/api/v2/info").status_code == 200
            except httpx.TransportError:
                errors += 1
    assert errors == 0


def test_the_job_still_submits_after_a_refusal_on_the_same_connection(server):
    conn = connection(server)
    headers = {"Authorization": f"Bearer {server.admin_token}", "Content-Type": "text/yaml"}
    conn.request("POST", "/api/v2/jobs", body=chunks(2 * MB), encode_chunked=True,
                 headers={**headers, "Transfer-Encoding": "chunked"})
    assert_error(conn.getresponse(), 413, "PayloadTooLargeError")
    conn.request("POST", "/api/v2/jobs", body=job_yaml("after-refusal", ["true"]).encode(), headers=headers)
    response = conn.getresponse()
    assert response.status == 202, response.read()
    response.read()
    conn.close()
