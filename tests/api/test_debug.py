"""Debug terminals through the real server (pai_hub/api/debug.py): terminado's protocol over the
websocket, in a running task's environment, with output decoded as a stream."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest

from tests.server import Server, job_yaml, wait_state
from tests.terminal import connect, output_until_end, shell_session

#: Two ASCII bytes short of 64 KiB: the first "€" (3 bytes in UTF-8) straddles the 64 KiB mark, and
#: its followers straddle every read boundary of the PTY (4095 bytes) that does not fall between two.
PREFIX = "a" * 65534
EUROS = "\u20ac" * 4000


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("debug") / "data", args=("--simulated-gpus", "1"))
    server.start()
    yield server
    server.stop()
    server.kill_tasks()


def wait_task_running(client, framework: str, timeout: float = 30) -> None:
    """Until the job's task is running (a terminal opens only then, or while kept for debugging)."""
    deadline = time.monotonic() + timeout
    while True:
        detail = wait_state(client, framework, {"RUNNING"}, timeout)
        if detail["taskRoles"]["worker"]["taskStatuses"][0]["taskState"] == "RUNNING":
            return
        assert time.monotonic() < deadline, detail
        time.sleep(0.05)


def test_a_character_split_across_reads_arrives_whole(srv):
    with srv.client() as c:
        assert c.post("/api/v2/jobs", content=job_yaml("busy", ["sleep 600"])).status_code == 202
        wait_task_running(c, "admin~busy")
        url = srv.url.replace("http", "ws", 1) + "/api/v2/jobs/admin~busy/tasks/worker/0/terminal"
        program = "import sys; sys.stdout.write('a' * 65534 + chr(0x20ac) * 4000 + '.'); sys.stdout.flush()"
        try:
            out = asyncio.run(shell_session(url, {"Authorization": f"Bearer {srv.admin_token}"},
                                            f'{sys.executable} -c "{program}"; exit\n'))
        finally:
            c.put("/api/v2/jobs/admin~busy/executionType", json={"value": "STOP"})
    assert "\ufffd" not in out, f"{out.count(chr(0xFFFD))} characters lost to U+FFFD"
    assert PREFIX + EUROS + "." in out, "the output did not arrive as printed"


def test_malformed_messages_are_ignored(srv):
    with srv.client() as c:
        assert c.post("/api/v2/jobs", content=job_yaml("calm", ["sleep 600"])).status_code == 202
        wait_task_running(c, "admin~calm")
        url = srv.url.replace("http", "ws", 1) + "/api/v2/jobs/admin~calm/tasks/worker/0/terminal"
        try:
            out = asyncio.run(_session_with_noise(url, {"Authorization": f"Bearer {srv.admin_token}"}))
        finally:
            c.put("/api/v2/jobs/admin~calm/executionType", json={"value": "STOP"})
    assert "still-42" in out  # the shell's answer (its echo of the line reads still-$((40+2)))


async def _session_with_noise(url: str, headers: dict[str, str]) -> str:
    """A session whose client sends messages terminado's protocol does not have before its command."""
    conn = await connect(url, headers)
    for noise in ("not json", "[]", '["set_size", "x", 3]', '["stdin", 5]', '{"a": 1}', '["bogus"]'):
        conn.write_message(noise)
    conn.write_message(json.dumps(["stdin", "echo still-$((40+2)); exit\n"]))
    return await output_until_end(conn)
