from __future__ import annotations

import pytest

from tests.server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One control plane per test module (4 simulated GPUs, 16 schedulable CPUs)."""
    srv = Server(tmp_path_factory.mktemp("pai") / "data", args=("--simulated-gpus", "4", "--node-cpu", "16"))
    srv.data_dir.mkdir(parents=True)
    srv.start()
    yield srv
    srv.stop()
    srv.kill_tasks()
