"""OpenPAI's Python SDK (``opai``, ``contrib/python-sdk`` of microsoft/pai) against a real ``pai server``.

The SDK is on no package registry (OpenPAI installed it from its git repository, and removed it in
2021) and imports only on Python 3.9 or older (``from collections import Iterable``), so a fresh
Debian 12 machine with Python 3.11 cannot run it. Hence two tests:

- ``test_sdk_calls`` sends every HTTP request of the CLI flow (``opai cluster add``, ``job sub``,
  ``job list``, ``job status``, ``job stop``, and ``cluster resources``) with ``requests``, shaped as
  the SDK's ``get_response`` shapes them: its paths, its headers, a JSON body on every call (``{}``
  on a GET) unless the content type is another, the YAML ``yaml.dump`` writes for ``job sub``; and
  checks each answer for what the SDK reads from it. It always runs. docs/compat.md lists the calls.
- ``test_opai_cli_flow`` runs the unmodified SDK's ``opai`` command named by ``$PAI_OPAI`` (a
  ``pip install`` of ``contrib/python-sdk`` into a Python ≤3.9 environment: docs/compat.md says how).
  Without ``$PAI_OPAI`` it is skipped, saying why; with it, every command must pass.

``job list`` and ``job status`` send no credentials: OpenPAI 0.x served them to anyone, OpenPAI 1.x
(which rewrote these v1 paths to its v2 job routes) answered 401 without a token, and so does PAI
Hub. ``requests`` adds ``~/.netrc``'s login to any request that has none, and the Basic scheme takes
``user:application-token`` in OpenPAI and here: with one line in ``~/.netrc`` the unmodified SDK
lists and shows jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from tests.server import REFERENCE, Server, running_server, wait_state

PASSWORD = "secret-pw"
HELLO_WORLD = REFERENCE / "openpai" / "jobs" / "docs" / "hello-world-job.yaml"
OPAI = os.environ.get("PAI_OPAI", "")
HOW_TO_GET_OPAI = (
    "OpenPAI's Python SDK is on no registry and needs Python <= 3.9: take contrib/python-sdk from "
    "github.com/microsoft/pai at commit 1f6b5b506^ (the one before it was removed), `python3.9 -m venv v && "
    "v/bin/pip install ./python-sdk`, then run with PAI_OPAI=$PWD/v/bin/opai (docs/compat.md)")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    with running_server(tmp_path_factory.mktemp("opai"), gpus=4) as srv:
        srv.add_user("alice")
        srv.add_user("bob")
        yield srv


def application_token(srv: Server, user: str) -> str:
    login = requests.post(srv.url + "/api/v2/authn/basic/login", json={"username": user, "password": PASSWORD})
    assert login.status_code == 200, login.text
    made = requests.post(srv.url + "/api/v2/tokens/application", json={},
                         headers={"Authorization": "Bearer " + login.json()["token"]})
    assert made.status_code == 200, made.text
    return made.json()["token"]


class Sdk:
    """The SDK's HTTP calls as ``openpaisdk.utils.get_response`` makes them: the headers it is given,
    the body as JSON unless another Content-Type is set (``{}`` when there is none), no TLS check."""

    def __init__(self, srv: Server, user: str, basic: str | None = None) -> None:
        self.rest = srv.url + "/rest-server/api"
        self.user = user
        self.session = requests.Session()
        self.session.trust_env = False  # this machine's ~/.netrc is not the SDK user's
        self.basic = (user, basic) if basic else None  # what ~/.netrc would add

    def call(self, method: str, path: str, headers: dict | None = None, body: object = None) -> requests.Response:
        headers = headers or {}
        as_json = headers.get("Content-Type", "application/json") == "application/json"
        body = {} if body is None else body
        return self.session.request(method, self.rest + path, headers=headers, auth=self.basic, verify=False,
                                    **({"json": body} if as_json else {"data": body}))


def bearer(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


def one_liner(name: str, srv: Server, user: str, commands: str) -> dict:
    """The document ``opai job sub -a local -i IMAGE -j NAME COMMANDS`` sends (``--preview`` prints
    it): the SDK's deployment of pre-commands, its tags and plugins, the cluster list as a secret."""
    clusters = [{"cluster_alias": "local", "pai_uri": srv.url, "user": user, "password": PASSWORD, "token": None,
                 "virtual_clusters": ["default"], "storages": [{"protocol": "hdfs", "storage_alias": "hdfs-0",
                                                                "webhdfs": srv.url + "/webhdfs"}]}]
    return {
        "defaults": {"deployment": "sdk_deployment"},
        "deployments": [{"name": "sdk_deployment", "taskRoles": {"main": {"preCommands": [
            '<% $parameters.python_path %> -m pip install -U -e "git+https://github.com/Microsoft/pai@master'
            '#egg=openpaisdk&subdirectory=contrib/python-sdk"',
            "mkdir ~/.openpai", 'echo "write config to ~/.openpai/clusters.yaml"',
            "echo <% $secrets.clusters %> > ~/.openpai/clusters.yaml",
            "opai cluster select <% $parameters.cluster_alias %>"]}}}],
        "extras": {"sdk.plugins": [], "tags": ["py-sdk", "py-sdk-one-liner"]},
        "name": name,
        "parameters": {"cluster_alias": "local", "python_path": "python",
                       "work_directory": f"/openpai-sdk/{user}/jobs/{name}"},
        "prerequisites": [{"name": "docker_image", "protocolVersion": "2", "type": "dockerimage",
                           "uri": "python:3.11"}],
        "protocolVersion": 2,
        "secrets": {"clusters": json.dumps(clusters)},
        "taskRoles": {"main": {"commands": [commands], "dockerImage": "docker_image",
                               "resourcePerInstance": {"cpu": 2, "gpu": 0, "memoryMB": 4096}}},
        "type": "job",
    }


