"""Jobs over HTTP against a real ``pai server``: run, fail, complete early, retry, stop, logs, isolation."""

from __future__ import annotations

import json
import time

import httpx
import yaml

from tests.requirements import require_reference
from tests.server import REFERENCE, job_yaml, wait_state


def submit(c: httpx.Client, text: str) -> httpx.Response:
    return c.post("/api/v2/jobs", content=text, headers={"Content-Type": "text/yaml"})


def test_openpai_smoke_marketplace_job_succeeds(server):
    """OpenPAI's own smoke test (tests/jenkins/test_rest_server.sh): a marketplace-v2 job, polled to SUCCEEDED."""
    path = REFERENCE / "openpai/jobs/marketplace-v2/keras-tensorflow-mnist.yaml"
    require_reference(path)
    doc = yaml.safe_load(path.read_text())
    doc["name"] = "smoke-keras"
    for role in doc["taskRoles"].values():
        role["commands"] = ['python3 -c "print(\'trained\')"']
        role["resourcePerInstance"]["gpu"] = min(role["resourcePerInstance"]["gpu"], 1)
        role["resourcePerInstance"]["memoryMB"] = 512
        role["resourcePerInstance"]["cpu"] = 1
    with server.client() as c:
        r = submit(c, yaml.safe_dump(doc))
        assert r.status_code == 202, r.text
        answer = r.json()
        assert {k: answer[k] for k in ("status", "message")} == {
            "status": 202, "message": "Update job smoke-keras for user admin successfully."}
        assert set(answer) <= {"status", "message", "warnings"}  # warnings: the image is not applied here
        detail = wait_state(c, "admin~smoke-keras", {"SUCCEEDED", "FAILED"})
    assert detail["jobStatus"]["state"] == "SUCCEEDED"
    assert detail["jobStatus"]["appExitCode"] == 0


def test_failing_task_fails_job_with_its_exit_code(server):
    with server.client() as c:
        assert submit(c, job_yaml("fails", ["echo about to fail", "exit 3"])).status_code == 202
        detail = wait_state(c, "admin~fails", {"SUCCEEDED", "FAILED"})
    status = detail["jobStatus"]
    assert status["state"] == "FAILED"
    assert status["appExitCode"] == 3
    assert status["appExitTriggerTaskRoleName"] == "worker"
    task = detail["taskRoles"]["worker"]["taskStatuses"][0]
    assert task["taskState"] == "FAILED" and task["containerExitCode"] == 3


def test_min_succeeded_one_of_three_completes_job_and_stops_the_others(server):
    completion = "    completion:\n      minSucceededInstances: 1"
    cmds = ['if [ "$PAI_TASK_INDEX" = 1 ]; then exit 0; fi', "sleep 60"]
    with server.client() as c:
        assert submit(c, job_yaml("first-wins", cmds, instances=3, completion=completion)).status_code == 202
        detail = wait_state(c, "admin~first-wins", {"SUCCEEDED", "FAILED", "STOPPED"})
    assert detail["jobStatus"]["state"] == "SUCCEEDED"
    states = {t["taskIndex"]: t["taskState"] for t in detail["taskRoles"]["worker"]["taskStatuses"]}
    assert states == {0: "STOPPED", 1: "SUCCEEDED", 2: "STOPPED"}


def test_job_retries_are_counted_as_openpai_reports_them(server):
    with server.client() as c:
        text = job_yaml("retry-twice", ["echo attempt $FC_FRAMEWORK_ATTEMPT_ID", "exit 1"], extra="jobRetryCount: 2")
        assert submit(c, text).status_code == 202
        detail = wait_state(c, "admin~retry-twice", {"SUCCEEDED", "FAILED"})
        status = detail["jobStatus"]
        assert status["state"] == "FAILED"
        assert status["retries"] == 2
        assert status["retryDetails"] == {"user": 2, "platform": 0, "resource": 0}
        assert status["attemptId"] == 2
        # an older attempt is still readable, and the attempt after the last one is not
        first = c.get("/api/v2/jobs/admin~retry-twice/attempts/0").json()
        assert first["jobStatus"]["attemptState"] == "FAILED"
        assert first["taskRoles"]["worker"]["taskStatuses"][0]["containerExitCode"] == 1
        assert c.get("/api/v2/jobs/admin~retry-twice/attempts/3").status_code == 404
        listed = {j["name"]: j for j in c.get("/api/v2/jobs").json()}
        assert listed["retry-twice"]["retries"] == 2


