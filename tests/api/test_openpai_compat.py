"""OpenPAI's REST behaviour where clients depend on it (issue 18), against a real ``pai server``:
trailing slashes, what application tokens may do, user updates, job tags, job attempts history,
ssh info, and the shapes OpenPAI's swagger gives (info, user, events, job detail)."""

from __future__ import annotations

import itertools
import re
import time

import httpx
import pytest

from pai_hub.api.scopes import APPLICATIONS_REFUSED
from pai_hub.api.views import job_summary
from pai_hub.app import ROUTE_PREFIXES, routes
from pai_hub.orchestrator.records import JobRecord
from tests.api.test_openapi import templates
from tests.server import job_yaml, wait_state

YAML = {"Content-Type": "text/yaml"}


def login(srv, name: str, password: str = "secret-pw") -> str:
    r = httpx.post(srv.url + "/api/v2/authn/basic/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def submit(client: httpx.Client, text: str) -> None:
    r = client.post("/api/v2/jobs", content=text, headers=YAML)
    assert r.status_code == 202, r.text


@pytest.fixture(scope="module")
def app_token(server) -> str:
    with server.client() as c:
        return c.post("/api/v2/tokens/application", json={"name": "script"}).json()["token"]


# -- trailing slashes ------------------------------------------------------------------------------
#: values for a route's groups: a framework name, a number, an experiment id, a name
SAMPLES = ("a~b", "1", "abcd1234", "worker", "/x")


def sample_path(pattern: str) -> str | None:
    """A path ``pattern`` matches (its groups filled from :data:`SAMPLES`), or None."""
    for template in sorted(templates(pattern)):
        holes = template.count("{}")
        for values in itertools.product(SAMPLES, repeat=holes):
            path = template.replace("{}", "%s") % values if holes else template
            if re.fullmatch(pattern, path):
                return path
    return None


def test_every_api_route_accepts_a_trailing_slash():
    api = [p for p, _ in routes() if p.startswith((*ROUTE_PREFIXES, "/api/v1", "/marketplace/api", "/metrics"))]
    assert len(api) > 90
    for pattern in api:
        if pattern + "(/.*)" in api or pattern.endswith("(/.*)"):
            continue  # an NNI UI and the proxy below it: "/ui/" is the proxy's
        path = sample_path(pattern)
        assert path is not None, pattern
        assert re.fullmatch(pattern, path.rstrip("/")) and re.fullmatch(pattern, path.rstrip("/") + "/"), pattern


@pytest.mark.parametrize("path", ["/api/v2/users/", "/api/v2/groups/", "/api/v2/jobs/", "/api/v2/info/",
                                  "/api/v2/virtual-clusters/default/", "/rest-server/api/v2/users/admin/",
                                  "/api/v2/groups/default/userlist/", "/marketplace/api/items/"])
def test_the_server_answers_paths_with_a_trailing_slash(server, path):
    with server.client() as c:
        with_slash, without = c.get(path), c.get(path.rstrip("/"))
    assert with_slash.status_code == without.status_code == 200, (with_slash.text, without.text)
    assert with_slash.json() == without.json()


def test_a_user_is_added_to_a_group_through_the_sdks_slashed_path(server):
    server.add_user("slashy")
    with server.client() as c:
        r = c.put("/api/v2/users/slashy/group/", json={"groupname": "admingroup"})
        assert r.status_code == 201, r.text
        assert "admingroup" in c.get("/api/v2/users/slashy/").json()["grouplist"]
        assert c.request("DELETE", "/api/v2/users/slashy/group/", json={"groupname": "admingroup"}).status_code == 201


# -- application tokens -----------------------------------------------------------------------------
#: OpenPAI's routes marked N (checkNotApplication): an application token gets 403 before anything else
REFUSED_TO_APPLICATIONS = [
    ("GET", "/api/v2/tokens", None),
    ("POST", "/api/v2/tokens/application", {}),
    ("DELETE", "/api/v2/tokens/abcdef012345", None),
    ("DELETE", "/api/v2/authn/basic/logout", None),
    ("POST", "/api/v2/users", {"username": "by_app", "password": "secret-pw"}),
    ("PUT", "/api/v2/users", {"data": {"username": "admin", "email": "a@b"}, "patch": True}),
    ("PUT", "/api/v2/users/me", {"data": {"username": "admin", "email": "a@b"}, "patch": True}),
    ("DELETE", "/api/v2/users/nobody", None),
    ("PUT", "/api/v2/users/admin/grouplist", {"grouplist": ["default"]}),
    ("PUT", "/api/v2/users/admin/group", {"groupname": "default"}),
    ("DELETE", "/api/v2/users/admin/group", {"groupname": "default"}),
    ("POST", "/api/v2/groups", {"groupname": "by_app"}),
    ("PUT", "/api/v2/groups", {"data": {"groupname": "default", "description": "x"}}),
    ("PUT", "/api/v2/groups/default", {"description": "x"}),
    ("DELETE", "/api/v2/groups/nogroup", None),
    ("PUT", "/api/v2/virtual-clusters/default", {"cells": {}}),
    ("POST", "/api/v2/cluster/reload", {}),
    ("PUT", "/api/v2/cluster/nodes/nonode/health", {"healthy": True}),
]
#: OpenPAI's T routes: an application token may call them
OPEN_TO_APPLICATIONS = ["/api/v2/jobs", "/api/v2/users/admin", "/api/v2/users", "/api/v2/groups",
                        "/api/v2/groups/default", "/api/v2/groups/default/userlist", "/api/v2/virtual-clusters",
                        "/api/v2/virtual-clusters/default", "/api/v2/cluster/sku-types", "/api/v2/tokens/check"]


@pytest.mark.parametrize("method,path,body", REFUSED_TO_APPLICATIONS, ids=lambda v: str(v) if isinstance(v, str) else "")
def test_application_tokens_may_not_manage_accounts(server, app_token, method, path, body):
    with server.client(app_token) as c:
        r = c.request(method, path, json=body)
    assert r.status_code == 403, r.text
    assert r.json() == {"code": "ForbiddenUserError", "message": APPLICATIONS_REFUSED}
    with server.client() as c:  # nothing changed
        assert c.get("/api/v2/users/by_app").status_code == 404
        assert c.get("/api/v2/groups/by_app").status_code == 404


@pytest.mark.parametrize("path", OPEN_TO_APPLICATIONS)
def test_application_tokens_may_read_and_run_jobs(server, app_token, path):
    with server.client(app_token) as c:
        r = c.get(path)
    assert r.status_code == 200, r.text


def test_an_application_token_submits_stops_and_tags_jobs(server, app_token):
    with server.client(app_token) as c:
        submit(c, job_yaml("by_app", ["sleep 60"]))
        assert c.put("/api/v2/jobs/admin~by_app/tag", json={"value": "script"}).status_code == 200
        assert c.put("/api/v2/jobs/admin~by_app/executionType", json={"value": "STOP"}).status_code == 202
        wait_state(c, "admin~by_app", {"STOPPED"})


def test_the_bootstrap_admin_token_is_a_user_token(server):
    with server.client() as c:
        assert c.get("/api/v2/tokens/check").json()["application"] is False
        tokens = c.get("/api/v2/tokens").json()
    assert all(isinstance(t, str) for t in tokens["tokens"])
    assert [d["id"] for d in tokens["details"]] == tokens["tokens"]
    assert any(d["name"] == "bootstrap" and not d["application"] for d in tokens["details"])
    # logging out with it does not revoke it (only login sessions end at logout)
    r = httpx.delete(server.url + "/api/v2/authn/basic/logout", headers={"Authorization": f"Bearer {server.admin_token}"})
    assert r.status_code == 200
    with server.client() as c:
        assert c.get("/api/v2/users").status_code == 200


# -- groups, users ----------------------------------------------------------------------------------
def test_an_unknown_groups_members_are_an_empty_list(server):
    with server.client() as c:
        r = c.get("/api/v2/groups/no_such_group/userlist")
    assert (r.status_code, r.json()) == (200, [])


def test_put_users_patch_and_full_forms(server):
    server.add_user("pat")
    with server.client() as c:
        r = c.put("/api/v2/users", json={"data": {"username": "pat", "email": "p@one"}, "patch": True})
        assert r.status_code == 201, r.text
        assert c.get("/api/v2/users/pat").json()["email"] == "p@one"
        r = c.put("/api/v2/users", json={"data": {"username": "pat", "email": "p@two"}})  # full form: all fields
        assert r.status_code == 400 and r.json()["message"].startswith("data."), r.text
        r = c.put("/api/v2/users", json={"data": {"username": "pat", "email": "p@two", "virtualCluster": ["default"],
                                                  "admin": True, "password": "brand-new", "extension": {"k": 1}},
                                         "patch": False})
        assert r.status_code == 201, r.text
        pat = c.get("/api/v2/users/pat").json()
        assert (pat["email"], pat["admin"], pat["extension"], pat["storageConfig"]) == ("p@two", True, {"k": 1}, [])
        assert "admingroup" in pat["grouplist"]
        r = c.put("/api/v2/users", json={"data": {"username": "pat", "virtualCluster": ["nope"]}, "patch": True})
        assert (r.status_code, r.json()["code"]) == (400, "NoVirtualClusterError")
        r = c.put("/api/v2/users", json={"data": {"username": "ghost", "email": "g@x"}, "patch": True})
        assert (r.status_code, r.json()["code"]) == (404, "NoUserError")
        r = c.put("/api/v2/users", json={"data": {"username": "pat", "admin": False}, "patch": True})
        assert c.get("/api/v2/users/pat").json()["admin"] is False
    with server.client(login(server, "pat", "brand-new")) as mine:  # a non-admin may not
        r = mine.put("/api/v2/users", json={"data": {"username": "pat", "email": "x@y"}, "patch": True})
        assert r.status_code == 403 and r.json()["message"] == "Non-admin is not allow to do this operation."


def test_put_users_me_changes_the_callers_profile_and_password(server):
    server.add_user("meg")
    other_session = login(server, "meg")
    session = login(server, "meg")
    with server.client(session) as c:
        r = c.put("/api/v2/users/me", json={"data": {"username": "meg", "email": "meg@x"}, "patch": True})
        assert r.status_code == 201, r.text
        r = c.put("/api/v2/users/me", json={"data": {"username": "admin", "email": "meg@x"}, "patch": True})
        assert r.status_code == 403, r.text
        r = c.put("/api/v2/users/me", json={"data": {"username": "meg", "email": "m@x", "oldPassword": "wrong-pw",
                                                     "newPassword": "meg-new-pw"}})
        assert (r.status_code, r.json()["code"]) == (400, "IncorrectPasswordError")
        r = c.put("/api/v2/users/me", json={"data": {"username": "meg", "email": "m@x", "oldPassword": "secret-pw",
                                                     "newPassword": "meg-new-pw"}})
        assert r.status_code == 201, r.text
        assert c.get("/api/v2/users/me").json()["email"] == "m@x"  # the caller's own session stays
        assert c.put("/api/v2/users/meg", json={"data": {"username": "meg"}}).status_code == 404
    # the other browser session is revoked with the old password; the new password logs in
    assert httpx.get(server.url + "/api/v2/jobs", headers={"Authorization": f"Bearer {other_session}"}).status_code == 401
    login(server, "meg", "meg-new-pw")


# -- tags -------------------------------------------------------------------------------------------
def test_tags_on_a_live_and_an_ended_job_show_and_filter(server):
    with server.client() as c:
        submit(c, job_yaml("tag_live", ["sleep 60"]))
        submit(c, job_yaml("tag_done", ["true"]))
        wait_state(c, "admin~tag_done", {"SUCCEEDED"})
        for fw in ("admin~tag_live", "admin~tag_done"):
            r = c.put(f"/api/v2/jobs/{fw}/tag/", json={"value": "exp 1"})
            assert r.json() == {"status": 200, "message": f"Add tag exp 1 for job {fw} successfully."}, r.text
            assert c.put(f"/api/v2/jobs/{fw}/tag", json={"value": "exp 1"}).status_code == 200  # once only
            assert c.get(f"/api/v2/jobs/{fw}").json()["tags"] == ["exp 1"]
        assert c.put("/api/v2/jobs/admin~tag_live/tag", json={"value": "a,b"}).status_code == 400
        names = {j["name"] for j in c.get("/api/v2/jobs", params={"tagsContain": "exp 1"}).json()}
        assert {"tag_live", "tag_done"} <= names
        assert not {"tag_live", "tag_done"} & {j["name"] for j in c.get(
            "/api/v2/jobs", params={"tagsNotContain": "exp 1"}).json()}
        # the live job's tag survives its later turns (stop, then stopped)
        c.put("/api/v2/jobs/admin~tag_live/executionType", json={"value": "STOP"})
        assert wait_state(c, "admin~tag_live", {"STOPPED"})["tags"] == ["exp 1"]
        r = c.request("DELETE", "/api/v2/jobs/admin~tag_live/tag", json={"value": "exp 1"})
        assert r.status_code == 200, r.text
        r = c.request("DELETE", "/api/v2/jobs/admin~tag_live/tag", json={"value": "exp 1"})
        assert (r.status_code, r.json()["code"]) == (404, "NoTagError")
        assert [j["tags"] for j in c.get("/api/v2/jobs", params={"keyword": "tag_live"}).json()] == [[]]
    with server.client(server.add_user("tagger")) as other:  # someone else's job: as if it did not exist
        assert other.put("/api/v2/jobs/admin~tag_done/tag", json={"value": "x"}).status_code == 404


# -- job attempts, ssh, shapes ------------------------------------------------------------------------
def test_job_attempts_list_the_latest_first_then_the_history(server):
    with server.client() as c:
        submit(c, job_yaml("retried", ["exit 3"], extra="jobRetryCount: 2"))
        wait_state(c, "admin~retried", {"FAILED"}, timeout=60)
        attempts = c.get("/api/v2/jobs/admin~retried/job-attempts").json()
        assert [a["attemptIndex"] for a in attempts] == [2, 0, 1]
        assert [a["isLatest"] for a in attempts] == [True, False, False]
        assert all(a["state"] == "FAILED" and a["exitCode"] == 3 for a in attempts), attempts
        assert attempts[1]["appExitTriggerTaskRoleName"] == "worker"
        assert attempts[1]["taskRoles"]["worker"]["taskStatuses"][0]["containerExitCode"] == 3
        one = c.get("/api/v2/jobs/admin~retried/job-attempts/1")
        assert one.status_code == 200 and one.json() == attempts[2]
        r = c.get("/api/v2/jobs/admin~retried/job-attempts/7")
        assert (r.status_code, r.json()["code"]) == (404, "NoJobError")
        assert c.get("/api/v2/jobs/admin~retried/job-attempts/healthz").text == "ok"
        assert c.get("/api/v2/jobs/admin~nothing/job-attempts").status_code == 404


def test_ssh_info_of_a_job_with_the_ssh_plugin(server):
    plugin = ("extras:\n  com.microsoft.pai.runtimeplugin:\n    - plugin: ssh\n      parameters:\n"
              "        jobssh: true\n        userssh: {type: custom, value: 'ssh-ed25519 AAAA test'}")
    with server.client() as c:
        submit(c, job_yaml("with_ssh", ["sleep 60"], instances=2, extra=plugin))
        submit(c, job_yaml("without_ssh", ["true"]))
        wait_state(c, "admin~with_ssh", {"RUNNING"})
        info = c.get("/api/v2/jobs/admin~with_ssh/ssh").json()
        assert [(x["taskRoleName"], x["taskIndex"]) for x in info["containers"]] == [("worker", 0), ("worker", 1)]
        detail = c.get("/api/v2/jobs/admin~with_ssh").json()["taskRoles"]["worker"]["taskStatuses"]
        assert [x["sshPort"] for x in info["containers"]] == [t["containerPorts"]["ssh"] for t in detail]
        assert all(x["sshIp"] for x in info["containers"]) and info["keyPair"]["userKey"] is True
        r = c.get("/api/v2/jobs/admin~without_ssh/ssh")
        assert (r.status_code, r.json()["code"]) == (404, "NoJobSshInfoError")
        c.put("/api/v2/jobs/admin~with_ssh/executionType", json={"value": "STOP"})


def test_openpai_shapes_of_info_users_events_and_job_detail(server):
    with server.client() as c:
        info = c.get("/api/v2/info").json()
        assert info["launcherType"] in ("yarn", "k8s") and info["backend"] == "local"
        assert c.get("/api/v2/users/admin").json()["storageConfig"] == []
        submit(c, job_yaml("shapes", ["true"]))
        wait_state(c, "admin~shapes", {"SUCCEEDED"})
        detail = c.get("/api/v2/jobs/admin~shapes").json()
        assert "jobPriority" in detail and detail["jobPriority"] is None
        events = c.get("/api/v2/jobs/admin~shapes/events").json()["data"]
        assert all({"podUid", "sourceHost"} <= set(e) for e in events)
        assert {e["podUid"] for e in events if e["taskName"]} == {e["taskName"] for e in events if e["taskName"]}


def test_an_ended_job_shows_no_stale_waiting_reason():
    job = JobRecord(id=1, framework_name="a~b", username="a", name="b", virtual_cluster="default",
                    state="FAILED", config_yaml="", protocol={}, secrets={}, submitted_at=time.time(),
                    waiting_reason="no free GPU in VC default")
    assert job_summary(job)["waitingReason"] is None
    job.state = "WAITING"  # type: ignore[assignment]
    assert job_summary(job)["waitingReason"] == "no free GPU in VC default"


def test_an_earlier_bootstrap_application_token_becomes_a_user_token(tmp_path):
    """A data directory from before: its printed admin token was an application token."""
    from pai_hub.store import open_store
    from pai_hub.store.users import UserRepository

    users = UserRepository(open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}"))
    users.ensure_groups(["default"])
    users.create("root_admin", "secret-pw", admin=True)
    old = users.create_token("root_admin", name="bootstrap")  # application=True, as it used to be
    assert users.resolve(old).application is True
    assert users.make_user_token(old) is True
    assert users.resolve(old).application is False and users.resolve(old).admin is True
    assert users.make_user_token(old) is False  # once
    assert users.make_user_token("no-such-token") is False
