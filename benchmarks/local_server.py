"""A throw-away ``pai server`` (and a Jupyter server with pai_extension in front of it) for benchmarks:
free ports on 127.0.0.1, stopped on exit. The tests' server (``tests/server.py``) shares the pieces
that do not depend on who runs it: free ports and killing the tasks a stopped server left."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_text(name: str, commands: list[str], *, role: str, image: str, instances: int, memory_mb: int,
             header: str = "") -> str:
    """The YAML of a CPU-only job a benchmark submits, as a user would write it; ``header`` adds
    top-level lines (``parameters:``, ``secrets:``)."""
    return f"""protocolVersion: 2
name: {name}
type: job
{header}prerequisites:
  - {{name: image, type: dockerimage, uri: "{image}"}}
taskRoles:
  {role}:
    instances: {instances}
    dockerImage: image
    resourcePerInstance: {{cpu: 1, memoryMB: {memory_mb}, gpu: 0}}
    commands: {json.dumps(commands)}
"""


def kill_left_tasks(data_dir: Path) -> None:
    """SIGKILL the process groups of the tasks a server in ``data_dir`` started: tasks outlive the
    control plane by design, so a throw-away server must not leave them behind."""
    for pid_file in (data_dir / "run" / "tasks").glob("*/pid.json"):
        try:
            info = json.loads(pid_file.read_text())
        except (OSError, ValueError):
            continue
        for key in ("pgid", "task_pgid"):
            if info.get(key):
                try:
                    os.killpg(int(info[key]), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def _wait(url: str, proc: subprocess.Popen, headers: dict[str, str] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.05)


def terminate(proc: subprocess.Popen, timeout: float = 30, force: Callable[[], None] | None = None) -> None:
    """SIGTERM and wait; after ``timeout`` seconds the forced end (``force``, default SIGKILL)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        (force or proc.kill)()
        proc.wait(timeout=10)


#: Who the benchmarked servers run tasks as (``--isolation``): ``none`` by default, so figures compare
#: with earlier ones; ``PAI_BENCH_ISOLATION=sandbox`` measures the cost of per-user accounts and bwrap.
ISOLATION = os.environ.get("PAI_BENCH_ISOLATION", "none")


@contextlib.contextmanager
def pai_server(tmp: Path, node_cpu: int = 32, *args: str) -> Iterator[tuple[str, str, subprocess.Popen]]:
    """``(url, admin token, process)`` of a server with its data directory in ``tmp``."""
    data = tmp / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pai_hub.cli", "server", "--ip", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data), "--node-cpu", str(node_cpu), "--isolation", ISOLATION, *args],
        stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"), env=env,  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url + "/api/v2/info", proc, timeout=30)
        yield url, (data / "admin-token").read_text().strip(), proc
    finally:
        terminate(proc)


@contextlib.contextmanager
def jupyter_with_pai(tmp: Path, pai_url: str, pai_token: str, token: str = "bench") -> Iterator[str]:
    """A ``jupyter server`` with pai_extension calling ``pai_url`` as the token's user; its URL."""
    root = tmp / "jupyter"
    root.mkdir()
    config = root / "config.py"
    config.write_text("c.ServerApp.jpserver_extensions = {'pai_extension': True}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAI_", "JUPYTERHUB_"))}
    env.update({"PAI_URL": pai_url, "PAI_TOKEN": pai_token, "JUPYTER_CONFIG_DIR": str(root / "cfg"),
                "JUPYTER_RUNTIME_DIR": str(root / "runtime")})
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", f"--config={config}",
         f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0"],
        stdout=subprocess.DEVNULL, stderr=open(root / "jupyter.log", "wb"), env=env,  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url + "/api/status", proc, headers={"Authorization": f"token {token}"})
        yield url
    finally:
        terminate(proc)
