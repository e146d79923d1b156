"""The document limits an administrator configures hold on every route that reads a user document.

Issue 17: the limits existed (``PaiHub.max_instances_per_role`` ...) but the handlers read every
job, batch, array and experiment with the built-in defaults, so lowering one changed nothing, and
a 100,000-deep experiment or JSON body was a RecursionError (500). One real ``pai server`` here,
configured in its data directory's ``pai_config.py`` with small limits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.server import Server, job_yaml

INSTANCES = 5
RENDERED = 20_000
NODES = 3_000


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("limits")
    srv = Server(base / "data", args=("--simulated-gpus", "0", "--node-cpu", "16"))
    srv.data_dir.mkdir(mode=0o700)
    config = srv.data_dir / "pai_config.py"
    config.write_text(f"c.PaiHub.max_instances_per_role = {INSTANCES}\n"
                      f"c.PaiHub.max_rendered_chars = {RENDERED}\n"
                      f"c.PaiHub.max_job_nodes = {NODES}\n")
    config.chmod(0o600)
    try:
        yield srv.start()
    finally:
        srv.stop()
        srv.kill_tasks()


@pytest.fixture()
def admin(limited) -> Iterator[httpx.Client]:
    with limited.client() as c:
        yield c


def refused(r: httpx.Response, *needles: str) -> str:
    assert r.status_code == 400, (r.status_code, r.text[:500])
    message = r.json()["message"]
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in message
    return message


def test_a_role_over_the_configured_instances_is_refused_naming_the_limit(admin):
    doc = job_yaml("six", ["true"], instances=INSTANCES + 1)
    for query in ("", "?dryRun=true"):
        r = admin.post(f"/api/v2/jobs{query}", content=doc)
        refused(r, "taskRoles.worker.instances", f"limit of {INSTANCES}")
    r = admin.post("/api/v2/jobs?dryRun=true", content=job_yaml("five", ["true"], instances=INSTANCES))
    assert r.status_code == 200, r.text
    r = admin.post("/api/v2/jobs", content=job_yaml("five", ["true"], instances=INSTANCES))
    assert r.status_code == 202, r.text


def test_batches_and_arrays_use_the_configured_limits(admin):
    import yaml

    six = yaml.safe_load(job_yaml("batched", ["true"], instances=INSTANCES + 1))
    r = admin.post("/api/v2/jobs/batch?dryRun=true", json=[six])
    refused(r, "jobs[0]", f"limit of {INSTANCES}")
    r = admin.post("/api/v2/jobs/batch?dryRun=true", json={"job": six, "array": "0-1"})
    refused(r, f"limit of {INSTANCES}")
    r = admin.post("/api/v2/jobs?dryRun=true&array=0-1", content=job_yaml("arr", ["true"], instances=INSTANCES + 1))
    refused(r, f"limit of {INSTANCES}")
    five = yaml.safe_load(job_yaml("batched", ["true"], instances=INSTANCES))
    r = admin.post("/api/v2/jobs/batch?dryRun=true", json={"job": five, "array": "0-1"})
    assert r.status_code == 200, r.text


def test_rendered_templates_use_the_configured_budget(admin):
    big = "x" * 4_000
    commands = ["echo <% $parameters.big %>"] * 6  # 24,000 characters rendered, over 20,000
    extra = f"parameters:\n  big: {big}\n"
    refused(admin.post("/api/v2/jobs?dryRun=true", content=job_yaml("tpl", commands, extra=extra)),
            f"{RENDERED} characters")
    r = admin.post("/api/v2/jobs?dryRun=true", content=job_yaml("tpl", commands[:4], extra=extra))
    assert r.status_code == 200, r.text


def test_json_bodies_are_held_to_the_configured_node_limit(admin):
    wide = {"groupname": "wide", "description": "x", "extension": {"acls": {"virtualClusters": ["v"] * NODES}}}
    refused(admin.post("/api/v2/groups", json=wide), f"more than {NODES} nodes")
    assert admin.get("/api/v2/groups/wide").status_code == 404


def test_a_deeply_nested_json_body_is_400_not_500(admin):
    deep = '{"groupname": "deep", "extension": ' + "[" * 100_000 + "]" * 100_000 + "}"
    refused(admin.post("/api/v2/groups", content=deep, headers={"Content-Type": "application/json"}), "nested")


def test_a_deeply_nested_experiment_is_400_not_500(admin):
    for body in ("[" * 100_000 + "]" * 100_000, "a:\n" + "".join(" " * i + "- \n" for i in range(1, 2000))):
        r = admin.post("/api/v2/experiments", content=body)
        refused(r, "nest")


def test_an_experiment_over_the_node_limit_is_400(admin):
    space = {f"p{i}": {"_type": "choice", "_value": list(range(10))} for i in range(NODES // 10)}
    r = admin.post("/api/v2/experiments", content=json.dumps({"searchSpace": space, "trial": {"command": "true"}}))
    refused(r, "experiment request", f"more than {NODES}")


def test_experiment_class_args_must_be_a_mapping(admin):
    space = {"x": {"_type": "choice", "_value": [1, 2]}}
    for part in ("tuner", "assessor"):
        body = {"searchSpace": space, "trial": {"command": "true", "cpu": 1, "memoryMB": 100},
                part: {"name": "TPE" if part == "tuner" else "Medianstop", "classArgs": "optimize_mode=max"}}
        refused(admin.post("/api/v2/experiments", json=body), f"{part}.classArgs")
