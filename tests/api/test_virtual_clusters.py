"""Virtual clusters end to end: quotas, waiting reasons, preemption, VC routes, safe reconfiguration."""

from __future__ import annotations

import socket
import time

import pytest
import yaml

from tests.server import Server, job_yaml, wait_state

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


def vc_job(name: str, vc: str, gpu: int, priority: str | None = None, seconds: int = 120) -> str:
    extra = f"defaults:\n  virtualCluster: {vc}"
    if priority:
        extra += f"\nextras:\n  hivedScheduler:\n    jobPriorityClass: {priority}"
    return job_yaml(name, [f"sleep {seconds}"], gpu=gpu, extra=extra)


@pytest.fixture(scope="module")
def vcs(tmp_path_factory):
    base = tmp_path_factory.mktemp("vcs")
    config = base / "cluster.yaml"
    config.write_text(CLUSTER.replace("@HOST@", socket.gethostname()))
    srv = Server(base / "data", args=("--simulated-gpus", "4", "--node-cpu", "16"))
    srv.data_dir.mkdir(mode=0o700)  # the server refuses a data directory others can read
    (srv.data_dir / "pai_config.py").write_text(f"c.PaiHub.cluster_config_file = {str(config)!r}\n")
    (srv.data_dir / "pai_config.py").chmod(0o600)
    srv.start()
    users = {name: srv.add_user(name) for name in ("alice", "bob")}
    with srv.client() as admin:
        assert admin.put("/api/v2/users/alice/group", json={"groupname": "research"}).status_code == 201
        assert admin.put("/api/v2/users/bob/group", json={"groupname": "prod"}).status_code == 201
    yield srv, users, config
    srv.stop()
    srv.kill_tasks()


