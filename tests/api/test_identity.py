"""Identity on a real ``pai server`` (issue 16): the one username rule on every way in, admin only
when the hub says so, nothing of a deleted user inherited by a new one of the same name, and
logout ending only the browser session."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import httpx
import pytest

from tests.admin.test_hubauth import SERVICE_TOKEN, FakeHub, give
from tests.server import Server, job_yaml, wait_state

BAD_NAMES = [".", "..", "", "a/b", "/etc", "a\\b", "a\x00b", "-rf", "~alice", "alice~deleted-1", "me",
             "x" * 65, "émile", "a b", "a\nb", "../../root"]


@pytest.fixture(scope="module")
def hub_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeHub.tokens, FakeHub.users, FakeHub.calls = {}, {}, []
    yield f"http://127.0.0.1:{server.server_address[1]}/hub/api"
    server.shutdown()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, hub_url):
    base = tmp_path_factory.mktemp("identity")
    s = Server(base / "data", args=("--simulated-gpus", "2", "--node-cpu", "8"),
               env={"JUPYTERHUB_API_URL": hub_url, "JUPYTERHUB_API_TOKEN": SERVICE_TOKEN,
                    "JUPYTERHUB_SERVICE_NAME": "pai"})
    s.data_dir.mkdir(parents=True)
    try:
        yield s.start()
    finally:
        s.stop()
        s.kill_tasks()


def login(srv: Server, name: str, password: str = "secret-pw") -> httpx.Response:
    return httpx.post(srv.url + "/api/v2/authn/basic/login", json={"username": name, "password": password})


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_the_admin_api_refuses_path_like_and_overlong_usernames(srv, name):
    with srv.client() as c:
        r = c.post("/api/v2/users", json={"username": name, "password": "secret-pw"})
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["code"] == "InvalidParametersError" and body["message"].startswith("username:"), body
        names = {u["username"] for u in c.get("/api/v2/users").json()}
        assert name not in names


def test_login_with_a_path_like_username_is_a_400_naming_the_field(srv):
    r = login(srv, "../admin")
    assert r.status_code == 400 and r.json()["message"].startswith("username:"), r.text


def test_a_hub_user_with_a_path_like_name_is_refused_and_not_created(srv):
    give("t-dots", "..", scopes=["access:services"])
    r = httpx.get(srv.url + "/api/v2/jobs", headers={"Authorization": "token t-dots"})
    assert r.status_code == 401, r.text
    give("t-slash", "a/../../b", scopes=["access:services"])
    assert httpx.get(srv.url + "/api/v2/jobs", headers={"Authorization": "token t-slash"}).status_code == 401
    with srv.client() as c:
        names = {u["username"] for u in c.get("/api/v2/users").json()}
    assert not names & {"..", "a/../../b"}


def test_a_hub_user_named_like_a_pai_admin_is_not_an_admin_unless_the_hub_says_so(srv):
    give("t-fake-admin", "admin", scopes=["access:services"], admin=False)
    fake = {"Authorization": "token t-fake-admin"}
    r = httpx.get(srv.url + "/api/v2/tokens/check", headers=fake)
    assert r.status_code == 200 and r.json()["admin"] is False, r.text
    r = httpx.get(srv.url + "/api/v2/users/me", headers=fake)  # what the hub pages ask
    assert r.status_code == 200 and r.json()["admin"] is False, r.text
    r = httpx.get(srv.url + "/api/v2/users", headers=fake)
    assert r.status_code == 403, r.text
    r = httpx.post(srv.url + "/api/v2/users", headers=fake, json={"username": "mole", "password": "secret-pw"})
    assert r.status_code == 403, r.text
    give("t-real-admin", "root", scopes=["access:services"], admin=True)
    assert httpx.get(srv.url + "/api/v2/users", headers={"Authorization": "token t-real-admin"}).status_code == 200
    # the platform's own admin token still is an admin's
    with srv.client() as c:
        assert c.get("/api/v2/users").status_code == 200


def test_a_new_user_of_a_deleted_name_inherits_no_job_log_or_token(srv):
    old = srv.add_user("alice")
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {old}"}, timeout=30) as c:
        r = c.post("/api/v2/jobs", content=job_yaml("diary", ["echo dear-diary"]),
                   headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        wait_state(c, "alice~diary", {"SUCCEEDED"})
        running = c.post("/api/v2/jobs", content=job_yaml("long", ["sleep 600"]),
                         headers={"Content-Type": "text/yaml"})
        assert running.status_code == 202, running.text
        wait_state(c, "alice~long", {"RUNNING"})
    with srv.client() as admin:
        r = admin.delete("/api/v2/users/alice")
        assert r.status_code == 409 and "alice~long" in r.json()["message"], r.text  # live jobs first
        assert admin.put("/api/v2/jobs/alice~long/executionType", json={"value": "STOP"}).status_code == 202
        wait_state(admin, "alice~long", {"STOPPED"})
        assert admin.delete("/api/v2/users/alice").status_code == 200
    assert httpx.get(srv.url + "/api/v2/jobs", headers={"Authorization": f"Bearer {old}"}).status_code == 401

    new = srv.add_user("alice")
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {new}"}, timeout=30) as c:
        assert c.get("/api/v2/jobs").json() == []
        for path in ("/api/v2/jobs/alice~diary", "/api/v2/jobs/alice~diary/config",
                     "/api/v2/jobs/alice~diary/events", "/api/v2/jobs/alice~long"):
            assert c.get(path).status_code == 404, path
        r = c.get("/api/v2/jobs", params={"username": "alice~deleted-1"})  # a user lists only their own
        assert r.status_code == 200 and r.json() == [], r.text
    with srv.client() as admin:  # the old jobs stay visible to admins, under the tombstone owner
        detail = admin.get("/api/v2/jobs/alice~diary").json()
        assert detail["jobStatus"]["username"] == "alice~deleted-1", detail
        owners = {j["username"] for j in admin.get("/api/v2/jobs").json()}
        assert "alice~deleted-1" in owners


def test_logout_revokes_the_session_token_only(srv):
    srv.add_user("lou")
    session = login(srv, "lou").json()["token"]
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {session}"}, timeout=30) as c:
        app = c.post("/api/v2/tokens/application", json={"name": "script"}).json()["token"]
    # logout with the application token: refused, as in OpenPAI (applications may not), and it keeps working
    r = httpx.delete(srv.url + "/api/v2/authn/basic/logout", headers={"Authorization": f"Bearer {app}"})
    assert r.status_code == 403, r.text
    assert httpx.get(srv.url + "/api/v2/jobs", headers={"Authorization": f"Bearer {app}"}).status_code == 200
    # the printed bootstrap admin token too
    r = httpx.delete(srv.url + "/api/v2/authn/basic/logout", headers={"Authorization": f"Bearer {srv.admin_token}"})
    assert r.status_code == 200
    with srv.client() as admin:
        assert admin.get("/api/v2/users").status_code == 200
    # logout with the browser token ends that session, and only it
    assert httpx.get(srv.url + "/api/v2/jobs", headers={"Authorization": f"Bearer {session}"}).status_code == 200
    assert httpx.delete(srv.url + "/api/v2/authn/basic/logout",
                        headers={"Authorization": f"Bearer {session}"}).status_code == 200
    assert httpx.get(srv.url + "/api/v2/jobs", headers={"Authorization": f"Bearer {session}"}).status_code == 401
    assert httpx.get(srv.url + "/api/v2/jobs", headers={"Authorization": f"Bearer {app}"}).status_code == 200


def test_job_secrets_are_sealed_in_the_database_and_rendered_for_the_task(srv, tmp_path):
    secret = "s3cr3t-" + "q" * 24
    out = tmp_path / "rendered"
    doc = job_yaml("sealed", [f"echo '<% $secrets.pw %>' > {out}"], extra=f"secrets:\n  pw: {secret}")
    with srv.client() as c:
        r = c.post("/api/v2/jobs", content=doc, headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        wait_state(c, "admin~sealed", {"SUCCEEDED"})
        assert secret not in c.get("/api/v2/jobs/admin~sealed/config").text
    assert out.read_text().strip() == secret  # the task got it
    raw = b"".join(p.read_bytes() for p in srv.data_dir.glob("pai.sqlite*"))
    assert raw and secret.encode() not in raw
    key = srv.data_dir / "secrets.key"
    assert key.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_the_hubs_sign_up_and_login_refuse_names_pai_would(name):
    """pai_hub/hub/auth.py: NativeAuthenticator calls validate_username at sign-up and login."""
    import traitlets

    from pai_hub.hub.auth import PaiNativeAuthenticator

    auth = PaiNativeAuthenticator.__new__(PaiNativeAuthenticator)  # without the hub's database
    traitlets.HasTraits.__init__(auth)
    assert not auth.validate_username(name)
    assert auth.validate_username("alice") and auth.validate_username("ml_team.lead-2")
