"""Fixtures for experiments: NNI's own virtual environments (created by scripts/nni-compat-venv.sh under
build/, never in the project venv) and a real ``pai server`` whose NNI managers are reaped after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.server import REPO, Server

SCRIPT = REPO / "scripts" / "nni-compat-venv.sh"


def nni_venv(version: str) -> Path:
    """The venv with ``nni==version``, created on first use (pip, ~30 s); skip if it cannot be made."""
    proc = subprocess.run(["bash", str(SCRIPT), version], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"cannot create the NNI {version} virtual environment with {SCRIPT} (offline, or no "
                    f"PyPI access?): {proc.stderr.strip()[-500:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def nni3() -> Path:
    return nni_venv("3.0")


def reap_nni(data_dir: Path) -> None:
    """NNI managers the server did not stop (it kills them at exit; this is the test's safety net)."""
    for path in (data_dir / "experiments").glob("*/experiment.json"):
        pid = json.loads(path.read_text()).get("pid")
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def make_server(tmp_path, nni3, monkeypatch):
    monkeypatch.setenv("PAI_NNI_PYTHON", str(nni3 / "bin" / "python"))
    servers: list[Server] = []

    def make(*args: str, env: dict[str, str] | None = None) -> Server:
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        data = tmp_path / f"data{len(servers)}"
        data.mkdir()
        server = Server(data, args=args)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()
        server.kill_tasks()
        reap_nni(server.data_dir)
