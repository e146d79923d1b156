"""Spawn time: PaiSpawner (a notebook is a PAI job) against JupyterHub's SimpleLocalProcessSpawner.

Two identical platforms (``python -m pai_hub.hub``: hub, proxy, PAI service) run side by side; the
only difference is the spawner. For each, the time from ``POST /hub/api/users/{u}/server`` to the
server being ready (the hub's ``ready`` flag), for ``--sequential`` spawns (alternating between the
two hubs, so drift hits both) and for ``--concurrent`` spawns started together. JSON on stdout.

    python -m benchmarks.spawn [--sequential 5] [--concurrent 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import httpx

from benchmarks.local_server import free_port, kill_left_tasks

ADMIN_TOKEN = "bench-admin-service-token-0123456789"
CONFIG = f"""
c = get_config()
c.JupyterHub.services.append({{"name": "bench", "api_token": "{ADMIN_TOKEN}"}})
c.JupyterHub.load_roles.append({{"name": "bench", "services": ["bench"],
    "scopes": ["admin:users", "admin:servers", "list:users", "read:users"]}})
c.PaiSpawner.profile_list = [{{"display_name": "CPU", "slug": "cpu", "vc": "default", "gpu": 0, "cpu": 1,
                               "memoryMB": 256}}]
c.JupyterHub.concurrent_spawn_limit = 0
c.Spawner.start_timeout = 600
c.Spawner.http_timeout = 300
"""
LOCAL = """
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = "{home}/{{username}}"
c.Spawner.args = ["--allow-root"] if __import__("os").geteuid() == 0 else []
"""


class Platform:
    def __init__(self, root: Path, kind: str) -> None:
        self.root, self.kind = root, kind
        self.port, self.pai_port = free_port(), free_port()
        root.mkdir(parents=True)
        config = root / "bench_config.py"
        config.write_text(CONFIG + (LOCAL.format(home=root / "homes") if kind == "local" else ""))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAI_", "JUPYTERHUB_"))}
        self.log = open(root / "hub.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pai_hub.hub", "--port", str(self.port), "--pai-port", str(self.pai_port),
             "--data-dir", str(root / "data"), "--node-cpu", "64", "--cull-timeout", "0", "--config", str(config)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        while b"PAI Hub is up" not in (root / "hub.log").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{kind} hub did not start; see {root / 'hub.log'}")
            time.sleep(0.1)
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}/hub/api",
                                headers={"Authorization": f"token {ADMIN_TOKEN}"}, timeout=600)

    def spawn(self, user: str) -> float:
        """Seconds from the POST to the hub reporting the server ready."""
        self.api.post(f"/users/{user}")
        t0 = time.perf_counter()
        r = self.api.post(f"/users/{user}/server", json={})
        if r.status_code not in (201, 202):
            raise RuntimeError(f"{self.kind}: spawn of {user} answered {r.status_code}: {r.text}")
        while r.status_code != 201:
            s = self.api.get(f"/users/{user}").json()["servers"].get("")
            if s and s.get("ready"):
                break
            if not s:
                raise RuntimeError(f"{self.kind}: spawn of {user} failed; see {self.root / 'hub.log'}")
            time.sleep(0.02)
        return time.perf_counter() - t0

    def stop_server(self, user: str) -> None:
        self.api.delete(f"/users/{user}/server")
        deadline = time.monotonic() + 60
        while self.api.get(f"/users/{user}").json()["servers"] and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        self.api.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        # notebooks outlive the hub by design (PAI jobs; cleanup_servers=False): end them
        kill_left_tasks(self.root / "data")
        self.log.close()


def summary(samples: list[float]) -> dict:
    return {"n": len(samples), "p50_s": round(statistics.median(samples), 3), "mean_s": round(statistics.mean(samples), 3),
            "min_s": round(min(samples), 3), "max_s": round(max(samples), 3)}


def concurrent(p: Platform, n: int, prefix: str) -> dict:
    users = [f"{prefix}{i:02d}" for i in range(n)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        times = list(pool.map(p.spawn, users))
    wall = time.perf_counter() - t0
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(p.stop_server, users))
    return {**summary(times), "wall_s": round(wall, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequential", type=int, default=5)
    ap.add_argument("--concurrent", type=int, default=20)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="pai-spawn-bench-", dir=os.environ.get("BENCH_DIR")))
    hubs: dict[str, Platform] = {}
    ok = False
    try:
        hubs = {"pai": Platform(root / "pai", "pai"), "local": Platform(root / "local", "local")}
        for p in hubs.values():  # warm-up: first imports, page caches
            p.spawn("warmup")
            p.stop_server("warmup")
        seq: dict[str, list[float]] = {"pai": [], "local": []}
        for i in range(args.sequential):
            for kind in (("pai", "local") if i % 2 == 0 else ("local", "pai")):
                seq[kind].append(hubs[kind].spawn(f"seq{i}"))
                hubs[kind].stop_server(f"seq{i}")
        print(f"sequential: {seq}", file=sys.stderr, flush=True)
        conc = {kind: concurrent(hubs[kind], args.concurrent, "c") for kind in ("local", "pai")} if args.concurrent else {}
        print(f"concurrent: {conc}", file=sys.stderr, flush=True)
        ok = True
    finally:
        for p in hubs.values():
            p.close()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"logs kept in {root}", file=sys.stderr)
    seq_s = {k: summary(v) for k, v in seq.items()}
    result = {
        "benchmark": "spawn",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "jupyterhub": version("jupyterhub"), "jupyterlab": version("jupyterlab")},
        "sequential": {**seq_s, "ratio_p50": round(seq_s["pai"]["p50_s"] / seq_s["local"]["p50_s"], 3)},
    }
    if conc:
        result["concurrent"] = {"spawns": args.concurrent, **conc,
                                "ratio_wall": round(conc["pai"]["wall_s"] / conc["local"]["wall_s"], 3),
                                "ratio_p50": round(conc["pai"]["p50_s"] / conc["local"]["p50_s"], 3)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
