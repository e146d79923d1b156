"""Every bad value in a path, a query or a body is a 4xx ``{code, message}`` naming the field.

Issue 17: 5,000-digit numbers (past Python's int-conversion limit) in attempt, task-index, version
and terminal paths, ``?offset=-5``, ``since=nan`` on usage and wrongly typed group fields answered
500 with a traceback in the log. Each case here asks a real ``pai server``.
"""

from __future__ import annotations

import httpx
import pytest

from tests.server import job_yaml, wait_state

HUGE = "9" * 5000
JOB = "/api/v2/jobs/admin~values"
TASK = f"{JOB}/attempts/0/taskRoles/worker/taskIndex/0/attempts/0"


@pytest.fixture(scope="module")
def admin(server):
    with server.client() as c:
        r = c.post("/api/v2/jobs", content=job_yaml("values", ["echo hello"]))
        assert r.status_code == 202, r.text
        wait_state(c, "admin~values", {"SUCCEEDED"})
        yield c


def check(r: httpx.Response, status: int, field: str) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"code", "message"}, body
    assert field in body["message"], body
    assert "Traceback" not in body["message"] and len(body["message"]) < 500


@pytest.mark.parametrize(("path", "field"), [
    (f"{JOB}/attempts/{HUGE}", "jobAttemptId"),
    (f"{JOB}/attempts/{HUGE}/taskRoles/worker/taskIndex/0/attempts", "jobAttemptId"),
    (f"{JOB}/attempts/0/taskRoles/worker/taskIndex/{HUGE}/attempts", "taskIndex"),
    (f"{JOB}/attempts/0/taskRoles/worker/taskIndex/{HUGE}/attempts/0/logs", "taskIndex"),
    (f"{JOB}/attempts/0/taskRoles/worker/taskIndex/0/attempts/{HUGE}/logs", "taskAttemptId"),
    (f"{JOB}/attempts/0/taskRoles/worker/taskIndex/0/attempts/{HUGE}/logs/stdout", "taskAttemptId"),
    (f"{JOB}/tasks/worker/{HUGE}/terminal", "taskIndex"),
    (f"/marketplace/api/items/anything/versions/{HUGE}", "version"),
    (f"/marketplace/api/items/anything?version={HUGE}", "version"),
    ("/marketplace/api/items/anything?version=%C2%B2", "version"),  # '²'.isdigit() is True
    (f"{TASK}/logs/stdout?offset=-5", "offset"),
    (f"{TASK}/logs/stdout?offset={HUGE}", "offset"),
    (f"{TASK}/logs/stdout?offset=1e3", "offset"),
    ("/api/v2/jobs?offset=-5", "offset"),
    (f"/api/v2/jobs?offset={HUGE}", "offset"),
    ("/api/v2/jobs?limit=", "limit"),
    ("/api/v2/jobs?limit=ten", "limit"),
    ("/api/v2/usage?since=nan", "since"),
    ("/api/v2/usage?since=-inf", "since"),
    ("/api/v2/usage?until=nan", "since/until"),
    (f"/api/v2/usage?since={HUGE}", "since"),
    ("/api/v2/cluster/timeline?since=nan", "since"),
], ids=lambda v: v.replace(HUGE, "HUGE"))
def test_bad_numbers_are_400_naming_the_field(admin, path, field):
    check(admin.get(path), 400, field)


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/api/v2/groups", {"groupname": "g_ext", "extension": []}, "extension"),
    ("POST", "/api/v2/groups", {"groupname": "g_acl", "extension": {"acls": [1]}}, "extension.acls"),
    ("POST", "/api/v2/groups", {"groupname": "g_desc", "description": {"a": 1}}, "description"),
    ("POST", "/api/v2/groups", {"groupname": "g_ext_name", "externalName": [1]}, "externalName"),
    ("POST", "/api/v2/groups", {"groupname": "g_admin", "extension": {"acls": {"admin": "yes"}}}, "admin"),
    ("PUT", "/api/v2/groups/default", {"extension": "x"}, "extension"),
    ("PUT", "/api/v2/groups/default", {"description": 5}, "description"),
    ("PUT", "/api/v2/groups", {"data": "default"}, "data"),
    ("PUT", "/api/v2/groups", {"data": {"groupname": "default", "description": 5}}, "description"),
])
def test_wrongly_typed_group_fields_are_400_and_store_nothing(admin, method, path, body, field):
    before = admin.get("/api/v2/groups").json()
    check(admin.request(method, path, json=body), 400, field)
    assert admin.get("/api/v2/groups").json() == before


def test_good_values_still_work(admin):
    assert admin.get(f"{JOB}/attempts/0").status_code == 200
    assert admin.get(f"{JOB}/attempts/0/taskRoles/worker/taskIndex/0/attempts").status_code == 200
    r = admin.get(f"{TASK}/logs/stdout?offset=2")
    assert r.status_code == 200 and r.content == b"llo\n" and r.headers["X-Log-Offset"] == "6"
    assert admin.get("/api/v2/jobs?offset=0&limit=1").status_code == 200
    assert admin.get("/api/v2/usage?since=2024-05-01").status_code == 200
