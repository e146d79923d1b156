"""``python -m benchmarks.history``: a control plane with a long history (issue 15).

Seeds ``--jobs`` finished jobs (default 1,000,000) through the real store code — batches of
Effects of ended jobs handed to ``pai_hub.store.jobs.persist``, each job with its attempt, task
attempt and events, as the loop commits them — then starts the real control plane on that data
directory (a subprocess, like benchmarks/local_server.py) and measures what a user of that history
waits for: the job list (first page, one user, a state and a VC, the 500th page), a job's detail,
the control plane's RSS, the time from start to serving, and the data directory's size. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.local_server import ISOLATION, free_port, job_text, terminate
from pai_hub.orchestrator.effects import Effects
from pai_hub.orchestrator.records import EventRecord, JobAttemptRecord, JobRecord, TaskRecord
from pai_hub.store import jobs as job_store
from pai_hub.store.db import open_store, sqlite_url

USERS = 50
BATCH = 5_000
TEXT = job_text("NAME", ["python train.py --epochs 3"], role="worker", image="python:3.11", instances=1,
                memory_mb=1024)


def finished_job(i: int, start: float, event_id: int) -> tuple[JobRecord, JobAttemptRecord, TaskRecord,
                                                                list[EventRecord]]:
    """Job ``i`` of the history, as the machine leaves a job that ran one task and ended."""
    user, name = f"u{i % USERS}", f"job-{i}"
    failed = i % 10 == 0
    state = "FAILED" if failed else "SUCCEEDED"
    t0 = start + i  # one submission a second, oldest first
    job = JobRecord(id=i + 1, framework_name=f"{user}~{name}", username=user, name=name,
                    virtual_cluster="default", state=state, config_yaml=TEXT.replace("NAME", name),
                    protocol={"name": name, "type": "job", "taskRoles": {"worker": {"instances": 1}}},
                    secrets={}, submitted_at=t0, sub_state="Completed", attempt_id=0, total_tasks=1,
                    total_task_roles=1, launched_at=t0 + 1, completed_at=t0 + 30, exit_code=1 if failed else 0)
    attempt = JobAttemptRecord(job.id, 0, state, t0, t0 + 1, t0 + 30, job.exit_code)
    task = TaskRecord(f"{job.id}.0.worker.0.0", job.id, 0, "worker", 0, 0, f"uid{job.id}", state, t0,
                      launch_state="ended", node="node1", ip="127.0.0.1", launched_at=t0 + 1, completed_at=t0 + 30,
                      exit_code=job.exit_code)
    reasons = ["JobSubmitted", "Placed", "TaskStarted", f"Task{state.capitalize()}", f"Job{state.capitalize()}"]
    events = [EventRecord(job.id, r, r, t0 + k, None, "Normal", event_id + k + 1) for k, r in enumerate(reasons)]
    return job, attempt, task, events


def seed(data: Path, jobs: int) -> float:
    """Store ``jobs`` finished jobs through the store's own commit path; seconds it took."""
    os.umask(0o077)  # the server refuses a data directory others can read
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = open_store(sqlite_url(data))
    started = time.perf_counter()
    start, event_id = time.time() - jobs - 3600, 0
    for first in range(0, jobs, BATCH):
        fx = Effects()
        for i in range(first, min(first + BATCH, jobs)):
            job, attempt, task, events = finished_job(i, start, event_id)
            event_id += len(events)
            fx.new_jobs.append(job)
            fx.attempts[(job.id, 0)] = attempt
            fx.new_tasks[task.task_id] = task
            fx.events.extend(events)
        job_store.persist(store, fx)
    store.close()
    return time.perf_counter() - started


def start_server(data: Path, log: Path) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_")}
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pai_hub.cli", "server", "--ip", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data), "--node-cpu", "4", "--isolation", ISOLATION],
        stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=env,  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(url + "/api/v2/info", timeout=2).status_code == 200:
                return proc, url, time.perf_counter() - began
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not come up; see {log}")
        time.sleep(0.02)


def timed(client: httpx.Client, path: str, params: dict | None = None, n: int = 50) -> dict[str, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(times[int(0.99 * (len(times) - 1))], 2)}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def measure(data: Path, jobs: int) -> dict:
    log = data.parent / "server.log"
    proc, url, first_start = start_server(data, log)
    token = (data / "admin-token").read_text().strip()
    out: dict = {"start_to_serving_s": round(first_start, 2)}
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            out["list_first_page"] = timed(c, "/api/v2/jobs", {"limit": 20})
            out["list_user"] = timed(c, "/api/v2/jobs", {"username": "u7", "limit": 20})
            out["list_state_vc"] = timed(c, "/api/v2/jobs", {"state": "FAILED", "vc": "default", "limit": 20})
            offset = min(499 * 20, max(jobs - 20, 0))
            t = time.perf_counter()
            c.get("/api/v2/jobs", params={"offset": offset, "limit": 20}).raise_for_status()
            out["page_500_cold_offset_ms"] = round((time.perf_counter() - t) * 1000, 2)
            # page by page, as a client does: each page continues from the last row of the one before
            pages = []
            for page in range(500):
                t = time.perf_counter()
                c.get("/api/v2/jobs", params={"offset": min(page * 20, offset), "limit": 20}).raise_for_status()
                pages.append((time.perf_counter() - t) * 1000)
            pages.sort()
            out["paging_to_page_500"] = {"p50_ms": round(statistics.median(pages), 2),
                                         "p99_ms": round(pages[int(0.99 * (len(pages) - 1))], 2)}
            out["page_500"] = timed(c, "/api/v2/jobs", {"offset": offset, "limit": 20})
            out["with_total_count"] = timed(c, "/api/v2/jobs", {"limit": 20, "withTotalCount": "true"}, n=10)
            rng = random.Random(1)
            details = []
            for _ in range(200):
                i = rng.randrange(jobs)
                t = time.perf_counter()
                c.get(f"/api/v2/jobs/u{i % USERS}~job-{i}").raise_for_status()
                details.append((time.perf_counter() - t) * 1000)
            details.sort()
            out["detail"] = {"p50_ms": round(statistics.median(details), 2),
                             "p99_ms": round(details[int(0.99 * (len(details) - 1))], 2)}
            dup = c.post("/api/v2/jobs", content=TEXT.replace("NAME", "job-0"))  # admin's own: a new name
            out["submit_after_history_status"] = dup.status_code
            out["rss_mb"] = rss_mb(proc.pid)
    finally:
        terminate(proc)
    proc, _, restart = start_server(data, log)
    out["restart_to_serving_s"] = round(restart, 2)
    out["rss_after_restart_mb"] = rss_mb(proc.pid)
    terminate(proc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="finished jobs to seed")
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pai-history-") as tmp:
        base = Path(args.dir or tmp)
        data = base / "data"
        seconds = seed(data, args.jobs)
        result = {"jobs": args.jobs, "seed_s": round(seconds, 1),
                  "seed_jobs_per_s": round(args.jobs / seconds), **measure(data, args.jobs)}
        result["data_dir_mb"] = round(sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) / 2**20, 1)
        result["data_dir_bytes_per_job"] = round(result["data_dir_mb"] * 2**20 / args.jobs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
