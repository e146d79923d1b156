"""Out of file descriptors, the server waits instead of logging a traceback per accept attempt.

Issue 17: at its descriptor limit the server's accept loop logged ``OSError: [Errno 24] Too many
open files`` with a traceback for every attempt, 480,000 of them (277 MB) in 15 s. Here a server
limited to 64 descriptors (``prlimit``) gets 200 connections at once: its log must stay small and,
once the connections close, it must serve again.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.local_server import free_port
from tests.requirements import require_tool
from tests.server import Server

CONNECTIONS = 200
MAX_LOG = 100_000
TINY_SERVER = r"""
import asyncio, logging, sys
from tornado import web
from pai_hub.api.httpserver import PaiHTTPServer

class Hello(web.RequestHandler):
    def get(self):
        self.write("hello")

async def main():
    logging.basicConfig(level=logging.INFO)
    PaiHTTPServer(web.Application([(r"/", Hello)])).listen(int(sys.argv[1]), "127.0.0.1")
    print("listening", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def flood(port: int, log: Path, grown_from: int) -> int:
    """Open ``CONNECTIONS`` connections (those the kernel's backlog cannot take time out), hold them
    while the server is out of descriptors, and return how much its log grew meanwhile."""
    held = []
    try:
        for _ in range(CONNECTIONS):
            sock = socket.socket()
            sock.settimeout(2)
            try:
                sock.connect(("127.0.0.1", port))
            except OSError:
                sock.close()
                break
            held.append(sock)
        assert len(held) > 64, f"only {len(held)} connections: the server never ran out of descriptors"
        time.sleep(3)  # the old accept loop wrote ~10 MB a second here
        return log.stat().st_size - grown_from
    finally:
        for sock in held:
            sock.close()


def serves_again(url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not serve again after the connections closed"
        time.sleep(0.2)


def test_the_accept_loop_backs_off_when_descriptors_run_out(tmp_path):
    prlimit = require_tool("prlimit", "apt-get install util-linux")
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([prlimit, "--nofile=64:64", sys.executable, "-c", TINY_SERVER, str(port)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 20
        while b"listening" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        grew = flood(port, log, log.stat().st_size)
        text = log.read_text(errors="replace")
        assert grew < MAX_LOG, f"the log grew by {grew} bytes: {text[-2000:]}"
        assert "Traceback" not in text, text[-2000:]
        assert "cannot accept connections" in text  # said once, with what to do
        serves_again(f"http://127.0.0.1:{port}/")
        time.sleep(0.2)
        assert "accepting connections again" in log.read_text(errors="replace")
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_pai_server_out_of_descriptors_keeps_its_log_small_and_recovers(tmp_path):
    prlimit = require_tool("prlimit", "apt-get install util-linux")
    srv = Server(tmp_path / "data", args=("--simulated-gpus", "0"))
    srv.data_dir.mkdir(mode=0o700)
    srv.start()
    try:
        assert srv.proc is not None
        # the limit from now on (the server itself started with ordinary limits)
        subprocess.run([prlimit, "--pid", str(srv.proc.pid), "--nofile=64:64"], check=True)
        log = tmp_path / f"server-{srv.port}.log"
        grew = flood(srv.port, log, log.stat().st_size)
        assert grew < MAX_LOG, f"the log grew by {grew} bytes"
        serves_again(srv.url + "/api/v2/info")
        with srv.client() as c:
            assert c.get("/api/v2/jobs").status_code == 200
    finally:
        srv.stop()
        srv.kill_tasks()
