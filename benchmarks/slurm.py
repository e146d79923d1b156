"""1,000 trivial tasks through SlurmBackend vs plain ``sbatch --wrap true``, on the same Slurm, same run.

``python -m benchmarks.slurm [--tasks 1000] [--rounds 3] [--slurm-conf PATH] [--base-dir DIR]``

Without ``--slurm-conf`` it starts the 4-node x 4-fake-GPU loopback cluster of
scripts/slurm-test-cluster.sh (root, slurm-wlm, munge) in a temporary directory and stops it after.
Plain: N ``sbatch --wrap true`` submitted sequentially (as a user script would), end = when squeue
no longer lists any of them. Backend: N ``start()`` of a ``true`` task placed round-robin on the
nodes, end = the last TaskExit. Prints JSON: jobs/s end to end for both, the backend's overhead per
job (difference of the per-job times) and the control plane's CPU per task, for each of ``--rounds``
interleaved rounds (the order alternating), and the range of backend/plain ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pai_hub.backends.base import TaskExit, TaskLaunch
from pai_hub.backends.slurm import SlurmBackend
from pai_runtime.spec import TaskPeer, TaskRoleInfo, TaskSpec

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm-test-cluster.sh"


def spec(task_id: str) -> dict:
    return TaskSpec(
        task_id=task_id, task_uid=task_id, framework_name="bench~b", username="bench", job_name="b",
        virtual_cluster="default", task_role="t", task_index=0, job_attempt_id=0, task_attempt_id=0,
        command="true", gpus=[], work_dir="", log_dir="",
        task_roles={"t": TaskRoleInfo(instances=1, cpu=1, memory_mb=100, gpu=0)},
        peers=[TaskPeer("t", 0, None)]).to_json_dict()


def wait_drained(env: dict[str, str], ids: set[str]) -> None:
    while True:
        out = subprocess.run(["squeue", "-h", "-o", "%i", "--states=PENDING,RUNNING,CONFIGURING,COMPLETING"],
                             env=env, capture_output=True, text=True, check=True).stdout.split()
        if not ids.intersection(out):
            return
        time.sleep(0.05)


def plain(env: dict[str, str], n: int, workdir: str) -> dict:
    t0 = time.perf_counter()
    ids = set()
    for _ in range(n):
        out = subprocess.run(["sbatch", "--parsable", f"--chdir={workdir}", "--output=/dev/null", "--wrap", "true"],
                             env=env, capture_output=True, text=True, check=True).stdout
        ids.add(out.strip().split(";")[0])
    submitted = time.perf_counter() - t0
    wait_drained(env, ids)
    total = time.perf_counter() - t0
    return {"jobs": n, "submit_s": round(submitted, 2), "total_s": round(total, 2),
            "jobs_per_s": round(n / total, 1)}


async def backend_run(conf: str, run_root: str, n: int) -> dict:
    b = SlurmBackend(run_root, slurm_conf=conf, notify=True)
    await b.open()
    nodes = [x.name for x in b.nodes()]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    done: dict[str, TaskExit] = {}

    async def consume() -> None:
        async for ev in b.events():
            if isinstance(ev, TaskExit):
                done[ev.task_id] = ev
                if len(done) == n:
                    return

    consumer = asyncio.create_task(consume())
    for i in range(n):
        tid = f"bench-{i}"
        await b.start(TaskLaunch(tid, nodes[i % len(nodes)], (), spec(tid)))
    started = time.perf_counter() - t0
    await consumer
    total = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    await b.close()
    failed = sum(1 for e in done.values() if e.exit_code != 0)
    return {"jobs": n, "start_calls_s": round(started, 2), "total_s": round(total, 2),
            "jobs_per_s": round(n / total, 1), "failed": failed,
            "control_plane_cpu_ms_per_task": round(cpu * 1000 / n, 2)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--slurm-conf")
    p.add_argument("--base-dir", default=None)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of plain sbatch and the backend")
    args = p.parse_args()
    cluster = None
    conf = args.slurm_conf
    if conf is None:
        cluster = tempfile.mkdtemp(prefix="pai-slurm-bench-")
        subprocess.run([str(SCRIPT), "start", cluster], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "SLURM_TEST_PORT": os.environ.get("SLURM_TEST_PORT", "26817")})
        conf = f"{cluster}/slurm.conf"
    base = tempfile.mkdtemp(prefix="pai-slurm-run-", dir=args.base_dir)
    env = {**os.environ, "SLURM_CONF": conf}
    try:
        rounds = []
        for r in range(args.rounds):  # interleaved, the order alternating: the machine's load hits both
            one: dict = {}
            order = ["plain_sbatch", "slurm_backend"] if r % 2 == 0 else ["slurm_backend", "plain_sbatch"]
            for kind in order:
                if kind == "plain_sbatch":
                    one[kind] = plain(env, args.tasks, base)
                else:
                    one[kind] = asyncio.run(backend_run(conf, f"{base}/run{r}", args.tasks))
            one["ratio"] = round(one["slurm_backend"]["jobs_per_s"] / one["plain_sbatch"]["jobs_per_s"], 2)
            per_plain = one["plain_sbatch"]["total_s"] / args.tasks
            per_backend = one["slurm_backend"]["total_s"] / args.tasks
            one["overhead_ms_per_job"] = round((per_backend - per_plain) * 1000, 2)
            rounds.append(one)
        result = {"tasks": args.tasks, "nodes": 4, "rounds": rounds,
                  "ratio_range": [min(x["ratio"] for x in rounds), max(x["ratio"] for x in rounds)],
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
        json.dump(result, sys.stdout, indent=2)
        print()
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if cluster:
            subprocess.run([str(SCRIPT), "stop", cluster], check=False)
            shutil.rmtree(cluster, ignore_errors=True)


if __name__ == "__main__":
    main()
