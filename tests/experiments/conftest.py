"""Fixtures for experiments: NNI 3.0 (tests/nni.py) and a real ``pai server`` whose NNI managers are
reaped after."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.nni import nni_venv, reap_nni
from tests.server import Server


@pytest.fixture(scope="session")
def nni3() -> Path:
    return nni_venv("3.0")


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
