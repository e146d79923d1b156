"""1,000 trivial single-task jobs (``true``) submitted over REST and run to SUCCEEDED.

Reports jobs/s end to end (first submit to last success), submit latency p50/p99, and the control
plane's peak RSS. The node offers 32 CPU slots, like the Slurm run it compares with (4 emulated
nodes × 8 CPUs, ~49 jobs/s end to end on this kind of machine; notes/peers.md).

    python -m benchmarks.throughput [--jobs 1000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

JOB = """protocolVersion: 2
name: {name}
type: job
prerequisites:
  - {{name: image, type: dockerimage, uri: "ubuntu:22.04"}}
taskRoles:
  main:
    instances: 1
    dockerImage: image
    resourcePerInstance: {{cpu: 1, memoryMB: 64, gpu: 0}}
    commands: ["true"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(url: str, token: str, jobs: int, concurrency: int) -> dict:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/yaml"}
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(jobs):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:

        async def submitter() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.perf_counter()
                r = await client.post("/api/v2/jobs", content=JOB.format(name=f"bench-{i}"))
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 202:
                    raise RuntimeError(f"submit failed: {r.status_code} {r.text}")

        start = time.perf_counter()
        await asyncio.gather(*(submitter() for _ in range(concurrency)))
        submitted = time.perf_counter()
        done = 0
        while done < jobs:
            r = await client.get("/api/v2/jobs", params={"state": "SUCCEEDED", "withTotalCount": "true",
                                                         "limit": 0})
            done = r.json()["totalCount"]
            failed = (await client.get("/api/v2/jobs", params={"state": "FAILED", "withTotalCount": "true",
                                                                "limit": 0})).json()["totalCount"]
            if failed:
                raise RuntimeError(f"{failed} jobs failed")
            if done < jobs:
                await asyncio.sleep(0.02)
        finished = time.perf_counter()
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "jobs_per_s_end_to_end": round(jobs / (finished - start), 1),
        "submit_per_s": round(jobs / (submitted - start), 1),
        "wall_s": round(finished - start, 3),
        "submit_latency_ms_p50": round(percentile(latencies, 0.50) * 1000, 2),
        "submit_latency_ms_p99": round(percentile(latencies, 0.99) * 1000, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--node-cpu", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pai-bench-") as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "pai_hub.cli", "server", "--ip", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data), "--node-cpu", str(args.node_cpu)],
            stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "server.log", "wb"), env=env,  # noqa: SIM115
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/api/v2/info", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("server did not start")
                time.sleep(0.05)
            token = (data / "admin-token").read_text().strip()
            result = asyncio.run(run(url, token, args.jobs, args.concurrency))
            result["control_plane_peak_rss_mb"] = round(peak_rss_mb(proc.pid), 1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "platform": platform.platform()}
    result["node_cpu_slots"] = args.node_cpu
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
