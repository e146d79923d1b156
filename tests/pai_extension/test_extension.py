"""The server extension in a real ``jupyter server`` against a real ``pai server``: the server
runs as user alice (her token, as under the hub); the proxy shows her jobs and refuses bob's,
passes the event stream on, and its websocket terminal opens a shell in alice's debug-reserved
task with the task's GPUs and working directory."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
from tornado.httpclient import HTTPClientError

from tests.pai_extension.jupyter import JupyterServer
from tests.server import REPO, Server, job_yaml, running_server, wait_state
from tests.terminal import shell_session


@pytest.fixture(scope="module")
def pai(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("ext")) as srv:
        srv.alice = srv.add_user("alice")
        srv.bob = srv.add_user("bob")
        yield srv


@pytest.fixture(scope="module")
def jupyter(pai, tmp_path_factory):
    # the environment a notebook job has: its own PAI job, VC and GPUs, and the user's token
    env = {"PAI_URL": pai.url, "PAI_TOKEN": pai.alice, "PAI_FRAMEWORK_NAME": "alice~jupyter-nb",
           "PAI_VIRTUAL_CLUSTER": "default", "CUDA_VISIBLE_DEVICES": "2,3", "PAI_CURRENT_TASK_ROLE_NAME": "notebook",
           "PAI_TASK_INDEX": "0", "PAI_USER_NAME": "alice"}
    server = JupyterServer(tmp_path_factory.mktemp("jupyter"), env).start()
    yield server
    server.stop()


def submit(pai: Server, token: str, text: str) -> None:
    r = httpx.post(pai.url + "/api/v2/jobs", content=text, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 202, r.text


def test_context_is_this_servers_own_job(pai, jupyter):
    submit(pai, pai.alice, job_yaml("jupyter-nb", ["sleep 30"]))
    with jupyter.client() as c:
        ctx = c.get("/pai/api/context").json()
    assert ctx["job"] == "alice~jupyter-nb" and ctx["virtualCluster"] == "default"
    assert ctx["gpus"] == ["2", "3"] and ctx["gpuCount"] == 2
    assert ctx["taskRole"] == "notebook" and ctx["taskIndex"] == 0
    assert ctx["paiUser"] == "alice" and ctx["jobState"] in ("WAITING", "RUNNING")
    with pai.client(pai.alice) as c:
        c.put("/api/v2/jobs/alice~jupyter-nb/executionType", json={"value": "STOP"})


def test_proxy_is_the_users_view_and_refuses_other_users_jobs(pai, jupyter):
    submit(pai, pai.bob, job_yaml("secret", ["true"]))
    submit(pai, pai.alice, job_yaml("mine", ["echo hi"]))
    with jupyter.client() as c:
        names = {(j["username"], j["name"]) for j in c.get("/pai/api/jobs").json()}
        assert ("alice", "mine") in names and all(u == "alice" for u, _ in names)
        r = c.get("/pai/api/jobs/bob~secret")
        assert r.status_code == 404 and r.json()["code"] == "NoJobError"
        assert c.get("/pai/api/jobs/bob~secret/config").status_code == 404
        assert c.put("/pai/api/jobs/bob~secret/executionType", json={"value": "STOP"}).status_code == 404
        assert c.get("/pai/api/v2/jobs/alice~mine").status_code == 200  # /pai/api/v2/... as well
        assert c.get("/pai/api/users").status_code == 403  # alice is no admin
        assert c.get("/pai/api/jobs/..%2F..%2Fusers").status_code in (400, 404)
    # and nobody without the server's own credentials gets anything
    r = httpx.get(jupyter.url + "/pai/api/jobs")
    assert r.status_code == 403
    with pai.client(pai.bob) as c:
        assert c.get("/api/v2/jobs/bob~secret").status_code == 200


def test_submit_logs_and_event_stream_through_the_proxy(pai, jupyter):
    with jupyter.client() as c:
        r = c.post("/pai/api/jobs", content=job_yaml("streamed", ["echo streamed-output"]),
                   headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        events = []
        with c.stream("GET", "/pai/api/jobs/alice~streamed/events",
                      headers={"Accept": "text/event-stream"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        assert events[0]["reason"] == "JobSubmitted" and events[-1] == {"state": "SUCCEEDED"}
        detail = c.get("/pai/api/jobs/alice~streamed").json()
        log = detail["taskRoles"]["worker"]["taskStatuses"][0]["containerLog"]
        r = c.get("/pai" + log.replace("/api/v2", "/api", 1) + "/stdout")
        assert r.text == "streamed-output\n" and int(r.headers["X-Log-Offset"]) == len(r.content)


def test_debug_terminal_through_the_extension_is_the_tasks_shell(pai, jupyter):
    extra = "extras:\n  debugReservation: {minutes: 10}"
    submit(pai, pai.alice, job_yaml("broken", ["echo working in $PWD", "exit 2"], gpu=1, extra=extra))
    submit(pai, pai.bob, job_yaml("bobs", ["exit 2"], gpu=1, extra=extra))
    with pai.client(pai.alice) as c:
        detail = wait_state(c, "alice~broken", {"FAILED"})
        task = detail["taskRoles"]["worker"]["taskStatuses"][0]
        assert task["subState"] == "DEBUGGING"
        work_dir = c.get(task["containerLog"] + "/stdout").text.split("working in ")[1].strip()
    ws = jupyter.url.replace("http", "ws", 1) + "/pai/api/jobs/{}/tasks/worker/0/terminal"
    out = asyncio.run(shell_session(ws.format("alice~broken"), jupyter.headers,
                             "echo GPUS=$CUDA_VISIBLE_DEVICES; pwd; exit\n"))
    assert f"GPUS={task['containerGpus']}\r\n" in out and f"\r\n{work_dir}\r\n" in out, out
    # bob's task is not alice's to open, through the extension either
    with pai.client(pai.bob) as c:
        wait_state(c, "bob~bobs", {"FAILED"})
    with pytest.raises(HTTPClientError) as err:
        asyncio.run(shell_session(ws.format("bob~bobs"), jupyter.headers, "exit\n"))
    assert err.value.code == 404
    # and nobody without the server's credentials
    with pytest.raises(HTTPClientError) as err:
        asyncio.run(shell_session(ws.format("alice~broken"), {}, "exit\n"))
    assert err.value.code == 403


def test_nni_web_ui_is_a_page_proxied_as_the_user(pai, jupyter):
    """``/pai/nni/<id>/``: PAI's owner-only NNI proxy reached as the server's user (here alice, who has
    no such experiment: PAI's 404 comes back), with a path NNI's page can live under."""
    with jupyter.client() as c:
        r = c.get("/pai/nni/abcdefgh/oview")
        assert r.status_code == 404 and r.json()["code"] == "NoExperimentError"
        r = c.get("/pai/nni/abcdefgh")
        assert r.status_code == 302 and r.headers["location"].endswith("/pai/nni/abcdefgh/oview")
        assert c.get("/pai/nni/abcdefgh/%2E%2E/%2E%2E/api/v2/users").status_code == 400
    # no credentials: the login page, not PAI
    r = httpx.get(jupyter.url + "/pai/nni/abcdefgh/oview")
    assert r.status_code == 302 and "/login" in r.headers["location"]
    # a browser session (cookie only): NNI's UI changes things with PUT/DELETE and no Jupyter XSRF
    # header, which is let through from this origin only
    with httpx.Client(base_url=jupyter.url, timeout=30) as browser:
        assert browser.get("/api/status", params={"token": jupyter.token}).status_code == 200
        assert browser.cookies, "no login cookie"
        url = "/pai/nni/abcdefgh/api/v1/nni/experiment"
        assert browser.put(url, json={}).status_code == 403
        r = browser.put(url, json={}, headers={"Origin": "http://evil.example"})  # Jupyter blocks it first
        assert r.status_code in (403, 404) and "NoExperimentError" not in r.text
        r = browser.put(url, json={}, headers={"Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 404 and r.json()["code"] == "NoExperimentError"
        r = browser.put(url, json={}, headers={"Origin": jupyter.url})
        assert r.status_code == 404


def test_enabled_on_install():
    """The wheel puts the server config snippet in <prefix>/etc/jupyter/jupyter_server_config.d."""
    import pai_extension

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    points = pai_extension._jupyter_server_extension_points()
    assert points == [{"module": "pai_extension", "app": pai_extension.PaiExtensionApp}]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    files = project["tool"]["setuptools"]["data-files"]["etc/jupyter/jupyter_server_config.d"]
    assert files == ["pai_extension/jupyter-config/jupyter_server_config.d/pai_extension.json"]
    snippet = json.loads((REPO / files[0]).read_text())
    assert snippet == {"ServerApp": {"jpserver_extensions": {"pai_extension": True}}}
    assert "pai_extension*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
    # and `make install` (an editable install, which gets no data files) puts it there too, so every
    # Jupyter server of the environment, hub-spawned ones included, loads the extension
    if sys.prefix != sys.base_prefix:
        installed = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "pai_extension.json"
        assert installed.exists(), f"{installed} missing: run `make install`"
        assert json.loads(installed.read_text()) == snippet


def test_one_client_per_event_loop():
    """Every handler of a server shares one PAI client (one connection pool) on the server's loop."""
    from pai_extension.app import PaiExtensionApp

    app = PaiExtensionApp(pai_url="http://127.0.0.1:9", pai_token="t")

    async def twice():
        return app.client, app.client

    first, again = asyncio.run(twice())
    other, _ = asyncio.run(twice())
    assert first is again and other is not first
    assert (first.url, first.token) == ("http://127.0.0.1:9", "t")
