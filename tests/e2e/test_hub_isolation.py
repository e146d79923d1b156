"""A notebook terminal cannot reach the platform or another user (issue 16, the notebook-terminal
column of its matrix), on the default platform: ``make run`` as root with bubblewrap installed
resolves ``--isolation auto`` to ``sandbox``.

alice starts her notebook (a PAI job) through the hub, opens a Jupyter terminal in it through her
single-user server's API, as her browser would, and types commands that try to read and write
what belongs to the platform (its admin token, database, the hub's cookie secret, service token and
admin password) and to bob (his home, his running task's directory and the secret it wrote). Each
attempt is its own assertion. Two controls keep the denials honest: the same terminal can write its
own home, and the test (as root) checks that every probed path exists and holds what it says.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import time
from pathlib import Path

import httpx
import pytest

from pai_runtime.accounts import unix_account_name
from pai_runtime.isolation import IsolationPolicy
from tests.e2e.hub import Hub, require_e2e_deps, wait_job
from tests.requirements import require_tool
from tests.server import job_yaml
from tests.terminal import shell_session

pytestmark = pytest.mark.slow

BOB_SECRET = "bob-secret-5f1c9a"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The platform as ``make run`` starts it: no --isolation flag, so ``auto``."""
    require_e2e_deps()
    require_tool("bwrap", "make install (apt-get install bubblewrap)")
    if os.geteuid() != 0:
        pytest.fail("this test runs the platform as root (it creates Unix accounts); run it as root", pytrace=False)
    h = Hub(tmp_path_factory.mktemp("hub-isolation"))
    try:
        h.start()
        log = h.log.read_text(errors="replace")
        assert "isolation sandbox:" in log, f"auto did not resolve to sandbox; see {h.log}"
        yield h
    finally:
        h.stop()
        h.kill_tasks()


def account(pai_user: str) -> pwd.struct_passwd:
    return pwd.getpwnam(unix_account_name(IsolationPolicy(mode="sandbox"), pai_user))


def bob_task_dir(data_dir: Path, framework: str) -> Path:
    """The task directory of bob's running job, found by the test (as root) from its spec.json."""
    for spec in (data_dir / "run" / "tasks").glob("*/spec.json"):
        if json.loads(spec.read_text()).get("framework_name") == framework:
            return spec.parent
    raise AssertionError(f"no task directory of {framework} under {data_dir / 'run' / 'tasks'}")


def terminal(hub: Hub, user: str, token: str, script: str) -> str:
    """Open a Jupyter terminal in ``user``'s notebook (its REST API, then terminado's websocket) and
    return what ``script`` printed."""
    headers = {"Authorization": f"token {token}"}
    r = httpx.post(f"{hub.url}/user/{user}/api/terminals", headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    name = r.json()["name"]
    url = f"ws://127.0.0.1:{hub.port}/user/{user}/terminals/websocket/{name}"
    return asyncio.run(shell_session(url, headers, script + "\nexit\n", timeout=60))


def probes(checks: dict[str, str]) -> str:
    """One shell line per check: run it quietly, then print ``name=<exit status>``. The typed line
    (echoed by the terminal) shows ``$((...))``, never a digit after the ``=``."""
    return "\n".join(f"( {cmd} ) >/dev/null 2>&1; echo \"{name}=$((0+$?))\"" for name, cmd in checks.items())


def results(output: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"([a-z_]+)=(\d+)", output)}


