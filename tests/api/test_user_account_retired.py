"""Removing a user retires their Unix account (issue 16, "Identity"): a new user of the same name
runs as a fresh account, with an empty home, and cannot read what the old one left behind."""

from __future__ import annotations

import pwd
import uuid

import pytest

from tests.requirements import require_tool
from tests.server import job_yaml, running_server, wait_state


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    for tool in ("bwrap", "useradd", "usermod", "setpriv"):
        require_tool(tool, "make install (apt-get install bubblewrap passwd util-linux)")
    with running_server(tmp_path_factory.mktemp("retire"), isolation="sandbox") as s:
        yield s


def run(srv, token: str, name: str, command: str) -> str:
    """Run ``command`` as the token's user; its stdout."""
    with srv.client(token) as c:
        r = c.post("/api/v2/jobs", content=job_yaml(name, [command]), headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        me = c.get("/api/v2/tokens/check").json()["username"]
        wait_state(c, f"{me}~{name}", {"SUCCEEDED", "FAILED"}, timeout=60)
        logs = c.get(f"/api/v2/jobs/{me}~{name}/attempts/0/taskRoles/worker/taskIndex/0/attempts/0/logs/stdout")
        return logs.text if logs.status_code == 200 else ""


def test_a_new_user_of_a_removed_users_name_gets_a_fresh_account_and_home(srv):
    name = f"rt{uuid.uuid4().hex[:8]}"
    token = srv.add_user(name)
    first = run(srv, token, "leave", 'echo "old-secret" > "$HOME/left-behind"; id -u; echo "$HOME"').split()
    old_uid, old_home = int(first[0]), first[1]
    assert pwd.getpwuid(old_uid).pw_name == f"pai-{name}"

    with srv.client() as c:
        assert c.delete(f"/api/v2/users/{name}").status_code == 200

    retired = pwd.getpwuid(old_uid)
    assert retired.pw_name != f"pai-{name}"  # the old account is renamed out of the way ...
    assert retired.pw_dir != old_home  # ... with its home
    token = srv.add_user(name)
    second = run(srv, token, "look", 'id -u; echo "$HOME"; cat "$HOME/left-behind" || echo nothing-there;'
                 f' cat {retired.pw_dir}/left-behind || echo denied').split()
    assert int(second[0]) != old_uid, second
    assert second[1] == old_home  # the same path, a fresh home
    assert "old-secret" not in second and "nothing-there" in second and "denied" in second, second
