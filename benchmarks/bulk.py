"""Bulk submission: job arrays accepted into the store, and one array run to the end.

(a) **accept**: ``--accept-jobs`` (100,000) jobs submitted as arrays of ``--array-size`` (10,000),
one ``POST /api/v2/jobs/batch`` each, one after the other, into a node with one CPU slot: the jobs
sleep, so all but one stay WAITING and what is measured is acceptance (each answer is sent only
once its jobs are committed to the store). Reports jobs/s into the store and each request's time.

(b) **run**: one array of ``--run-jobs`` (10,000) trivial jobs (``true``) run to SUCCEEDED on a node
with ``--node-cpu`` slots (32, as ``benchmarks.throughput``); jobs/s end to end, from the request
to the last success, and the CPU per job of the control plane and of the launcher.

    python -m benchmarks.bulk [--accept-jobs 100000] [--array-size 10000] [--run-jobs 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.cpu import CpuMeter
from benchmarks.local_server import job_text, kill_left_tasks, pai_server
from benchmarks.throughput import peak_rss_mb


def array_body(name: str, commands: list[str], indices: str) -> bytes:
    """One job array request: a single-task CPU job and its indices."""
    text = job_text(name, commands, role="main", image="ubuntu:22.04", instances=1, memory_mb=64)
    return json.dumps({"job": text, "array": indices}).encode()


def submit(c: httpx.Client, body: bytes, expected: int) -> float:
    """Seconds until the server answered 202 for ``expected`` jobs (all stored by then)."""
    t0 = time.perf_counter()
    r = c.post("/api/v2/jobs/batch", content=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - t0
    if r.status_code != 202 or r.json()["count"] != expected:
        raise RuntimeError(f"batch refused: {r.status_code} {r.text[:300]}")
    return elapsed


def accept(url: str, token: str, jobs: int, array_size: int) -> dict:
    """(a): arrays one after the other; the jobs stay waiting behind one sleeping job."""
    requests = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as c:
        start = time.perf_counter()
        for first in range(0, jobs, array_size):
            count = min(array_size, jobs - first)
            body = array_body(f"accept{first}", ["sleep 3600"], f"0-{count - 1}")
            requests.append(submit(c, body, count))
        wall = time.perf_counter() - start
    return {
        "jobs": jobs,
        "requests": len(requests),
        "jobs_per_request": array_size,
        "wall_s": round(wall, 2),
        "jobs_per_s_into_store": round(jobs / wall, 1),
        "request_s_first": round(requests[0], 2),
        "request_s_last": round(requests[-1], 2),
        "request_s_max": round(max(requests), 2),
    }


def run(url: str, token: str, jobs: int) -> dict:
    """(b): one array of trivial jobs, from the request to the last SUCCEEDED."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as c:
        start = time.perf_counter()
        accepted = submit(c, array_body("run", ["true"], f"0-{jobs - 1}"), jobs)

        def count(state: str) -> int:
            r = c.get("/api/v2/jobs", params={"state": state, "withTotalCount": "true", "limit": 0})
            return r.json()["totalCount"]

        # one count every 100 ms: the poller must not load the server it measures
        while (done := count("SUCCEEDED,FAILED")) < jobs:
            time.sleep(0.1)
        finished = time.perf_counter()
        failed = count("FAILED")
    if failed:
        raise RuntimeError(f"{failed} jobs failed")
    return {
        "jobs": jobs,
        "accepted_s": round(accepted, 2),
        "wall_s": round(finished - start, 2),
        "jobs_per_s_end_to_end": round(jobs / (finished - start), 1),
        "succeeded": done,
    }


def allow_arrays_of(tmp: Path, size: int) -> None:
    """The server's largest array (``PaiHub.max_array_size``), in the data directory's pai_config.py."""
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True, mode=0o700)  # the server refuses a data directory others can read
    config = data / "pai_config.py"
    config.write_text(f"c.PaiHub.max_array_size = {size}\n")
    config.chmod(0o600)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accept-jobs", type=int, default=100_000)
    ap.add_argument("--array-size", type=int, default=10_000)
    ap.add_argument("--run-jobs", type=int, default=10_000)
    ap.add_argument("--node-cpu", type=int, default=32)
    ap.add_argument("--skip", choices=["accept", "run"], action="append", default=[])
    ap.add_argument("--base-dir", default="build",
                    help="where the throw-away data directories go (like a real install's, not /tmp)")
    args = ap.parse_args()
    Path(args.base_dir).mkdir(parents=True, exist_ok=True)
    result: dict = {}
    if "accept" not in args.skip:
        with tempfile.TemporaryDirectory(prefix="pai-bench-", dir=args.base_dir) as tmp:
            allow_arrays_of(Path(tmp), args.array_size)
            try:
                with pai_server(Path(tmp), 1) as (url, token, _):
                    result["accept"] = accept(url, token, args.accept_jobs, args.array_size)
            finally:
                kill_left_tasks(Path(tmp) / "data")
    if "run" not in args.skip:
        with tempfile.TemporaryDirectory(prefix="pai-bench-", dir=args.base_dir) as tmp:
            allow_arrays_of(Path(tmp), args.run_jobs)
            try:
                with pai_server(Path(tmp), args.node_cpu) as (url, token, proc):
                    meter = CpuMeter(proc.pid)
                    meter.start()
                    result["run"] = run(url, token, args.run_jobs)
                    meter.stop()
                    result["run"].update(meter.per_job_ms(args.run_jobs))
                    result["run"]["control_plane_peak_rss_mb"] = round(peak_rss_mb(proc.pid), 1)
                    result["run"]["node_cpu_slots"] = args.node_cpu
            finally:
                kill_left_tasks(Path(tmp) / "data")
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "platform": platform.platform()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
