"""The one request layer, run by both transports against httpx's MockTransport (no server): each
method is defined once, so both transports send the same requests and read the same answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import yaml

from pai_client import AsyncPaiClient, PaiClient, PaiError
from pai_client.client import hub_settings, protocol_text
from pai_client.sse import SseEvent, job_event
from pai_hub import protocol

DETAIL = {"name": "j", "jobStatus": {"state": "RUNNING", "virtualCluster": "default", "retries": 0},
          "taskRoles": {"worker": {"taskRoleStatus": {"name": "worker"}, "taskStatuses": [
              {"taskIndex": 0, "taskState": "RUNNING", "containerLog": "/api/v2/jobs/u~j/attempts/0/x/logs"}]}}}


class FakePai:
    """Answers like the REST API; records every request (method, path with query)."""

    def __init__(self, debug: bool = False, states: list[str] | None = None) -> None:
        self.seen: list[str] = []
        self.debug = debug
        self.states = states or ["RUNNING"]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        self.seen.append(f"{request.method} {path}")
        if path == "/api/v2/tokens/check":
            return httpx.Response(200, json={"username": "u", "admin": False})
        if path.endswith("/debug"):
            if self.debug:
                return httpx.Response(200, json={"until": 1, "tasks": [{"taskRole": "ps", "taskIndex": 2}]})
            return httpx.Response(404, json={"code": "NoDebugReservationError", "message": "none"})
        if path.endswith("/events") and request.headers.get("accept") == "text/event-stream":
            body = 'data: {"reason": "JobSubmitted"}\n\n: keep-alive\n\nevent: end\ndata: {"state": "SUCCEEDED"}\n\n'
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
        if "/logs/" in path:
            offset = int(request.url.params.get("offset", 0))
            text = "hello\n" if offset == 0 else ""
            return httpx.Response(200, text=text, headers={"X-Log-Offset": str(offset + len(text))})
        if path.partition("?")[0] == "/api/v2/jobs":  # a list, or a submission
            return httpx.Response(202 if request.method == "POST" else 200, json={"name": "j"})
        if path.startswith("/api/v2/jobs/u~"):
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return httpx.Response(200, json={**DETAIL, "jobStatus": {**DETAIL["jobStatus"], "state": state}})
        return httpx.Response(404, json={"code": "NoJobError", "message": f"no {path}"})


def sync_client(fake: FakePai) -> PaiClient:
    c = PaiClient("http://pai.test", "tok")
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(fake))
    return c


def async_client(fake: FakePai) -> AsyncPaiClient:
    c = AsyncPaiClient("http://pai.test", "tok")
    c._http = httpx.AsyncClient(base_url=c.url, transport=httpx.MockTransport(fake))
    return c


def test_both_transports_send_the_same_requests_for_the_same_calls():
    def calls_sync(c: PaiClient) -> list[Any]:
        return [c.job("j"), c.log("j"), c.debug_task("j"), c.submit("name: j\n", dry_run=True),
                c.terminal_url("j", "my role", 1), c.jobs(state="RUNNING", vc=None, tagsContain=["a", "b"])]

    async def calls_async(c: AsyncPaiClient) -> list[Any]:
        return [await c.job("j"), await c.log("j"), await c.debug_task("j"), await c.submit("name: j\n", dry_run=True),
                await c.terminal_url("j", "my role", 1),
                await c.jobs(state="RUNNING", vc=None, tagsContain=["a", "b"])]

    sync_fake, async_fake = FakePai(), FakePai()
    with sync_client(sync_fake) as c:
        sync_results = calls_sync(c)
    async_results = asyncio.run(calls_async(async_client(async_fake)))
    assert sync_results == async_results
    assert sync_fake.seen == async_fake.seen
    assert sync_fake.seen[0] == "GET /api/v2/tokens/check"  # asked once, then remembered
    assert sync_fake.seen.count("GET /api/v2/tokens/check") == 1
    assert "POST /api/v2/jobs?dryRun=true" in sync_fake.seen
    assert "GET /api/v2/jobs?state=RUNNING&tagsContain=a%2Cb" in sync_fake.seen
    assert sync_results[1] == ("hello\n", 6)
    assert sync_results[2] == ("worker", 0)  # no reservation: the job's first task
    assert sync_results[4] == "ws://pai.test/api/v2/jobs/u~j/tasks/my%20role/1/terminal"


def test_the_task_to_debug_is_the_one_kept_for_debugging():
    with sync_client(FakePai(debug=True)) as c:
        assert c.debug_task("j") == ("ps", 2)


def test_a_refusal_is_one_pai_error_in_both_transports():
    with sync_client(FakePai()) as c, pytest.raises(PaiError) as err:
        c.job("nobody~x y")
    assert (err.value.status, err.value.code) == (404, "NoJobError") and "nobody~x%20y" in err.value.message

    async def scenario() -> None:
        with pytest.raises(PaiError, match="NoJobError"):
            await async_client(FakePai()).job("nobody~x")

    asyncio.run(scenario())


def test_follow_yields_the_log_until_the_job_ends_in_both_transports():
    states = ["RUNNING", "RUNNING", "SUCCEEDED"]
    with sync_client(FakePai(states=list(states))) as c:
        assert list(c.follow("j", interval=0)) == ["hello\n"]

    async def scenario() -> list[str]:
        return [chunk async for chunk in async_client(FakePai(states=list(states))).follow("j", interval=0)]

    assert asyncio.run(scenario()) == ["hello\n"]


def test_wait_polls_until_the_job_ends_in_both_transports():
    with sync_client(FakePai(states=["WAITING", "RUNNING", "FAILED"])) as c:
        assert c.wait("j", interval=0)["jobStatus"]["state"] == "FAILED"
    with sync_client(FakePai()) as c, pytest.raises(PaiError, match="Timeout"):
        c.wait("j", timeout=0, interval=0)

    async def scenario() -> str:
        detail = await async_client(FakePai(states=["WAITING", "STOPPED"])).wait("j", interval=0)
        return detail["jobStatus"]["state"]

    assert asyncio.run(scenario()) == "STOPPED"


def test_event_stream_is_server_sent_events_in_both_transports():
    expected = [SseEvent("message", {"reason": "JobSubmitted"}), SseEvent("end", {"state": "SUCCEEDED"})]
    with sync_client(FakePai()) as c:
        assert list(c.event_stream("j")) == expected

    async def scenario() -> list[SseEvent]:
        return [ev async for ev in async_client(FakePai()).event_stream("j")]

    assert asyncio.run(scenario()) == expected


def test_a_shared_client_acts_for_another_user_with_with_token():
    fake = FakePai()
    with sync_client(fake) as c:
        seen: list[str] = []
        c._http.event_hooks["request"] = [lambda r: seen.append(r.headers["authorization"])]
        c.with_token("other").whoami()
        c.whoami()
    assert seen == ["Bearer other", "Bearer tok"]


def test_settings_come_from_pai_env_or_from_the_hub():
    assert hub_settings({"PAI_URL": "http://p:1", "PAI_TOKEN": "t"}) == ("http://p:1", "t")
    hub = {"JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api", "JUPYTERHUB_API_TOKEN": "ht"}
    assert hub_settings(hub) == ("http://127.0.0.1:8081/services/pai", "ht")
    assert hub_settings({**hub, "JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/jh/hub/",
                         "PAI_SERVICE_NAME": "gpu"}) == ("https://hub.example.org/jh/services/gpu", "ht")
    assert hub_settings({}) == (None, None)


def test_event_data_is_decoded_from_json():
    from httpx_sse import ServerSentEvent

    assert job_event(ServerSentEvent(data=json.dumps({"state": "FAILED"}), event="end")) == \
        SseEvent("end", {"state": "FAILED"})
    assert job_event(ServerSentEvent(data="plain")) == SseEvent("message", "plain")


def test_protocol_text_takes_models_mappings_and_text():
    text = ("protocolVersion: 2\nname: m\ntype: job\nprerequisites: [{name: i, type: dockerimage, uri: x}]\n"
            "taskRoles:\n  w:\n    dockerImage: i\n    resourcePerInstance: {cpu: 1, memoryMB: 64, gpu: 0}\n"
            "    commands: [\"true\"]\n")
    model = protocol.load(text)
    assert yaml.safe_load(protocol_text(model))["name"] == "m"
    assert yaml.safe_load(protocol_text({"name": "d"})) == {"name": "d"}
    assert protocol_text(text) is text


def test_update_group_puts_the_changed_fields_in_both_transports():
    seen: list[tuple[str, str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.decode(), json.loads(request.content)))
        return httpx.Response(201, json={"message": "updated"})

    c = PaiClient("http://pai.test", "tok")
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(answer))
    with c:
        assert c.update_group("team a", virtualClusters=["default", "gpu"]) == {"message": "updated"}

    async def scenario() -> None:
        a = AsyncPaiClient("http://pai.test", "tok")
        a._http = httpx.AsyncClient(base_url=a.url, transport=httpx.MockTransport(answer))
        await a.update_group("team a", virtualClusters=["default", "gpu"])

    asyncio.run(scenario())
    assert seen == [("PUT", "/api/v2/groups/team%20a", {"virtualClusters": ["default", "gpu"]})] * 2