def state_of(srv: Server, user: str, name: str) -> str:
    with srv.client() as c:
        return c.get(f"/api/v2/jobs/{user}~{name}").json()["jobStatus"]["state"]


def test_sdk_calls(server: Server) -> None:
    """Each request of the CLI flow, as the SDK sends it, and what the SDK reads from the answer."""
    alice = Sdk(server, "alice")
    # opai cluster add --pai-uri URL --user alice --password PW: Cluster.check()
    info = alice.call("GET", "/v1")  # rest_api_cluster_info: no token
    assert info.status_code == 200, info.text
    assert info.json()["authnMethod"] == "basic" and info.json()["launcherType"] in ("yarn", "k8s")
    made = alice.call("POST", "/v1/token", body={"username": "alice", "password": PASSWORD, "expiration": 3600})
    assert made.status_code == 200, made.text
    token = made.json()["token"]
    wrong = alice.call("POST", "/v1/token", body={"username": "alice", "password": "nope", "expiration": 3600})
    assert wrong.status_code == 400 and wrong.json()["code"] == "IncorrectPasswordError", wrong.text
    me = alice.call("GET", "/v1/user/alice", headers=bearer(token))  # rest_api_user
    assert me.status_code == 200, me.text
    assert "default" in me.json()["virtualCluster"]
    assert alice.call("GET", "/v1/user/bob", headers=bearer(token)).status_code == 403  # only admins see others
    assert alice.call("DELETE", "/v1/user/alice", headers=bearer(token)).status_code == 405  # v1 reads only

    # opai job sub: rest_api_submit, protocol v2 as yaml.dump writes it
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    sent = alice.call("POST", "/v2/jobs", headers=bearer(token, **{"Content-Type": "text/yaml"}),
                      body=yaml.dump(one_liner(name, server, "alice", "sleep 300")))
    assert sent.status_code in (201, 202), sent.text

    # opai job submit hello-world-job.yaml would send OpenPAI's own example the same way
    hello = yaml.safe_load(HELLO_WORLD.read_text())
    hello["name"] = f"hello-{uuid.uuid4().hex[:8]}"
    sent = alice.call("POST", "/v2/jobs", headers=bearer(token, **{"Content-Type": "text/yaml"}), body=yaml.dump(hello))
    assert sent.status_code in (201, 202), sent.text
    stopped = alice.call("PUT", f"/v1/user/alice/jobs/{hello['name']}/executionType", headers=bearer(token),
                         body={"value": "STOP"})
    assert stopped.status_code == 202, stopped.text
    with server.client() as c:
        assert wait_state(c, f"alice~{hello['name']}", {"STOPPED", "FAILED", "SUCCEEDED"})

    # opai job list / job status: no Authorization header. Without a credential: 401, as OpenPAI 1.x
    listed = alice.call("GET", "/v1/user/alice/jobs")
    assert listed.status_code == 401 and listed.json()["code"] == "UnauthorizedUserError", listed.text
    assert alice.call("GET", f"/v1/user/alice/jobs/{name}").status_code == 401
    # ... with ~/.netrc's user:application-token, which requests sends as Basic
    netrc = Sdk(server, "alice", basic=application_token(server, "alice"))
    listed = netrc.call("GET", "/v1/user/alice/jobs")
    assert listed.status_code == 200, listed.text
    jobs = {j["name"]: j for j in listed.json()}
    assert set(jobs) == {name, hello["name"]} and {j["username"] for j in jobs.values()} == {"alice"}
    assert jobs[name]["state"] in ("WAITING", "RUNNING")
    everyone = netrc.call("GET", "/v1/jobs")  # opai job list --user __all__: a user still sees only theirs
    assert everyone.status_code == 200 and {j["name"] for j in everyone.json()} == set(jobs), everyone.text
    shown = netrc.call("GET", f"/v1/user/alice/jobs/{name}")  # rest_api_job_info(name)
    assert shown.status_code == 200, shown.text
    assert shown.json()["name"] == name and shown.json()["jobStatus"]["state"] in ("WAITING", "RUNNING")
    config = netrc.call("GET", f"/v1/user/alice/jobs/{name}/config")  # job status NAME config: YAML text
    assert config.status_code == 200, config.text
    stored = yaml.safe_load(config.text)
    assert stored["name"] == name
    assert PASSWORD not in config.text  # the secret (the user's password, as the SDK puts it) is masked
    ssh = netrc.call("GET", f"/v1/user/alice/jobs/{name}/ssh")  # job status NAME ssh: no ssh plugin
    assert ssh.status_code == 404, ssh.text

    # another user's token: no such job, an empty list of alice's jobs
    bob = Sdk(server, "bob", basic=application_token(server, "bob"))
    assert bob.call("GET", f"/v1/user/alice/jobs/{name}").status_code == 404
    assert bob.call("GET", "/v1/user/alice/jobs").json() == []
    assert bob.call("PUT", f"/v1/user/alice/jobs/{name}/executionType", body={"value": "STOP"}).status_code == 404
    assert bob.call("POST", "/v1/user/alice/jobs", headers={"Content-Type": "text/yaml"},
                    body=yaml.dump(one_liner("x", server, "bob", "true"))).status_code == 403

    # opai cluster resources: rest_api_virtual_clusters, numbers the SDK subtracts
    vcs = alice.call("GET", "/v1/virtual-clusters", headers=bearer(token))
    assert vcs.status_code == 200, vcs.text
    default = vcs.json()["default"]
    assert all(isinstance(default["resourcesTotal"][k] - default["resourcesUsed"][k], int | float)
               for k in default["resourcesTotal"])

    # opai job stop NAME: rest_api_execute_job
    stopped = alice.call("PUT", f"/v1/user/alice/jobs/{name}/executionType", headers=bearer(token),
                         body={"value": "STOP"})
    assert stopped.status_code in (200, 202), stopped.text
    assert "message" in stopped.json()
    with server.client() as c:
        assert wait_state(c, f"alice~{name}", {"STOPPED"})["jobStatus"]["state"] == "STOPPED"