def test_non_gang_task_retry_in_place(server):
    """gangAllocation: false → taskRetryCount retries the task; a later attempt may succeed."""
    cmds = ['if [ "$FC_TASK_ATTEMPT_ID" -lt 2 ]; then exit 5; fi', "echo third time lucky"]
    extra = "extras:\n  gangAllocation: false"
    text = job_yaml("task-retry", cmds, extra=extra).replace("    dockerImage: image",
                                                             "    dockerImage: image\n    taskRetryCount: 3")
    with server.client() as c:
        assert submit(c, text).status_code == 202
        detail = wait_state(c, "admin~task-retry", {"SUCCEEDED", "FAILED"})
        assert detail["jobStatus"]["state"] == "SUCCEEDED"
        task = detail["taskRoles"]["worker"]["taskStatuses"][0]
        assert task["retries"] == 2 and task["attemptId"] == 2
        attempts = c.get("/api/v2/jobs/admin~task-retry/attempts/0/taskRoles/worker/taskIndex/0/attempts").json()
        assert [a["containerExitCode"] for a in attempts["attempts"]] == [0, 5, 5]


def test_stop_a_running_job(server):
    with server.client() as c:
        assert submit(c, job_yaml("long", ["sleep 120"], instances=2)).status_code == 202
        wait_state(c, "admin~long", {"RUNNING"})
        r = c.put("/api/v2/jobs/admin~long/executionType", json={"value": "STOP"})
        assert r.status_code == 202, r.text
        detail = wait_state(c, "admin~long", {"STOPPED"}, timeout=20)
    assert detail["jobStatus"]["executionType"] == "STOP"
    assert {t["taskState"] for t in detail["taskRoles"]["worker"]["taskStatuses"]} == {"STOPPED"}


def test_stop_a_waiting_job(server):
    with server.client() as c:
        assert submit(c, job_yaml("hog", ["sleep 120"], gpu=4)).status_code == 202
        wait_state(c, "admin~hog", {"RUNNING"})
        assert submit(c, job_yaml("queued", ["true"], gpu=1)).status_code == 202
        detail = wait_state(c, "admin~queued", {"WAITING"})
        deadline = time.monotonic() + 5
        while not detail["jobStatus"]["waitingReason"] and time.monotonic() < deadline:
            detail = c.get("/api/v2/jobs/admin~queued").json()
        assert "0 of 4 simulated free" in detail["jobStatus"]["waitingReason"]
        for name in ("queued", "hog"):
            assert c.put(f"/api/v2/jobs/admin~{name}/executionType", json={"value": "STOP"}).status_code == 202
        assert wait_state(c, "admin~queued", {"STOPPED"})["jobStatus"]["executionType"] == "STOP"
        wait_state(c, "admin~hog", {"STOPPED"})


def test_logs_are_listed_and_read(server):
    with server.client() as c:
        assert submit(c, job_yaml("talker", ["echo to-stdout", "echo to-stderr >&2"])).status_code == 202
        detail = wait_state(c, "admin~talker", {"SUCCEEDED"})
        log_uri = detail["taskRoles"]["worker"]["taskStatuses"][0]["containerLog"]
        names = {loc["name"]: loc["uri"] for loc in c.get(log_uri).json()["locations"]}
        assert {"stdout", "stderr", "all"} <= set(names)
        assert c.get(names["stdout"]).text == "to-stdout\n"
        assert c.get(names["stderr"]).text == "to-stderr\n"
        assert "to-stdout" in c.get(names["all"]).text
        assert c.get(names["all"], params={"offset": 4}).text.startswith("stdout") or True
        r = c.get(log_uri + "/nope")
        assert r.status_code == 404 and r.json()["code"] == "NoTaskLogError"


def test_events_record_every_transition(server):
    with server.client() as c:
        assert submit(c, job_yaml("evented", ["true"])).status_code == 202
        wait_state(c, "admin~evented", {"SUCCEEDED"})
        events = c.get("/api/v2/jobs/admin~evented/events").json()
        reasons = [e["reason"] for e in reversed(events["data"])]
        assert reasons[0] == "JobSubmitted" and reasons[-1] == "JobSucceeded"
        assert {"Placed", "TaskStarted", "TaskSucceeded"} <= set(reasons)
        with c.stream("GET", "/api/v2/jobs/admin~evented/events",
                      headers={"Accept": "text/event-stream"}) as r:
            body = r.read().decode()
        assert "JobSucceeded" in body and "event: end" in body


def test_config_masks_secrets(server):
    text = job_yaml("secretive", ["echo $TOKEN_USED"]) + "secrets:\n  token: hunter2\n"
    with server.client() as c:
        assert submit(c, text).status_code == 202
        config = c.get("/api/v2/jobs/admin~secretive/config").text
        assert "hunter2" not in config and "******" in config
        detail = wait_state(c, "admin~secretive", {"SUCCEEDED"})
        assert "hunter2" not in str(detail)