@pytest.fixture(scope="module")
def probed(hub):
    """bob's task running and holding a secret; alice's notebook up; every probe typed into her terminal."""
    bob = hub.user_token("bob")
    with httpx.Client(base_url=hub.pai_url, headers={"Authorization": f"token {bob}"}, timeout=30) as c:
        r = c.post("/api/v2/jobs", content=job_yaml("iso-bob", [f"echo {BOB_SECRET} > secret.txt", "sleep 600"]),
                   headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        wait_job(c, "bob~iso-bob", {"RUNNING"}, timeout=90)
    task = bob_task_dir(hub.data_dir, "bob~iso-bob")
    deadline = time.monotonic() + 30
    while not list(task.rglob("secret.txt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    [secret] = list(task.rglob("secret.txt"))
    assert secret.read_text().strip() == BOB_SECRET

    with hub.hub_api() as h:
        h.post("/users/alice")
        r = h.post("/users/alice/server", json={"profile": "cpu"})
        assert r.status_code in (201, 202), r.text
    hub.wait_server("alice", ready=True, timeout=120)
    data, bob_home = hub.data_dir, Path(account("bob").pw_dir)
    paths = {
        "admin_token": data / "admin-token",
        "database": data / "pai.sqlite",
        "cookie_secret": data / "hub" / "jupyterhub_cookie_secret",
        "service_token": data / "hub" / "pai-service-token",
        "admin_password": data / "hub" / "admin-password",
        "hub_database": data / "hub" / "jupyterhub.sqlite",
        "bob_home": bob_home,
        "bob_task": task,
        "bob_secret": secret,
    }
    for what, path in paths.items():  # the probes aim at things that are there
        assert path.exists(), f"{what}: {path} does not exist, so a denial would prove nothing"
    (bob_home / "alice-was-here").unlink(missing_ok=True)  # accounts outlive a test run; so may its marks
    q = {k: json.dumps(str(v)) for k, v in paths.items()}
    checks = {
        "alive": "true",
        "own_home": 'touch "$HOME/alice-was-here"',
        "read_admin_token": f"cat {q['admin_token']}",
        "read_database": f"head -c 16 {q['database']}",
        "read_cookie_secret": f"cat {q['cookie_secret']}",
        "read_service_token": f"cat {q['service_token']}",
        "read_admin_password": f"cat {q['admin_password']}",
        "read_hub_database": f"head -c 16 {q['hub_database']}",
        # the platform's own files by name (in a sandbox alice's task directory is bound under the data dir)
        "list_data_dir": f"ls -A {json.dumps(str(data))} | grep -q -e admin-token -e pai.sqlite",
        "write_data_dir": f"touch {json.dumps(str(data / 'alice-was-here'))}",
        "list_bob_home": f"ls -A {q['bob_home']}",
        "write_bob_home": f"touch {q['bob_home']}/alice-was-here",
        "list_bob_task": f"ls {q['bob_task']}",
        "read_bob_secret": f"grep {BOB_SECRET} {q['bob_secret']}",
        "read_bob_spec": f"cat {q['bob_task']}/spec.json",
        "write_bob_task": f"touch {q['bob_task']}/alice-was-here",
    }
    output = terminal(hub, "alice", hub.user_token("alice"), "\n".join([probes(checks), 'echo "uid=$(id -u)"']))
    return results(output), output


def test_the_terminal_works_and_runs_as_alice_not_root(probed):
    found, output = probed
    assert found.get("alive") == 0, output
    assert found.get("own_home") == 0, f"alice cannot write her own home:\n{output}"
    assert "uid" in found and found["uid"] != 0, output
    assert found["uid"] == account("alice").pw_uid, output


@pytest.mark.parametrize("probe", [
    "read_admin_token", "read_database", "read_cookie_secret", "read_service_token", "read_admin_password",
    "read_hub_database", "list_data_dir", "write_data_dir",
])
def test_the_platforms_files_are_out_of_reach(probed, probe):
    found, output = probed
    assert probe in found, f"{probe} did not run:\n{output}"
    assert found[probe] != 0, f"{probe} succeeded from alice's notebook terminal:\n{output}"


@pytest.mark.parametrize("probe", ["list_bob_home", "write_bob_home", "list_bob_task", "read_bob_secret",
                                   "read_bob_spec", "write_bob_task"])
def test_bobs_home_and_running_task_are_out_of_reach(probed, probe):
    found, output = probed
    assert probe in found, f"{probe} did not run:\n{output}"
    assert found[probe] != 0, f"{probe} succeeded from alice's notebook terminal:\n{output}"


def test_nothing_was_written_where_alice_was_denied(hub, probed):
    assert not (hub.data_dir / "alice-was-here").exists()
    assert not (Path(account("bob").pw_dir) / "alice-was-here").exists()
    assert not list((hub.data_dir / "run" / "tasks").glob("*/alice-was-here"))