@pytest.mark.parametrize("prefix", ["/api/v1", "/rest-server/api/v1"])
def test_v1_routes_share_v2s_rules(server: Server, prefix: str) -> None:
    """Both v1 mounts, with and without a trailing slash; a token is needed where v2 needs one."""
    for path in ("", "/", "/info", "/authn/info"):
        r = requests.get(server.url + prefix + path)
        assert r.status_code == 200, (path, r.text)
    assert requests.get(server.url + prefix + "/user/alice/").status_code == 401
    assert requests.get(server.url + prefix + "/virtual-clusters").status_code == 401
    assert requests.get(server.url + prefix + "/kubernetes/nodes").status_code == 404  # Kubernetes-only
    login = requests.post(server.url + prefix + "/authn/basic/login",
                          json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200, login.text
    token = login.json()["token"]
    checked = requests.get(server.url + prefix + "/token/check", headers=bearer(token))
    assert checked.json() == {"username": "alice", "application": False, "admin": False}
    app = requests.post(server.url + prefix + "/token/application", json={}, headers=bearer(token))
    assert app.status_code == 200 and app.json()["application"] is True, app.text
    # an application token may not manage tokens, under v1 as under v2
    refused = requests.post(server.url + prefix + "/token/application", json={},
                            headers=bearer(app.json()["token"]))
    assert refused.status_code == 403, refused.text
    assert requests.get(server.url + prefix + "/user/alice/", headers=bearer(token)).json()["username"] == "alice"


def opai(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAI_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), BROWSER="true")  # `job submit` opens the job's page: with `true`, nothing
    return subprocess.run([OPAI, *args], cwd=home, env=env, capture_output=True, text=True, timeout=120)


