"""A hub restart keeps running notebooks (they are PAI jobs; the spawner's state names the job), and
the idle culler stops an idle notebook, which frees its GPU."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.e2e.hub import Hub, notebook_jobs, require_e2e_deps, wait_job
from tests.server import job_yaml

pytestmark = pytest.mark.slow


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_restart_keeps_notebooks_and_culling_frees_the_gpu(tmp_path):
    require_e2e_deps()
    hub = Hub(tmp_path / "hub", args=("--cull-timeout", "0"))
    try:
        hub.start()
        with hub.hub_api() as h:
            h.post("/users/bob")
            r = h.post("/users/bob/server", json={"profile": "gpu-1"})
            assert r.status_code in (201, 202), r.text
        before = hub.wait_server("bob", ready=True)["servers"][""]
        admin = hub.pai()
        [job] = [j for j in notebook_jobs(admin, "bob") if j["state"] == "RUNNING"]
        framework = f"bob~{job['name']}"
        port = int(admin.get(f"/api/v2/jobs/{framework}").json()["taskRoles"]["notebook"]["taskStatuses"][0]
                   ["containerPorts"]["jupyter"])

        hub.stop()
        assert port_open(port), "the notebook must outlive the hub"
        # back with a short idle timeout: the culler will stop bob's idle notebook. Idle time counts
        # from the spawn, so the timeout leaves room for a slow stop and start on a busy machine.
        restarted = time.monotonic()
        hub.start("--cull-timeout", "45", "--cull-every", "5")
        # restored notebooks do not hold the hub's start-up waiting for the PAI service it starts after
        assert time.monotonic() - restarted < 30, "hub restart took its init_spawners_timeout or more"
        assert b"init_spawners did not complete" not in hub.log.read_bytes().split(b"=== restart ===")[-1]
        after = hub.wait_server("bob", ready=True, timeout=10)["servers"][""]
        assert after["started"] == before["started"]
        assert admin.get(f"/api/v2/jobs/{framework}").json()["jobStatus"]["state"] == "RUNNING"
        # reachable through the new proxy (the hub restores its routes shortly after it starts)
        token = hub.user_token("bob")
        deadline = time.monotonic() + 60
        while True:
            r = httpx.get(hub.url + "/user/bob/api/status", headers={"Authorization": f"token {token}"}, timeout=30)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert r.status_code == 200, r.text

        hub.wait_server("bob", ready=False, timeout=90)  # culled
        wait_job(admin, framework, {"STOPPED"}, timeout=30)
        # both GPUs are free again: a 2-GPU job runs at once
        r = admin.post("/api/v2/jobs", content=job_yaml("after-cull", ["true"], gpu=2),
                       headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        wait_job(admin, "admin~after-cull", {"SUCCEEDED"}, timeout=30)
    finally:
        hub.stop()
        hub.kill_tasks()
