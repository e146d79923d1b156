"""A submission's placeability verdict is remembered per gang shape (pai_hub/api/jobs.py) only while
the cluster config stands: a quota change that makes a shape fit, or no longer fit, is seen by the
very next submission of that shape."""

from __future__ import annotations

import socket

import pytest

from tests.server import Server, job_yaml

CLUSTER = """
physicalCluster:
  skuTypes:
    simulated: {gpu: 1, cpu: 2, memory: 2048Mi}
  cellTypes:
    GPU-PAIR: {childCellType: simulated, childCellNumber: 2}
    SIM-NODE: {childCellType: GPU-PAIR, childCellNumber: 2, isNodeLevel: true}
  physicalCells:
    - {cellType: SIM-NODE, cellAddress: "@HOST@"}
virtualClusters:
  research: {virtualCells: [{cellType: SIM-NODE.GPU-PAIR, cellNumber: 1}]}
  prod: {virtualCells: [{cellType: SIM-NODE.GPU-PAIR, cellNumber: 1}]}
"""


@pytest.fixture
def server(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text(CLUSTER.replace("@HOST@", socket.gethostname()))
    srv = Server(tmp_path / "data", args=("--simulated-gpus", "4", "--node-cpu", "16"))
    srv.data_dir.mkdir(mode=0o700)  # the server refuses a data directory others can read
    (srv.data_dir / "pai_config.py").write_text(f"c.PaiHub.cluster_config_file = {str(config)!r}\n")
    (srv.data_dir / "pai_config.py").chmod(0o600)
    srv.start()
    yield srv
    srv.stop()
    srv.kill_tasks()


def test_a_quota_change_is_seen_by_the_next_submission_of_the_same_shape(server):
    wide = job_yaml("wide", ["true"], gpu=4, extra="defaults:\n  virtualCluster: prod")

    def dry_run(client) -> int:
        return client.post("/api/v2/jobs?dryRun=true", content=wide).status_code

    with server.client() as admin:
        r = admin.post("/api/v2/jobs?dryRun=true", content=wide)
        assert r.status_code == 400 and "more than" in r.json()["message"], r.text
        assert dry_run(admin) == 400  # the remembered verdict
        # research's pair goes to prod as one node-level cell: 4 GPUs in one task now fit
        assert admin.put("/api/v2/virtual-clusters/research", json={"cells": {}}).status_code == 201
        assert admin.put("/api/v2/virtual-clusters/prod", json={"cells": {"SIM-NODE": 1}}).status_code == 201
        assert dry_run(admin) == 200
        assert dry_run(admin) == 200
        # and back: the shape no longer fits
        assert admin.put("/api/v2/virtual-clusters/prod",
                         json={"cells": {"SIM-NODE.GPU-PAIR": 1}}).status_code == 201, "quota back"
        assert admin.put("/api/v2/virtual-clusters/research",
                         json={"cells": {"SIM-NODE.GPU-PAIR": 1}}).status_code == 201
        assert dry_run(admin) == 400
