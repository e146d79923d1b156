"""1,000 trivial single-task jobs (``true``) submitted over REST and run to SUCCEEDED.

Reports jobs/s end to end (first submit to last success), submit latency p50/p99, the control
plane's peak RSS, and the CPU each job cost the control plane, the launcher and the load generator
(the figure to compare on a shared machine). The node offers 32 CPU slots, like the Slurm run it compares with (4 emulated
nodes × 8 CPUs, ~49 jobs/s end to end on this kind of machine; notes/peers.md).

    python -m benchmarks.throughput [--jobs 1000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from benchmarks.cpu import CpuMeter
from benchmarks.local_server import job_text, pai_server


def job(name: str) -> str:
    """One trivial single-task job: its task runs ``true``."""
    return job_text(name, ["true"], role="main", image="ubuntu:22.04", instances=1, memory_mb=64)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Connection:
    """A minimal keep-alive HTTP/1.1 client: the load generator shares the machine's two cores with
    the server, so it must cost far less per request than a full client library (like wrk)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.auth}"
                f"Content-Type: text/yaml\r\nContent-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run(url: str, token: str, jobs: int, concurrency: int) -> dict:
    host, _, port = url.removeprefix("http://").partition(":")
    latencies: list[float] = []
    names = iter(range(jobs))

    async def submitter() -> None:
        conn = Connection(host, int(port), token)
        try:
            for i in names:
                t0 = time.perf_counter()
                status, body = await conn.request("POST", "/api/v2/jobs", job(f"bench-{i}").encode())
                latencies.append(time.perf_counter() - t0)
                if status != 202:
                    raise RuntimeError(f"submit failed: {status} {body[:300]!r}")
        finally:
            conn.close()

    async def count(conn: Connection, state: str) -> int:
        _, body = await conn.request("GET", f"/api/v2/jobs?state={state}&withTotalCount=true&limit=0")
        return json.loads(body)["totalCount"]

    start = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    submitted = time.perf_counter()
    poller = Connection(host, int(port), token)
    try:
        # one count every 20 ms: the poller must not load the server it measures
        while (done := await count(poller, "SUCCEEDED,FAILED")) < jobs:
            await asyncio.sleep(0.02)
        if failed := await count(poller, "FAILED"):
            raise RuntimeError(f"{failed} jobs failed")
    finally:
        poller.close()
    finished = time.perf_counter()
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "jobs_per_s_end_to_end": round(jobs / (finished - start), 1),
        "submit_per_s": round(jobs / (submitted - start), 1),
        "wall_s": round(finished - start, 3),
        "submit_latency_ms_p50": round(percentile(latencies, 0.50) * 1000, 2),
        "submit_latency_ms_p99": round(percentile(latencies, 0.99) * 1000, 2),
        "succeeded": done,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--node-cpu", type=int, default=32)
    ap.add_argument("--base-dir", default="build",
                    help="where the throw-away data directory goes (like a real install's, not /tmp)")
    args = ap.parse_args()
    Path(args.base_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pai-bench-", dir=args.base_dir) as tmp, \
            pai_server(Path(tmp), args.node_cpu) as (url, token, proc):
        meter = CpuMeter(proc.pid)
        meter.start()
        result = asyncio.run(run(url, token, args.jobs, args.concurrency))
        meter.stop()
        result.update(meter.per_job_ms(args.jobs))
        result["control_plane_peak_rss_mb"] = round(peak_rss_mb(proc.pid), 1)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "platform": platform.platform()}
    result["node_cpu_slots"] = args.node_cpu
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
