"""The async client against a real ``pai server`` that serves under a hub service prefix, the way a
hub-spawned notebook reaches it: configured from the hub's environment alone."""

from __future__ import annotations

import asyncio

import pytest

from pai_client.client import AsyncPaiClient, PaiClient, PaiError, hub_settings
from tests.server import Server, job_yaml
from tests.waiting import wait_for_async


@pytest.fixture(scope="module")
def hub_pai(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTERHUB_SERVICE_PREFIX", "/services/pai/")  # as the hub starts its service
    srv = Server(tmp_path_factory.mktemp("hubpai") / "data", args=("--simulated-gpus", "2", "--node-cpu", "8"))
    srv.data_dir.mkdir(parents=True)
    try:
        srv.start()
    finally:
        mp.undo()
    srv.token = srv.add_user("carol")
    yield srv
    srv.stop()
    srv.kill_tasks()


@pytest.fixture
def hub_env(hub_pai, monkeypatch):
    for key in ("PAI_URL", "PAI_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{hub_pai.port}/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub_pai.token)


def test_no_configuration_inside_a_hub_notebook(hub_pai, hub_env):
    url, _ = hub_settings()
    assert url == f"{hub_pai.url}/services/pai"
    with PaiClient() as c:
        assert c.url == url and c.whoami()["username"] == "carol"
        info = c.info()
        assert info["launcherType"] == "k8s" and info["backend"] == "local"  # OpenPAI's enum, and ours
        assert "default" in c.virtual_clusters()


def test_async_client_submits_streams_waits_logs_and_stops(hub_pai, hub_env):
    async def scenario() -> None:
        async with AsyncPaiClient() as c:
            await c.submit({"protocolVersion": 2, "name": "a1", "type": "job",
                            "prerequisites": [{"name": "i", "type": "dockerimage", "uri": "python:3.11"}],
                            "taskRoles": {"w": {"instances": 2, "dockerImage": "i",
                                                "resourcePerInstance": {"cpu": 1, "memoryMB": 128, "gpu": 1},
                                                "commands": ["echo out-$PAI_TASK_INDEX"]}}})
            stream = [ev async for ev in c.event_stream("a1")]
            assert stream[0].data["reason"] == "JobSubmitted" and "TaskStarted" in {e.data.get("reason") for e in stream}
            assert stream[-1].event == "end" and stream[-1].data == {"state": "SUCCEEDED"}
            snap = await c.snapshot("a1")
            assert snap.state == "SUCCEEDED" and len(snap.gpus) == 2 and snap.framework == "carol~a1"
            text, offset = await c.log("a1", "w", 1, "stdout")
            assert text == "out-1\n" and offset == len(text)
            assert (await c.log("a1", "w", 1, "stdout", offset=offset))[0] == ""
            await c.submit(job_yaml("a2", ["sleep 60"]))

            async def a2_running() -> bool:
                return (await c.job("a2"))["jobStatus"]["state"] == "RUNNING"

            await wait_for_async(a2_running, 30, "a2 RUNNING, to be stopped")
            await c.stop("a2")
            assert (await c.wait("a2", timeout=30))["jobStatus"]["state"] == "STOPPED"
            assert [j["name"] for j in await c.jobs(state="STOPPED")] == ["a2"]
            assert await c.debug_task("a2") == ("worker", 0)  # no reservation: the first task
            with pytest.raises(PaiError) as err:
                await c.job("nobody~x")
            assert err.value.code == "NoJobError"

    asyncio.run(scenario())


def test_sync_event_stream_and_logs_under_the_prefix(hub_pai, hub_env):
    with PaiClient() as c:
        name = c.submit_job(job_yaml("s1", ["echo sync-log"]))
        assert name == "carol~s1"
        last = list(c.event_stream("s1"))[-1]
        assert last.event == "end" and last.data == {"state": "SUCCEEDED"}
        assert c.log("s1")[0] == "sync-log\n"
        assert c.debug_task("s1") == ("worker", 0)  # no reservation: the first task
