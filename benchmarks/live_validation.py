"""How fast the Lab's submission panel hears back while you type: dry-run submissions
(``POST /api/v2/jobs?dryRun=true``), one at a time as the panel sends them, straight to PAI and through
a real Jupyter server's pai_extension (the path the browser takes), against real submissions.

    python -m benchmarks.live_validation [--requests 300]
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

from benchmarks.local_server import job_text, jupyter_with_pai, pai_server
from benchmarks.throughput import percentile


def job(name: str) -> str:
    """A gang of two with parameters and secrets: what the Lab's panel validates as a user types."""
    return job_text(name, ["echo <% $parameters.lr %> <% $secrets.key %>", "sleep 0"], role="worker",
                    image="python:3.11", instances=2, memory_mb=256,
                    header="parameters: {lr: 0.01, epochs: 3}\nsecrets: {key: s3cret}\n")


def timed(client: httpx.Client, path: str, n: int, dry_run: bool, prefix: str) -> dict:
    samples = []
    for i in range(n):
        body = job(f"{prefix}-{i}")
        t0 = time.perf_counter()
        r = client.post(path, content=body, params={"dryRun": "true"} if dry_run else None,
                        headers={"Content-Type": "text/yaml"})
        samples.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == (200 if dry_run else 202), r.text
    return {"requests": n, "p50_ms": round(percentile(samples, 0.5), 2),
            "p99_ms": round(percentile(samples, 0.99), 2), "max_ms": round(max(samples), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--base-dir", default="build")
    args = ap.parse_args()
    Path(args.base_dir).mkdir(parents=True, exist_ok=True)
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="pai-bench-", dir=args.base_dir) as tmp, \
            pai_server(Path(tmp), 32) as (url, token, _), \
            jupyter_with_pai(Path(tmp), url, token) as lab:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as pai:
            timed(pai, "/api/v2/jobs", 20, True, "warm")
            result["dry_run_direct"] = timed(pai, "/api/v2/jobs", args.requests, True, "d")
            result["submit_direct"] = timed(pai, "/api/v2/jobs", min(args.requests, 100), False, "s")
        with httpx.Client(base_url=lab, headers={"Authorization": "token bench"}, timeout=30) as jupyter:
            timed(jupyter, "/pai/api/jobs", 20, True, "warm")
            result["dry_run_via_pai_extension"] = timed(jupyter, "/pai/api/jobs", args.requests, True, "j")
    result["panel_debounce_ms"] = 600
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "platform": platform.platform()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
