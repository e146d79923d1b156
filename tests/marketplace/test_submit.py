"""Jobs referencing marketplace items, submitted over HTTP (``POST /api/v2/jobs`` resolves
``prerequisites[i].marketplace`` at submit time; see docs/marketplace.md)."""

from __future__ import annotations

import yaml

from tests.server import wait_state

from .conftest import MARKET

JOB = """protocolVersion: 2
name: {name}
type: job
prerequisites:
  - {{name: image, type: dockerimage, uri: python:3.11}}
  - {{name: digits, type: data, marketplace: "{ref}"}}
taskRoles:
  worker:
    instances: 1
    dockerImage: image
    data: digits
    resourcePerInstance: {{cpu: 1, memoryMB: 256, gpu: 0}}
    commands:
      - echo uri=<% $data.uri[0] %>
"""


def submit(c, text: str):
    return c.post("/api/v2/jobs", content=text, headers={"Content-Type": "text/yaml"})


def log(c, framework: str) -> str:
    detail = c.get(f"/api/v2/jobs/{framework}").json()
    task = next(iter(detail["taskRoles"].values()))["taskStatuses"][0]
    return c.get(task["containerLog"] + "/stdout").text


def test_job_runs_with_the_resolved_item_and_keeps_its_version(market):
    assert market.publish("alice", name="digits-data", type="data", visibility="public",
                          protocol="type: data\nuri: [file:///data/v1]\n").status_code == 201
    with market.client("bob") as c:
        r = submit(c, JOB.format(name="ref-latest", ref="digits-data"))
        assert r.status_code == 202, r.text
        assert wait_state(c, "bob~ref-latest", {"SUCCEEDED", "FAILED"})["jobStatus"]["state"] == "SUCCEEDED"
        assert log(c, "bob~ref-latest") == "uri=file:///data/v1\n"
        config = yaml.safe_load(c.get("/api/v2/jobs/bob~ref-latest/config").text)
        assert config["extras"]["marketplace"] == [
            {"item": "digits-data", "version": 1, "type": "data", "prerequisite": "digits"}]
        assert config["prerequisites"][1] == {"name": "digits", "type": "data", "uri": ["file:///data/v1"]}
        assert c.get(f"{MARKET}/items/digits-data").json()["useNumber"] == 1

    # the author edits the item: the submitted job keeps what it resolved
    with market.client("alice") as c:
        r = c.put(f"{MARKET}/items/digits-data", json={"protocol": "type: data\nuri: [file:///data/v2]\n"})
        assert r.json()["version"] == 2
    with market.client("bob") as c:
        config = yaml.safe_load(c.get("/api/v2/jobs/bob~ref-latest/config").text)
        assert config["extras"]["marketplace"][0]["version"] == 1
        assert config["prerequisites"][1]["uri"] == ["file:///data/v1"]
        assert log(c, "bob~ref-latest") == "uri=file:///data/v1\n"
        # new jobs get the new version, or the pinned one
        assert submit(c, JOB.format(name="ref-new", ref="digits-data")).status_code == 202
        assert submit(c, JOB.format(name="ref-pinned", ref="digits-data@1")).status_code == 202
        for name, uri in (("ref-new", "v2"), ("ref-pinned", "v1")):
            assert wait_state(c, f"bob~{name}", {"SUCCEEDED", "FAILED"})["jobStatus"]["state"] == "SUCCEEDED"
            assert log(c, f"bob~{name}") == f"uri=file:///data/{uri}\n"


def test_unknown_or_invisible_references_are_refused_naming_the_field(market):
    assert market.publish("alice", name="alice-only", type="data",
                          protocol="type: data\nuri: [file:///x]\n").status_code == 201
    with market.client("carol") as c:
        for ref in ("no-such-item", "alice-only"):
            r = submit(c, JOB.format(name="bad-ref", ref=ref))
            assert r.status_code == 400, r.text
            assert r.json() == {"code": "InvalidProtocolError",
                                "message": f'prerequisites[1].marketplace: no item "{ref}" visible to you'}
    with market.client("alice") as c:  # the author may use it
        assert submit(c, JOB.format(name="own-ref", ref="alice-only")).status_code == 202