def test_opai_cli_flow(server: Server, tmp_path: Path) -> None:
    """The unmodified ``opai``: cluster add, job sub, job list, job status, job stop. Each command's
    exit status is what counts: the SDK exits 0 on success, 1 or 2 on an error it caught. (``opai job
    submit FILE`` fails in the SDK before any request, on any server: its ``from_file`` refuses the
    parsed document for not being a string; ``test_sdk_calls`` sends what it would have sent.)"""
    if not OPAI:
        pytest.skip(f"$PAI_OPAI is not set: {HOW_TO_GET_OPAI}")
    assert Path(OPAI).is_file(), f"$PAI_OPAI={OPAI} is not a file; {HOW_TO_GET_OPAI}"
    home = tmp_path
    results: dict[str, subprocess.CompletedProcess] = {}

    def run(label: str, *args: str) -> subprocess.CompletedProcess:
        results[label] = done = opai(home, *args)
        return done

    run("cluster add", "cluster", "add", "--cluster-alias", "local", "--pai-uri", server.url, "--user", "carol",
        "--password", PASSWORD)
    assert results["cluster add"].returncode != 0  # no such user: the SDK says so and stops
    with server.client() as c:
        assert c.post("/api/v2/users", json={"username": "carol", "password": PASSWORD}).status_code == 201
    added = run("cluster add", "cluster", "add", "--cluster-alias", "local", "--pai-uri", server.url,
                "--user", "carol", "--password", PASSWORD)
    assert added.returncode == 0, added.stdout + added.stderr
    clusters = yaml.safe_load((home / ".openpai" / "clusters.yaml").read_text())
    assert clusters[0]["virtual_clusters"] == ["default"] and clusters[0]["info"]["authnMethod"] == "basic"

    name = f"opai-{uuid.uuid4().hex[:8]}"
    sub = run("job sub", "job", "sub", "-a", "local", "-i", "python:3.11", "--no-browser", "-j", name,
              "sleep", "300")
    assert sub.returncode == 0 and f"job_name: {name}" in sub.stdout, sub.stdout + sub.stderr
    anonymous = run("job list", "job", "list", "-a", "local")
    assert anonymous.returncode != 0 and "401" in anonymous.stdout + anonymous.stderr  # no credential: OpenPAI 1.x's 401 too
    (home / ".netrc").write_text(f"machine 127.0.0.1 login carol password {application_token(server, 'carol')}\n")
    (home / ".netrc").chmod(0o600)
    listed = run("job list", "job", "list", "-a", "local")
    assert listed.returncode == 0 and f"{name} [" in listed.stdout, listed.stdout + listed.stderr
    status = run("job status", "job", "status", "-a", "local", name)
    assert status.returncode == 0, status.stdout + status.stderr
    assert yaml.safe_load(status.stdout)["jobStatus"]["state"] in ("WAITING", "RUNNING"), status.stdout
    stop = run("job stop", "job", "stop", "-a", "local", name)
    assert stop.returncode == 0 and "successfully" in stop.stdout, stop.stdout + stop.stderr
    with server.client() as c:
        wait_state(c, f"carol~{name}", {"STOPPED"})
    deadline = time.monotonic() + 30
    while "[STOPPED]" not in run("job list", "job", "list", "-a", "local").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"{name} [STOPPED]" in results["job list"].stdout, results["job list"].stdout
