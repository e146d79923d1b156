"""Bulk submission over HTTP (pai_hub/api/bulk.py): job arrays and lists of documents, stored all
or nothing, errors naming the element, against a real ``pai server``."""

from __future__ import annotations

import json

import httpx
import yaml

from tests.server import job_yaml, wait_state


def stdout_of(c: httpx.Client, framework: str) -> str:
    detail = wait_state(c, framework, {"SUCCEEDED", "FAILED"})
    assert detail["jobStatus"]["state"] == "SUCCEEDED", detail
    log_uri = detail["taskRoles"]["worker"]["taskStatuses"][0]["containerLog"]
    names = {loc["name"]: loc["uri"] for loc in c.get(log_uri).json()["locations"]}
    return c.get(names["stdout"]).text


def batch(c: httpx.Client, body: object, **params: str) -> httpx.Response:
    return c.post("/api/v2/jobs/batch", content=yaml.safe_dump(body), params=params,
                  headers={"Content-Type": "text/yaml"})


def exists(c: httpx.Client, name: str) -> bool:
    return c.get(f"/api/v2/jobs/admin~{name}").status_code == 200


def test_an_array_runs_each_element_with_its_index_three_ways(server):
    commands = ["echo env=$PAI_ARRAY_INDEX/$PAI_ARRAY_COUNT/$PAI_ARRAY_NAME",
                "echo 'text=${PAI_ARRAY_INDEX}'", "echo param=<% $parameters.PAI_ARRAY_INDEX %>"]
    with server.client() as c:
        r = batch(c, {"job": job_yaml("sweep", commands), "array": "0-4:2"})
        assert r.status_code == 202, r.text
        assert r.json()["names"] == ["sweep-0", "sweep-2", "sweep-4"] and r.json()["count"] == 3
        assert stdout_of(c, "admin~sweep-2") == "env=2/3/sweep\ntext=2\nparam=2\n"
        assert stdout_of(c, "admin~sweep-4").startswith("env=4/3/sweep\n")
        config = yaml.safe_load(c.get("/api/v2/jobs/admin~sweep-4/config").text)
        assert config["name"] == "sweep-4" and config["parameters"]["PAI_ARRAY_INDEX"] == 4
        assert not exists(c, "sweep-1")


def test_openpai_submit_route_takes_an_array_spec(server):
    with server.client() as c:
        r = c.post("/api/v2/jobs", params={"array": "1,3", "dryRun": "true"},
                   content=job_yaml("routed", ["true"]), headers={"Content-Type": "text/yaml"})
        assert r.status_code == 200 and r.json()["dryRun"] is True and r.json()["names"] == ["routed-1", "routed-3"]
        assert not exists(c, "routed-1")
        r = c.post("/api/v2/jobs", params={"array": "1,3"}, content=job_yaml("routed", ["true"]))
        assert r.status_code == 202, r.text
        assert wait_state(c, "admin~routed-3", {"SUCCEEDED"})


def test_a_list_of_documents_is_stored_all_or_nothing_with_every_bad_element_named(server):
    good = yaml.safe_load(job_yaml("listed-a", ["true"]))
    bad = yaml.safe_load(job_yaml("listed-b", ["true"]))
    bad["taskRoles"]["worker"]["commands"] = "not a list"
    also_bad = job_yaml("listed-c", ["true"]).replace("instances: 1", "instances: -2")
    with server.client() as c:
        r = batch(c, [good, bad, also_bad])
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["code"] == "InvalidProtocolError"
        assert "jobs[1]: taskRoles.worker.commands" in body["message"]
        assert "jobs[2]: taskRoles.worker.instances" in body["message"]
        assert "jobs[0]" not in body["message"]
        assert not exists(c, "listed-a")  # nothing was stored

        r = c.post("/api/v2/jobs/batch", content=json.dumps([good, job_yaml("listed-d", ["true"])]),
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 202, r.text
        assert r.json()["names"] == ["listed-a", "listed-d"]
        assert wait_state(c, "admin~listed-d", {"SUCCEEDED"})


def test_a_taken_name_refuses_the_whole_array_naming_the_element(server):
    with server.client() as c:
        assert c.post("/api/v2/jobs", content=job_yaml("taken-3", ["true"])).status_code == 202
        r = batch(c, {"job": job_yaml("taken", ["true"]), "array": "0-5"})
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "ConflictJobError"
        assert r.json()["message"].startswith("array element 3: Job admin~taken-3 already exists.")
        assert not any(exists(c, f"taken-{i}") for i in (0, 1, 2, 4, 5))
        r = batch(c, [job_yaml("twice", ["true"]), job_yaml("twice", ["true"])])
        assert r.status_code == 409 and r.json()["message"].startswith("jobs[1]: Job admin~twice already exists.")
        assert not exists(c, "twice")
        # a dry run checks names too, also against a job that has ended and left the control plane's memory
        wait_state(c, "admin~taken-3", {"SUCCEEDED"})
        r = batch(c, {"job": job_yaml("taken", ["true"]), "array": "2-3"}, dryRun="true")
        assert r.status_code == 409 and r.json()["message"].startswith("array element 3: Job admin~taken-3"), r.text


def test_bad_array_requests_say_which_field_and_how_to_fix_it(server):
    doc = job_yaml("badarr", ["true"])
    with server.client() as c:
        cases = [
            ({"job": doc, "array": "5-1"}, 400, "InvalidParametersError", "array: '5-1': the range ends"),
            ({"job": doc, "array": "0-10000"}, 400, "InvalidParametersError", "array: more than 10000 elements"),
            ({"job": doc}, 400, "InvalidParametersError", "array: missing"),
            ({"job": doc, "array": "0-1", "jobs": []}, 400, "InvalidParametersError", "jobs: unknown key"),
            ({"job": doc.replace("type: job", "parameters: {PAI_ARRAY_INDEX: 1}\ntype: job"), "array": "0-1"},
             400, "InvalidProtocolError", "parameters.PAI_ARRAY_INDEX: is set for each array element"),
            ({"job": doc.replace("cpu: 1", "cpu: 1000"), "array": "0-1"},
             400, "InvalidProtocolError", "taskRoles.worker.resourcePerInstance"),
            ({"job": doc.replace("type: job", "type: job\ndefaults: {virtualCluster: nope}"), "array": "0-1"},
             400, "NoVirtualClusterError", "defaults.virtualCluster"),
            ([], 400, "InvalidParametersError", "jobs: the list is empty"),
            ([3], 400, "InvalidProtocolError", "jobs[0]: expected a job document"),
        ]
        for body, status, code, says in cases:
            r = batch(c, body)
            assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
            assert says in r.json()["message"], r.text
        assert not exists(c, "badarr-0")


def test_a_batch_has_its_own_body_limit(server):
    """A batch may be larger than one job protocol (max_job_bytes, 1 MiB) up to max_batch_bytes (64 MiB)."""
    with server.client() as c:
        two_mib = ("# " + "x" * 1000 + "\n") * 2100
        r = c.post("/api/v2/jobs/batch", content=two_mib + yaml.safe_dump([]), headers={"Content-Type": "text/yaml"})
        assert r.status_code != 413, r.text  # read whole, then refused for what it holds
        r = c.post("/api/v2/jobs", content=two_mib, headers={"Content-Type": "text/yaml"})
        assert r.status_code == 413, r.text
        r = c.post("/api/v2/jobs/batch", content=b"#" * ((64 << 20) + 1), headers={"Content-Type": "text/yaml"})
        assert r.status_code == 413 and "max_batch_bytes" in r.json()["message"], r.text
