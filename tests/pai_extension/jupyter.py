"""A real ``jupyter server`` process for tests: free port on 127.0.0.1, token auth, stopped after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.server import REPO, free_port


@dataclass
class JupyterServer:
    root: Path
    env: dict[str, str]
    token: str = "test-jupyter-token"
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> JupyterServer:
        self.port = self.port or free_port()
        config = self.root / "jupyter_test_config.py"
        # enabled explicitly, so the test does not depend on how the package was installed
        config.write_text("c.ServerApp.jpserver_extensions = {'pai_extension': True}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAI_", "JUPYTERHUB_", "PYTEST_"))}
        env.update({"PYTHONPATH": str(REPO), "JUPYTER_CONFIG_DIR": str(self.root / "cfg"),
                    "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"), **self.env})
        log = open(self.root / "jupyter.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
             f"--port={self.port}", f"--IdentityProvider.token={self.token}", f"--config={config}",
             f"--ServerApp.root_dir={self.root}", "--ServerApp.port_retries=0"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited with {self.proc.returncode}; see {log.name}")
            try:
                if httpx.get(self.url + "/api/status", headers=self.headers, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("jupyter server did not start in time")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
