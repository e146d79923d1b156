"""The platform over HTTP: hub tokens on the PAI API (mirror of users, groups and the admin flag;
403 for non-admins on admin routes), the API through the proxy and at its own URL, spawn progress
with the scheduler's waiting reason, named servers, and profiles checked before a spawn."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.hub import notebook_jobs, wait_job
from tests.server import job_yaml

pytestmark = pytest.mark.slow

ADMIN_ROUTES = [
    ("GET", "/api/v2/users", None),
    ("POST", "/api/v2/users", {"username": "mallory", "password": "secret-pw", "admin": True}),
    ("DELETE", "/api/v2/users/bob", None),
    ("POST", "/api/v2/groups", {"groupname": "sneaky", "extension": {"acls": {"admin": True}}}),
    ("PUT", "/api/v2/groups/default", {"virtualClusters": ["default"]}),
    ("GET", "/api/v2/cluster/nodes", None),
    ("PUT", "/api/v2/cluster/nodes/local/health", {"healthy": False}),
    ("PUT", "/api/v2/virtual-clusters/default", {"cells": {"x": 1}}),
]


def test_hub_tokens_mirror_users_groups_and_admin(hub):
    alice, bob = hub.user_token("alice"), hub.user_token("bob")
    for base in (hub.pai_url, hub.url + "/services/pai"):  # the service's own URL and through the proxy
        for scheme in ("token", "Bearer"):
            r = httpx.get(base + "/api/v2/users/me", headers={"Authorization": f"{scheme} {alice}"})
            assert r.status_code == 200, r.text
            assert r.json()["username"] == "alice" and r.json()["admin"] is False
    me = httpx.get(hub.pai_url + "/api/v2/users/me", headers={"Authorization": f"token {bob}"}).json()
    assert me["grouplist"] == ["default", "research"]  # hub group research → PAI group research

    with hub.hub_api() as h:  # promote bob in the hub: PAI follows once the cached answer expires
        assert h.patch("/users/bob", json={"admin": True}).status_code == 200
    fresh = hub.user_token("bob")  # a new token is not cached
    me = httpx.get(hub.pai_url + "/api/v2/users/me", headers={"Authorization": f"token {fresh}"}).json()
    assert me["admin"] is True and "admingroup" in me["grouplist"]
    with hub.hub_api() as h:
        assert h.patch("/users/bob", json={"admin": False}).status_code == 200
    fresh = hub.user_token("bob")
    me = httpx.get(hub.pai_url + "/api/v2/users/me", headers={"Authorization": f"token {fresh}"}).json()
    assert me["admin"] is False and "admingroup" not in me["grouplist"]


def test_pai_application_tokens_still_work(hub):
    with hub.pai() as c:  # the bootstrap admin's application token, as the CLI and NNI use it
        assert c.get("/api/v2/users/me").json()["admin"] is True


def test_token_without_access_to_the_service_is_refused(hub):
    narrow = hub.user_token("alice", scopes=["read:users:name!user"])
    r = httpx.get(hub.pai_url + "/api/v2/users/me", headers={"Authorization": f"token {narrow}"})
    assert r.status_code == 401
    r = httpx.get(hub.pai_url + "/api/v2/users/me", headers={"Authorization": "token not-a-token"})
    assert r.status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_non_admin_gets_403_on_admin_routes(hub, method, path, body):
    alice = hub.user_token("alice")
    r = httpx.request(method, hub.pai_url + path, headers={"Authorization": f"token {alice}"}, json=body)
    assert r.status_code == 403, r.text


def test_progress_streams_the_waiting_reason_and_named_servers(hub):
    admin = hub.pai()
    r = admin.post("/api/v2/jobs", content=job_yaml("api-blocker", ["sleep 600"], gpu=2),
                   headers={"Content-Type": "text/yaml"})
    assert r.status_code == 202, r.text
    wait_job(admin, "admin~api-blocker", {"RUNNING"})
    with hub.hub_api() as h:
        r = h.post("/users/alice/servers/exp1", json={"profile": "gpu-1"})
        assert r.status_code == 202, r.text  # still waiting for a GPU after slow_spawn_timeout
        messages = []
        with h.stream("GET", "/users/alice/servers/exp1/progress") as events:
            for line in events.iter_lines():
                if line.startswith("data:"):
                    messages.append(json.loads(line[5:])["message"])
                    if messages[-1].startswith("Waiting:"):
                        break
        # the scheduler's reason, e.g. "VC default: 0 of 2 simulated free, waiting for 1"
        assert messages[-1].startswith("Waiting:") and "free" in messages[-1], messages
        admin.put("/api/v2/jobs/admin~api-blocker/executionType", json={"value": "STOP"})
        model = hub.wait_server("alice", ready=True, server="exp1")
        assert model["servers"]["exp1"]["user_options"] == {"profile": "gpu-1"}
        [job] = [j for j in notebook_jobs(admin, "alice") if j["state"] == "RUNNING"]
        assert "-exp1-" in job["name"] and job["totalGpuNumber"] == 1
        config = admin.get(f"/api/v2/jobs/alice~{job['name']}/config").text
        assert "type: notebook" in config and "env_JUPYTERHUB_API_TOKEN" in config
        assert hub.user_token("alice") not in config  # tokens travel as secrets
        assert h.delete("/users/alice/servers/exp1").status_code in (202, 204)
        hub.wait_server("alice", ready=False, server="exp1")
        wait_job(admin, f"alice~{job['name']}", {"STOPPED"})


def test_profile_outside_my_vcs_is_refused(hub):
    with hub.hub_api() as h:
        r = h.post("/users/alice/servers/nope", json={"profile": "research"})
        assert r.status_code == 400, r.text
        assert "not available to you" in r.json()["message"]
