"""A real ``pai server`` process for tests: free port on 127.0.0.1, own data directory, stopped after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.local_server import free_port, kill_left_tasks

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"


@dataclass
class Server:
    data_dir: Path
    port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    #: extra environment of the server process (e.g. PAI_NNI_PYTHON)
    env: dict[str, str] = field(default_factory=dict)
    #: ``--isolation``: "none" (tasks run as this test's user: fast, what most tests need), "users",
    #: "sandbox" (the isolation tests), "auto", or None to pass no flag (PAI_ISOLATION / the default)
    isolation: str | None = "none"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def start(self, timeout: float = 20) -> Server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("PAI_URL", None)
        env.pop("PAI_TOKEN", None)
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pai_hub.cli", "server", "--ip", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir), *self.isolation_args(), *self.args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {log.name}")
            try:
                if httpx.get(self.url + "/api/v2/info", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start in time")

    def isolation_args(self) -> list[str]:
        return ["--isolation", self.isolation] if self.isolation else []

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def kill_tasks(self) -> None:
        """Tasks outlive the server by design; a test must not leave them behind."""
        kill_left_tasks(self.data_dir)

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token or self.admin_token}"},
                            timeout=30)

    def add_user(self, name: str, admin: bool = False) -> str:
        """Create a user through the API and return an application token for it (via login)."""
        with self.client() as c:
            r = c.post("/api/v2/users", json={"username": name, "password": "secret-pw", "admin": admin})
            assert r.status_code == 201, r.text
            r = httpx.post(self.url + "/api/v2/authn/basic/login", json={"username": name, "password": "secret-pw"})
            assert r.status_code == 200, r.text
            return r.json()["token"]


def make_private(data_dir: Path) -> Path:
    """A data directory a test filled by hand (pai_config.py, rules, readings), made as private as the
    server requires (it refuses one that others can read): 0700 directories, 0600 files."""
    for root, _dirs, files in os.walk(data_dir):
        os.chmod(root, 0o700)
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)
    return data_dir


@contextmanager
def running_server(base: Path, gpus: int = 4, node_cpu: int = 16, env: dict[str, str] | None = None,
                   isolation: str | None = "none") -> Iterator[Server]:
    """A started server with its data directory in ``base/data`` (``gpus`` simulated GPUs, ``node_cpu``
    schedulable CPUs, ``isolation`` as ``--isolation``: "none" unless a test is about isolation), for a
    module's tests to share; on exit it is stopped and the tasks it started are killed, since tasks
    outlive the server by design."""
    srv = Server(base / "data", args=("--simulated-gpus", str(gpus), "--node-cpu", str(node_cpu)), env=env or {},
                 isolation=isolation)
    srv.data_dir.mkdir(parents=True, mode=0o700)
    try:
        yield srv.start()
    finally:
        srv.stop()
        srv.kill_tasks()


def wait_state(client: httpx.Client, framework: str, states: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/v2/jobs/{framework}")
        assert r.status_code == 200, r.text
        detail = r.json()
        if detail["jobStatus"]["state"] in states:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"{framework} stayed {detail['jobStatus']['state']}: {detail}")
        time.sleep(0.05)


def job_yaml(name: str, commands: list[str], instances: int = 1, gpu: int = 0, extra: str = "",
             completion: str = "", cpu: int = 1, role: str = "worker") -> str:
    cmds = "\n".join(f"      - {json.dumps(c)}" for c in commands)
    return f"""protocolVersion: 2
name: {name}
type: job
{extra}
prerequisites:
  - name: image
    type: dockerimage
    uri: python:3.11
taskRoles:
  {role}:
    instances: {instances}
    dockerImage: image
{completion}
    resourcePerInstance: {{cpu: {cpu}, memoryMB: 256, gpu: {gpu}}}
    commands:
{cmds}
"""
