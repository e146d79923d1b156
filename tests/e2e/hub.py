"""A real PAI Hub (JupyterHub + CHP + PAI service) for end-to-end tests: free ports on 127.0.0.1,
its own data directory, stopped (and its notebook tasks killed) by the test that started it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from benchmarks.local_server import terminate
from tests.server import REPO, Server, free_port

ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHP = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
ADMIN_SERVICE_TOKEN = "e2e-admin-service-token-0123456789abcdef"
PASSWORDS = {"alice": "alice-e2e-password", "bob": "bob-e2e-password"}

EXTRA_CONFIG = f"""
c = get_config()
c.JupyterHub.services.append({{"name": "e2e-admin", "api_token": "{ADMIN_SERVICE_TOKEN}"}})
c.JupyterHub.load_roles.append({{"name": "e2e-admin", "services": ["e2e-admin"], "scopes": [
    "admin:users", "admin:servers", "list:users", "read:users", "access:servers", "tokens", "admin:groups",
    "access:services", "read:hub"]}})
c.JupyterHub.load_roles.append({{"name": "admin", "services": ["e2e-admin"]}})  # may grant admin
c.PaiSpawner.profile_list = [
    {{"display_name": "CPU notebook", "slug": "cpu", "description": "no GPU", "default": True,
      "vc": "default", "gpu": 0, "cpu": 1, "memoryMB": 512}},
    {{"display_name": "1 GPU", "slug": "gpu-1", "description": "one GPU", "vc": "default", "gpu": 1, "cpu": 1,
      "memoryMB": 512}},
    {{"display_name": "Research GPU", "slug": "research", "description": "needs VC research", "vc": "research",
      "gpu": 1, "cpu": 1, "memoryMB": 512}},
]
c.Spawner.start_timeout = 120
"""


def require_e2e_deps() -> None:
    missing = [what for what, ok in (("configurable-http-proxy (node_modules/.bin)", CHP.exists()),
                                     ("chromium (/usr/bin/chromium)", Path(CHROMIUM).exists())) if not ok]
    if missing:
        pytest.fail(f"end-to-end dependencies missing: {', '.join(missing)}; run `make e2e-deps`", pytrace=False)


@dataclass
class Hub:
    root: Path
    port: int = field(default_factory=free_port)
    pai_port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pai_url(self) -> str:
        return f"http://127.0.0.1:{self.pai_port}"

    @property
    def admin_password(self) -> str:
        return (self.data_dir / "hub" / "admin-password").read_text().strip()

    @property
    def pai_admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def start(self, *extra: str, timeout: float = 90) -> Hub:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "e2e_config.py"
        config.write_text(EXTRA_CONFIG)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAI_", "JUPYTERHUB_"))}
        self.log = self.root / "hub.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pai_hub.hub", "--port", str(self.port), "--pai-port", str(self.pai_port),
                 "--data-dir", str(self.data_dir), "--simulated-gpus", "2", "--node-cpu", "32",
                 "--user", f"alice:{PASSWORDS['alice']}", "--user", f"bob:{PASSWORDS['bob']}",
                 "--config", str(config), *self.args, *extra],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=REPO)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.proc.returncode}; see {self.log}")
            if b"PAI Hub is up" in self.log.read_bytes().split(b"=== restart ===")[-1]:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"the hub did not come up in {timeout}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        proc = self.proc
        terminate(proc, force=lambda: os.killpg(proc.pid, signal.SIGKILL))
        with open(self.log, "ab") as log:
            log.write(b"\n=== restart ===\n")

    def kill_tasks(self) -> None:
        """Notebooks are jobs and outlive the hub by design; a test must not leave them behind."""
        Server(self.data_dir).kill_tasks()

    # -- API helpers -------------------------------------------------------------------------------
    def hub_api(self, token: str = ADMIN_SERVICE_TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/hub/api", headers={"Authorization": f"token {token}"},
                            timeout=60)

    def pai(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.pai_url, headers={"Authorization": f"Bearer {token or self.pai_admin_token}"},
                            timeout=30)

    def user_token(self, name: str, scopes: list[str] | None = None) -> str:
        with self.hub_api() as h:
            h.post(f"/users/{name}")  # 201, or 409 when it exists
            body = {"note": "e2e", **({"scopes": scopes} if scopes is not None else {})}
            r = h.post(f"/users/{name}/tokens", json=body)
            assert r.status_code == 201, r.text
            return r.json()["token"]

    def wait_server(self, name: str, ready: bool, timeout: float = 90, server: str = "") -> dict:
        deadline = time.monotonic() + timeout
        with self.hub_api() as h:
            while True:
                model = h.get(f"/users/{name}").json()
                s = model.get("servers", {}).get(server)
                if (bool(s and s.get("ready")) if ready else s is None):
                    return model
                if time.monotonic() > deadline:
                    raise AssertionError(f"server {name}/{server} not {'ready' if ready else 'gone'}: {model}")
                time.sleep(0.2)


def wait_job(client: httpx.Client, framework: str, states: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        detail = client.get(f"/api/v2/jobs/{framework}").json()
        if detail["jobStatus"]["state"] in states:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"{framework} stayed {detail['jobStatus']['state']}")
        time.sleep(0.1)


def notebook_jobs(client: httpx.Client, username: str) -> list[dict]:
    return [j for j in client.get("/api/v2/jobs", params={"username": username}).json()
            if j["name"].startswith("jupyter-")]
