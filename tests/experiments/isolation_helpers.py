"""Real Unix accounts and real connections made as them, for the isolation tests of services.

``make_accounts`` creates accounts through ``pai_runtime.accounts.ensure_account`` (the platform's own
way) and deletes them after; ``probe`` makes one HTTP request to a loopback port as an account's uid
(``setpriv``), with the system's Python (any account may run it; the project's may live under /root).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pai_runtime.accounts import Account, ensure_account
from pai_runtime.isolation import IsolationPolicy
from tests.requirements import require_tool

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
PROBE = r"""
import http.client, json, sys
port, method, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
try:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path)
    r = c.getresponse()
    print(json.dumps({"status": r.status, "body": r.read(4000).decode(errors="replace")}))
except OSError as exc:
    print(json.dumps({"error": type(exc).__name__, "detail": str(exc)}))
"""


def require_isolation_tools() -> None:
    """The tools these tests drive, or a failure saying how to get them (never a skip)."""
    require_tool("iptables", "apt-get install iptables (make isolation-tools)")
    require_tool("iptables-restore", "apt-get install iptables (make isolation-tools)")
    require_tool("setpriv", "apt-get install util-linux")
    require_tool("useradd", "apt-get install passwd")
    if shutil.which("python3", path=SYSTEM_PATH) is None:
        pytest.fail("no system python3 in /usr/bin (apt-get install python3): the probes run as other "
                    "accounts, which may not enter the project's interpreter", pytrace=False)


def system_python() -> str:
    found = shutil.which("python3", path=SYSTEM_PATH)
    assert found
    return found


def test_policy(home_root: Path, prefix: str) -> IsolationPolicy:
    """A ``users`` policy whose created accounts are ``<prefix>-<name>``, homes under ``home_root``."""
    return IsolationPolicy(mode="users", account_template=prefix + "-{username}", home_root=str(home_root))


test_policy.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@contextmanager
def make_accounts(policy: IsolationPolicy, *names: str) -> Iterator[dict[str, Account]]:
    """The PAI users' accounts, created with the platform's ensure_account; deleted after."""
    made: dict[str, Account] = {}
    try:
        for name in names:
            made[name] = ensure_account(policy, name)
        yield made
    finally:
        for account in made.values():
            subprocess.run(["userdel", account.name], capture_output=True, timeout=60)
            subprocess.run(["groupdel", account.name], capture_output=True, timeout=60)


def probe(account: Account, port: int, method: str = "GET", path: str = "/") -> dict[str, Any]:
    """One HTTP request to 127.0.0.1:``port`` made by a process running as ``account``:
    ``{"status", "body"}``, or ``{"error": "ConnectionRefusedError", ...}`` when it cannot connect."""
    done = subprocess.run(["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--clear-groups",
                           system_python(), "-I", "-c", PROBE, str(port), method, path],
                          capture_output=True, text=True, timeout=60, cwd="/", env={"PATH": SYSTEM_PATH})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@contextmanager
def http_listener() -> Iterator[int]:
    """A tiny HTTP server of the platform (this process) on 127.0.0.1: answers 200 "hello"."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        try:
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread
        except OSError:
            pass
        server.close()
        thread.join(5)
