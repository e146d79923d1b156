"""Log reads cost one chunk of memory, whatever the log's size (issue 17).

A 16 KiB tail of a 1 GB log used to read the whole file into the server (+950 MB, 2.7 s). The log
here is a real task's stdout, grown to 200 MB (sparse, with a marker at its end); the server's
peak RSS (``VmHWM``) may grow by less than 50 MB over a tail and over a whole streamed read.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from pai_hub.api import logs
from tests.server import job_yaml, wait_state

SIZE = 200 << 20
MARKER = b"\nTHE-END-OF-A-HUGE-LOG\n"
TASK = "/api/v2/jobs/admin~biglog/attempts/0/taskRoles/worker/taskIndex/0/attempts/0/logs"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.fixture(scope="module")
def huge_log(server):
    with server.client() as c:
        assert c.post("/api/v2/jobs", content=job_yaml("biglog", ["echo biglog-start"])).status_code == 202
        wait_state(c, "admin~biglog", {"SUCCEEDED"})
    stdout = [p for p in server.data_dir.rglob("stdout") if p.read_bytes() == b"biglog-start\n"]
    assert len(stdout) == 1, stdout
    path = stdout[0]
    with open(path, "r+b") as f:
        f.truncate(SIZE - len(MARKER))
        f.seek(0, os.SEEK_END)
        f.write(MARKER)
    assert path.stat().st_size == SIZE
    return path


def test_tail_of_a_200mb_log_seeks_from_the_end(server, huge_log):
    with server.client() as c:
        c.get("/api/v2/jobs")  # warm up the connection and the handler
        before = peak_rss_mb(server.proc.pid)
        started = time.monotonic()
        r = c.get(f"{TASK}/stdout", params={"tail-mode": "true"})
        elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text[:200]
    assert len(r.content) == logs.TAIL_BYTES and r.content.endswith(MARKER)
    assert int(r.headers["X-Log-Offset"]) == SIZE
    grew = peak_rss_mb(server.proc.pid) - before
    assert grew < 50, f"server peak RSS grew {grew:.0f} MB for a 16 KiB tail"
    assert elapsed < 0.5, f"a 16 KiB tail took {elapsed:.2f} s"


def test_offset_near_the_end_and_past_it(server, huge_log):
    with server.client() as c:
        r = c.get(f"{TASK}/stdout", params={"offset": SIZE - 5})
        assert r.content == MARKER[-5:] and r.headers["X-Log-Offset"] == str(SIZE)
        r = c.get(f"{TASK}/stdout", params={"offset": SIZE + 100})
        assert r.content == b"" and r.headers["X-Log-Offset"] == str(SIZE + 100)
        r = c.get(f"{TASK}/stdout", params={"offset": SIZE - 10, "tail-mode": "true"})
        assert r.content == MARKER[-10:]


def test_a_whole_200mb_log_is_streamed_in_chunks(server, huge_log):
    before = peak_rss_mb(server.proc.pid)
    received, last = 0, b""
    with server.client() as c, c.stream("GET", f"{TASK}/stdout") as r:
        assert r.status_code == 200 and r.headers["X-Log-Offset"] == str(SIZE)
        for part in r.iter_raw():
            received += len(part)
            last = (last + part)[-len(MARKER):]
    assert received == SIZE and last == MARKER
    grew = peak_rss_mb(server.proc.pid) - before
    assert grew < 50, f"server peak RSS grew {grew:.0f} MB streaming a 200 MB log"


class BytesBackend:
    """A backend with ``read_log`` only (no ``log_size``): the size must be found by seeks."""

    def __init__(self, data: bytes) -> None:
        self.data, self.reads = data, 0

    def read_log(self, task_id: str, name: str, offset: int = 0, limit: int | None = None) -> bytes:
        self.reads += 1
        return self.data[offset:None if limit is None else offset + limit]


async def _direct(fn, *args):
    return fn(*args)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 1000, 16384, (1 << 20) + 7])
def test_size_is_probed_with_a_logarithmic_number_of_reads(size):
    backend = BytesBackend(b"x" * size)
    assert asyncio.run(logs.log_size(_direct, backend, "t", "stdout")) == size
    assert backend.reads <= 2 * max(size, 1).bit_length() + 3


def test_range_and_chunks():
    assert logs.byte_range(100_000, 0, tail=True) == (100_000 - logs.TAIL_BYTES, 100_000)
    assert logs.byte_range(100, 0, tail=True) == (0, 100)
    assert logs.byte_range(100, 500, tail=False) == (500, 500)
    backend = BytesBackend(bytes(range(256)) * 4000)

    async def collect() -> list[bytes]:
        return [c async for c in logs.chunks(_direct, backend, "t", "all", 10, 1_000_000)]

    parts = asyncio.run(collect())
    assert all(len(p) <= logs.CHUNK for p in parts)
    assert b"".join(parts) == backend.data[10:1_000_000]
