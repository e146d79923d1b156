"""``PUT /api/v2/jobs/{fw}/executionType``: what OpenPAI answers.

OpenPAI's REST server merge-patches FrameworkController's ``spec.executionType`` and answers 202;
FrameworkController only moves a framework from Start to Stop. So ``STOP`` stops the job, and
``START`` is accepted and changes nothing: a running job runs on, a stopped job stays stopped (it
is not restarted, no new attempt). Someone else's job is 404, as everywhere in the jobs API.
"""

from __future__ import annotations

import httpx

from tests.server import job_yaml, wait_state

OK = {"status": 202, "message": "Execute job admin~steady successfully."}


def put(c: httpx.Client, value: object, framework: str = "admin~steady") -> httpx.Response:
    return c.put(f"/api/v2/jobs/{framework}/executionType", json={"value": value})


def test_start_is_accepted_and_changes_nothing_stop_stops(server):
    with server.client() as c:
        r = c.post("/api/v2/jobs", content=job_yaml("steady", ["sleep 600"]), headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        running = wait_state(c, "admin~steady", {"RUNNING"})

        r = put(c, "START")
        assert (r.status_code, r.json()) == (202, OK)
        after = c.get("/api/v2/jobs/admin~steady").json()["jobStatus"]
        assert (after["state"], after["executionType"], after["attemptId"]) == \
            ("RUNNING", "START", running["jobStatus"]["attemptId"])

        r = put(c, "STOP")
        assert (r.status_code, r.json()) == (202, OK)
        stopped = wait_state(c, "admin~steady", {"STOPPED"})["jobStatus"]

        r = put(c, "START")
        assert (r.status_code, r.json()) == (202, OK)
        events = c.get("/api/v2/jobs/admin~steady/events").json()["totalCount"]
        after = c.get("/api/v2/jobs/admin~steady").json()["jobStatus"]
        assert (after["state"], after["executionType"], after["attemptId"]) == \
            ("STOPPED", "STOP", stopped["attemptId"])  # not restarted: no new attempt
        assert c.get("/api/v2/jobs/admin~steady/events").json()["totalCount"] == events

        for bad in ("RESUME", "start", None):
            r = put(c, bad)
            assert (r.status_code, r.json()["code"]) == (400, "InvalidParametersError"), bad


def test_someone_elses_job_is_not_found(server):
    alice = server.add_user("exec-alice")
    bob = server.add_user("exec-bob")
    with server.client(alice) as a, server.client(bob) as b:
        r = a.post("/api/v2/jobs", content=job_yaml("mine", ["sleep 600"]), headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        for value in ("START", "STOP"):
            r = put(b, value, "exec-alice~mine")
            assert (r.status_code, r.json()["code"]) == (404, "NoJobError")
        assert put(a, "STOP", "exec-alice~mine").status_code == 202
        wait_state(a, "exec-alice~mine", {"STOPPED"})