def reason_of(client, framework: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/api/v2/jobs/{framework}").json()["jobStatus"]
        if status["waitingReason"] or time.monotonic() > deadline:
            return status["waitingReason"] or ""
        time.sleep(0.05)


def test_full_vc_waits_with_reason_other_vc_runs_and_preemption_requeues(vcs):
    srv, users, _ = vcs
    with srv.client(users["alice"]) as alice, srv.client(users["bob"]) as bob, srv.client() as admin:
        assert alice.post("/api/v2/jobs", content=vc_job("fill", "research", 2)).status_code == 202
        wait_state(alice, "alice~fill", {"RUNNING"})
        assert alice.post("/api/v2/jobs", content=vc_job("queued", "research", 1)).status_code == 202
        assert reason_of(alice, "alice~queued") == "VC research: 0 of 2 simulated free, waiting for 1"
        # the other VC is not affected
        assert bob.post("/api/v2/jobs", content=vc_job("steady", "prod", 1)).status_code == 202
        wait_state(bob, "bob~steady", {"RUNNING"})
        assert alice.get("/api/v2/jobs/alice~queued").json()["jobStatus"]["state"] == "WAITING"
        # VC access follows groups
        r = alice.post("/api/v2/jobs", content=vc_job("trespass", "prod", 1))
        assert r.status_code == 403 and "prod" in r.json()["message"]
        # an opportunistic job takes prod's idle GPU ...
        assert alice.post("/api/v2/jobs", content=vc_job("scavenger", "research", 1, "oppo")).status_code == 202
        wait_state(alice, "alice~scavenger", {"RUNNING"})
        vc = admin.get("/api/v2/virtual-clusters").json()
        assert vc["research"]["skus"]["simulated"] == {"capacity": 2, "used": 2, "free": 0}
        assert vc["research"]["queue"] == 1 and vc["prod"]["running"] == 1
        # ... until a guaranteed prod job needs it: preempted, requeued as a platform retry
        assert bob.post("/api/v2/jobs", content=vc_job("urgent", "prod", 1)).status_code == 202
        wait_state(bob, "bob~urgent", {"RUNNING"}, timeout=30)
        scavenger = wait_state(alice, "alice~scavenger", {"WAITING"}, timeout=30)["jobStatus"]
        assert scavenger["retryDetails"] == {"user": 0, "platform": 1, "resource": 0}
        reasons = [e["reason"] for e in alice.get("/api/v2/jobs/alice~scavenger/events").json()["data"]]
        assert "Preempted" in reasons and "JobRetried" in reasons
        # the queued research job runs once its VC has room
        alice.put("/api/v2/jobs/alice~fill/executionType", json={"value": "STOP"})
        wait_state(alice, "alice~queued", {"RUNNING"}, timeout=30)
        for fw, c in (("alice~queued", alice), ("alice~scavenger", alice), ("bob~steady", bob), ("bob~urgent", bob)):
            c.put(f"/api/v2/jobs/{fw}/executionType", json={"value": "STOP"})
        for fw, c in (("alice~queued", alice), ("alice~scavenger", alice), ("bob~steady", bob), ("bob~urgent", bob)):
            wait_state(c, fw, {"STOPPED", "SUCCEEDED", "FAILED"}, timeout=30)


def test_vc_routes(vcs):
    srv, users, _ = vcs
    with srv.client(users["alice"]) as alice, srv.client() as admin:
        one = alice.get("/api/v2/virtual-clusters/research").json()
        assert one["capacity"] == 50 and one["resourcesTotal"]["gpu"] == 2 and one["dedicated"] is False
        assert one["cells"] == {"SIM-NODE.GPU-PAIR": 1}
        r = alice.get("/api/v2/virtual-clusters/nowhere")
        assert r.status_code == 404 and r.json() == {"code": "NoVirtualClusterError", "message": "Vc nowhere not found"}
        assert alice.get("/api/v2/cluster/sku-types", params={"vc": "prod"}).json() == {
            "simulated": {"cpu": 2, "memory": 2048, "gpu": 1}}
        assert alice.get("/api/v2/cluster/nodes").status_code == 403
        nodes = admin.get("/api/v2/cluster/nodes").json()
        assert nodes[0]["healthy"] is True and len(nodes[0]["gpus"]) == 4
        assert all(g["simulated"] for g in nodes[0]["gpus"])
        per_node = admin.get("/api/v2/virtual-clusters", params={"nodes": ""}).json()
        assert per_node[socket.gethostname()]["gpuTotal"] == 4


def test_unsafe_quota_change_is_refused_and_safe_one_applies(vcs):
    srv, users, config = vcs
    with srv.client() as admin, srv.client(users["bob"]) as bob:
        before = config.read_text()
        r = admin.put("/api/v2/virtual-clusters/prod", json={"cells": {"SIM-NODE.GPU-PAIR": 2}})
        assert r.status_code == 400
        assert "not changed" in r.json()["message"] and "virtualClusters" in r.json()["message"]
        assert config.read_text() == before
        assert bob.put("/api/v2/virtual-clusters/prod", json={"cells": {"SIM-NODE.GPU-PAIR": 0}}).status_code == 403
        # give research's pair to prod as one node-level cell: prod may now run 4 GPUs in one task
        assert admin.put("/api/v2/virtual-clusters/research", json={"cells": {}}).status_code == 201
        r = admin.put("/api/v2/virtual-clusters/prod", json={"cells": {"SIM-NODE": 1}})
        assert r.status_code == 201, r.text
        assert admin.get("/api/v2/virtual-clusters/prod").json()["skus"]["simulated"]["capacity"] == 4
        saved = yaml.safe_load(config.read_text())
        assert saved["virtualClusters"]["prod"]["virtualCells"] == [{"cellType": "SIM-NODE", "cellNumber": 1}]
        assert bob.post("/api/v2/jobs", content=vc_job("wide", "prod", 4, seconds=0)).status_code == 202
        assert wait_state(bob, "bob~wide", {"SUCCEEDED", "FAILED"}, timeout=30)["jobStatus"]["state"] == "SUCCEEDED"
        # a bad node is avoided; reload restores the file's config
        host = socket.gethostname()
        assert admin.put(f"/api/v2/cluster/nodes/{host}/health", json={"healthy": False}).status_code == 200
        assert admin.get("/api/v2/cluster/nodes").json()[0]["healthy"] is False
        assert bob.post("/api/v2/jobs", content=vc_job("on-bad", "prod", 1, seconds=0)).status_code == 202
        assert "unhealthy" in reason_of(bob, "bob~on-bad")
        assert admin.put(f"/api/v2/cluster/nodes/{host}/health", json={"healthy": True}).status_code == 200
        wait_state(bob, "bob~on-bad", {"SUCCEEDED"}, timeout=30)
        config.write_text(before)
        r = admin.post("/api/v2/cluster/reload")
        assert r.status_code == 200 and sorted(r.json()["virtualClusters"]) == ["prod", "research"]
        assert admin.get("/api/v2/virtual-clusters/prod").json()["skus"]["simulated"]["capacity"] == 2
