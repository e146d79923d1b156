"""Bad input gets a clear ``{code, message}`` naming the field, and nothing stored changes."""

from __future__ import annotations

import httpx
import pytest

from tests.server import job_yaml


def submit(c: httpx.Client, text: str | bytes, **headers: str) -> httpx.Response:
    return c.post("/api/v2/jobs", content=text, headers={"Content-Type": "text/yaml", **headers})


@pytest.fixture()
def jobs_before(server):
    with server.client() as c:
        before = c.get("/api/v2/jobs").json()
    yield before
    with server.client() as c:
        assert c.get("/api/v2/jobs").json() == before, "a rejected request changed what is stored"


GOOD = job_yaml("good", ["true"])


@pytest.mark.parametrize(
    ("text", "status", "code", "needle"),
    [
        ("name: [unclosed", 400, "InvalidProtocolError", "line"),
        ("- just\n- a list\n", 400, "InvalidProtocolError", "mapping"),
        ("", 400, "InvalidProtocolError", ""),
        (GOOD.replace("type: job", "type: job\nsurprise: 1"), 400, "InvalidProtocolError", "surprise"),
        (GOOD.replace("gpu: 0", "gpu: two"), 400, "InvalidProtocolError", "taskRoles.worker.resourcePerInstance.gpu"),
        (GOOD.replace("instances: 1", "instances: 0"), 400, "InvalidProtocolError", "taskRoles.worker.instances"),
        (GOOD.replace("name: good", "name: 'bad name!'"), 400, "InvalidProtocolError", "name"),
        (GOOD.replace("gpu: 0", "gpu: 64"), 400, "InvalidProtocolError", "resourcePerInstance: the job needs 64"),
        (GOOD.replace("type: job", "type: job\ndefaults:\n  virtualCluster: nowhere"), 400,
         "NoVirtualClusterError", "nowhere"),
        (GOOD.replace("dockerImage: image", "dockerImage: missing"), 400, "InvalidProtocolError", "missing"),
    ],
)
def test_invalid_protocol_is_rejected_with_the_field(server, jobs_before, text, status, code, needle):
    with server.client() as c:
        r = submit(c, text)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == code
    assert needle in body["message"]
    assert "Traceback" not in body["message"]


def test_duplicate_name_conflicts(server):
    with server.client() as c:
        assert submit(c, job_yaml("twice", ["true"])).status_code == 202
        before = c.get("/api/v2/jobs/admin~twice").json()
        r = submit(c, job_yaml("twice", ["exit 1"]))
        assert r.status_code == 409
        assert r.json() == {"code": "ConflictJobError", "message": "Job admin~twice already exists."}
        after = c.get("/api/v2/jobs/admin~twice").json()
        assert after["debugId"] == before["debugId"] and after["jobStatus"]["createdTime"] == \
            before["jobStatus"]["createdTime"]


def test_missing_and_invalid_tokens_are_401(server, jobs_before):
    r = httpx.post(server.url + "/api/v2/jobs", content=GOOD)
    assert r.status_code == 401
    assert r.json() == {"code": "UnauthorizedUserError", "message": "Guest is not allowed to do this operation."}
    for header in ("Bearer nonsense", "Bearer", "Basic !!!", "Token abc"):
        r = httpx.get(server.url + "/api/v2/jobs", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.json()["code"] == "UnauthorizedUserError"


def test_oversized_body_is_413(server, jobs_before):
    big = GOOD + "description: '" + "x" * (2 << 20) + "'\n"
    with server.client() as c:
        r = submit(c, big)
    assert r.status_code == 413
    assert r.json()["code"] == "PayloadTooLargeError"


def test_bad_execution_type_and_unknown_routes(server, jobs_before):
    with server.client() as c:
        r = c.put("/api/v2/jobs/admin~nope/executionType", json={"value": "STOP"})
        assert r.status_code == 404 and r.json()["code"] == "NoJobError"
        r = c.get("/api/v2/no/such/route")
        assert r.status_code == 404 and r.json()["code"] == "NoApiError"
        r = c.post("/api/v2/users", content=b"{not json")
        assert r.status_code == 400 and r.json()["code"] == "InvalidParametersError"


def test_non_admin_cannot_manage_users(server):
    carol = server.add_user("carol")
    with server.client(carol) as c:
        r = c.get("/api/v2/users")
        assert r.status_code == 403 and r.json()["code"] == "ForbiddenUserError"
        assert c.post("/api/v2/users", json={"username": "mallory", "password": "123456"}).status_code == 403
        assert c.get("/api/v2/users/admin").status_code == 403
        assert c.get("/api/v2/users/me").json()["username"] == "carol"


def test_tokens_can_be_created_listed_and_revoked(server):
    dave = server.add_user("dave")
    with server.client(dave) as c:
        app_token = c.post("/api/v2/tokens/application", json={"name": "ci"}).json()["token"]
        ids = c.get("/api/v2/tokens").json()["tokens"]  # OpenPAI's shape: strings (ours are ids)
        assert len(ids) == 2 and all(isinstance(i, str) for i in ids)
        assert "token" not in str(c.get("/api/v2/tokens").json()["details"][0].keys() - {"id"})
    with server.client(app_token) as app:
        assert app.get("/api/v2/tokens/check").json() == {"username": "dave", "application": True, "admin": False}
        r = app.post("/api/v2/tokens/application")
        assert r.status_code == 403
        assert r.json()["message"] == "Applications are not allowed to do this operation."
        basic = httpx.get(server.url + "/api/v2/tokens/check", auth=("dave", app_token))
        assert basic.status_code == 200
        assert app.delete(f"/api/v2/tokens/{app_token}").status_code == 403  # OpenPAI: applications may not
    with server.client(dave) as c:  # the user revokes it
        assert c.delete(f"/api/v2/tokens/{app_token}").status_code == 200
    with server.client(app_token) as app:
        assert app.get("/api/v2/jobs").status_code == 401
    r = httpx.post(server.url + "/api/v2/authn/basic/login", json={"username": "dave", "password": "wrong-pw"})
    assert r.status_code == 400 and r.json()["code"] == "IncorrectPasswordError"
    wrong = r.json()
    r = httpx.post(server.url + "/api/v2/authn/basic/login", json={"username": "nobody", "password": "wrong-pw"})
    # an unknown user gets the wrong password's answer: a login does not tell who has an account
    assert r.status_code == 400 and r.json()["code"] == "IncorrectPasswordError"
    assert r.json()["message"].replace("nobody", "dave") == wrong["message"]