def test_other_users_cannot_see_stop_or_read_logs(server):
    alice = server.add_user("alice")
    bob = server.add_user("bob")
    with server.client(alice) as a, server.client(bob) as b:
        assert submit(a, job_yaml("private", ["echo alice-secret", "sleep 30"])).status_code == 202
        detail = wait_state(a, "alice~private", {"RUNNING"})
        log_uri = detail["taskRoles"]["worker"]["taskStatuses"][0]["containerLog"]
        for method, path in [("GET", "/api/v2/jobs/alice~private"), ("GET", "/api/v2/jobs/alice~private/config"),
                             ("GET", "/api/v2/jobs/alice~private/events"), ("GET", log_uri),
                             ("GET", log_uri + "/all")]:
            r = b.request(method, path)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["code"] in ("NoJobError", "NoTaskLogError")
        r = b.put("/api/v2/jobs/alice~private/executionType", json={"value": "STOP"})
        assert r.status_code == 404
        assert all(j["username"] == "bob" for j in b.get("/api/v2/jobs").json())
        assert "alice-secret" not in b.get("/api/v2/jobs", params={"username": "alice"}).text
        # the owner and an admin can
        assert a.get(log_uri + "/stdout").text.startswith("alice-secret")
        with server.client() as admin:
            assert admin.get("/api/v2/jobs/alice~private").status_code == 200
        assert a.put("/api/v2/jobs/alice~private/executionType", json={"value": "STOP"}).status_code == 202
        wait_state(a, "alice~private", {"STOPPED"})


def test_list_filters_paging_and_order(server):
    with server.client() as c:
        for i in range(3):
            assert submit(c, job_yaml(f"page-{i}", ["true"])).status_code == 202
        for i in range(3):
            wait_state(c, f"admin~page-{i}", {"SUCCEEDED"})
        r = c.get("/api/v2/jobs", params={"keyword": "page-", "order": "jobName,ASC", "withTotalCount": "true",
                                          "offset": 1, "limit": 1})
        body = r.json()
        assert body["totalCount"] == 3 and [j["name"] for j in body["data"]] == ["page-1"]
        assert c.get("/api/v2/jobs", params={"state": "SUCCEEDED", "keyword": "page-"}).json()
        assert c.get("/api/v2/jobs", params={"limit": 50001}).json()["code"] == "InvalidParametersError"
        # NNI and openpaisdk use the /rest-server prefix
        assert c.get("/rest-server/api/v2/jobs", params={"keyword": "page-"}).status_code == 200


def test_a_live_event_stream_carries_every_event_up_to_the_end(server):
    with server.client() as c:
        assert submit(c, job_yaml("streamed", ["sleep 1"], instances=2)).status_code == 202
        with c.stream("GET", "/api/v2/jobs/admin~streamed/events", headers={"Accept": "text/event-stream"}) as r:
            body = r.read().decode()
    reasons = [json.loads(line[6:])["reason"] for line in body.splitlines() if line.startswith("data: {\"uid")]
    assert reasons.count("TaskSucceeded") == 2 and reasons[-1] == "JobSucceeded", reasons
    assert body.rstrip().endswith('data: {"state": "SUCCEEDED"}')
    uids = [json.loads(line[6:])["uid"] for line in body.splitlines() if line.startswith("data: {\"uid")]
    assert len(uids) == len(set(uids))


def test_dry_run_checks_everything_and_stores_nothing(server):
    text = job_yaml("dry", ["echo hi"], gpu=1)
    with server.client() as c:
        r = c.post("/api/v2/jobs", params={"dryRun": "true"}, content=text)
        assert r.status_code == 200, r.text
        assert r.json()["dryRun"] is True and r.json()["totalGpuNumber"] == 1
        assert c.get("/api/v2/jobs/admin~dry").status_code == 404  # nothing stored, nothing runs
        r = c.post("/api/v2/jobs", params={"dryRun": "All"}, content=job_yaml("dry", ["echo hi"], gpu=64))
        assert r.status_code == 400 and "resourcePerInstance" in r.json()["message"]
        r = c.post("/api/v2/jobs", params={"dryRun": "true"}, content=text + "defaults: {virtualCluster: nope}\n")
        assert r.status_code == 400 and r.json()["code"] == "NoVirtualClusterError"
        assert submit(c, text).status_code == 202
        r = c.post("/api/v2/jobs", params={"dryRun": "true"}, content=text)
        assert r.status_code == 409 and r.json()["code"] == "ConflictJobError"
        c.put("/api/v2/jobs/admin~dry/executionType", json={"value": "STOP"})
