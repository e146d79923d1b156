"""An injected GPU fault (the simulated GPUs' readings file) marks the node bad in the scheduler:
a job that needs it waits, saying the node is unhealthy, and runs once the GPU recovers. An admin
can clear a node whose fault persists."""

from __future__ import annotations

import time

import pytest

from tests.monitoring.ops import ops_server, until, write_readings
from tests.server import job_yaml, wait_state


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = ops_server(tmp_path_factory.mktemp("health"), gpus=2, readings={})
    yield server
    server.stop()
    server.kill_tasks()


def node(c) -> dict:
    (n,) = c.get("/api/v2/cluster/nodes").json()
    return n


def metric(c, name: str) -> list[str]:
    return [line for line in c.get("/metrics").text.splitlines() if line.startswith(name + "{")]


def test_a_gpu_fault_keeps_jobs_off_the_node_until_it_recovers(srv):
    admin = srv.client()
    assert node(admin)["healthy"]
    write_readings(srv.data_dir, {"1": {"xid": [79]}})  # fell off the bus
    until(lambda: not node(admin)["healthy"], what="the node marked bad")
    assert 'gpu="1"' in next(line for line in metric(admin, "pai_gpu_healthy") if line.endswith(" 0.0"))
    assert metric(admin, "pai_node_healthy")[0].endswith(" 0.0")
    (alert,) = [a for a in admin.get("/api/v2/alerts").json() if a["labels"]["alertname"] == "GpuUnhealthy"]
    assert alert["labels"]["gpu"] == "1" and "XID 79" in alert["annotations"]["description"]

    r = admin.post("/api/v2/jobs", content=job_yaml("needs-gpu", ["sleep 0.2"], gpu=1))
    assert r.status_code == 202, r.text
    detail = until(lambda: (d := admin.get("/api/v2/jobs/admin~needs-gpu").json())["jobStatus"]["waitingReason"]
                   and d, what="a waiting reason")
    assert detail["jobStatus"]["state"] == "WAITING"
    assert "unhealthy" in detail["jobStatus"]["waitingReason"]

    write_readings(srv.data_dir, {"1": {"xid": []}})  # recovered
    until(lambda: node(admin)["healthy"], what="the node healthy again")
    assert wait_state(admin, "admin~needs-gpu", {"SUCCEEDED", "FAILED"})["jobStatus"]["state"] == "SUCCEEDED"
    resolved = admin.get("/api/v2/alerts", params={"state": "resolved"}).json()
    assert alert["fingerprint"] in {a["fingerprint"] for a in resolved}


def test_an_admin_can_clear_a_node_whose_fault_persists(srv):
    admin = srv.client()
    write_readings(srv.data_dir, {"0": {"ecc_errors": 1}})
    until(lambda: not node(admin)["healthy"], what="the node marked bad")
    name = node(admin)["name"]
    assert admin.put(f"/api/v2/cluster/nodes/{name}/health", json={"healthy": True}).status_code == 200
    r = admin.post("/api/v2/jobs", content=job_yaml("after-clear", ["true"], gpu=1))
    assert r.status_code == 202
    assert wait_state(admin, "admin~after-clear", {"SUCCEEDED", "FAILED"})["jobStatus"]["state"] == "SUCCEEDED"
    time.sleep(0.6)  # deliberate: three polls pass, to prove the node is NOT marked bad again
    assert node(admin)["healthy"]  # the same fault is not marked again
    write_readings(srv.data_dir, {"0": {"ecc_errors": 2}})  # a new fault is
    until(lambda: not node(admin)["healthy"], what="the node marked bad again")
    write_readings(srv.data_dir, {})
    until(lambda: node(admin)["healthy"], what="recovery")
