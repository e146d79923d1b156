"""The hub pages (pai_hub/admin) as the API's clients: served by tornado on a real port, logged in by
a stand-in for Hub OAuth, reading a fake PAI API through the loop's one shared ``AsyncPaiClient``
(httpx's MockTransport), each call with the logged-in user's token."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from pai_client import AsyncPaiClient
from pai_client import shared as shared_clients
from pai_hub.admin import pages

PAI_URL = "http://pai.test"
USERS = {"alice": {"username": "alice", "admin": False, "virtualCluster": ["default"]},
         "root": {"username": "root", "admin": True, "virtualCluster": ["default", "research"]}}
VCS = {"default": {"cells": {"gpu": 2}, "skus": {"gpu": {"capacity": 2, "used": 1, "free": 1}}, "queue": 0, "running": 1},
       "research": {"cells": {"gpu": 1}, "skus": {"gpu": {"capacity": 1, "used": 0, "free": 1}}, "queue": 2, "running": 0}}
NOTEBOOK = {"extras": {"paiHub": {"type": "notebook", "server": "lab", "profile": "small"}}}


def job(user: str, name: str, state: str = "RUNNING") -> dict[str, Any]:
    return {"username": user, "name": name, "state": state, "virtualCluster": "default", "totalGpuNumber": 1,
            "totalTaskNumber": 1, "retries": 0, "submissionTime": 0, "launchedTime": 0, "completedTime": None}


class FakePai:
    """Answers like the REST API for the token's user; records (method, path, token, body)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, Any]] = []

    @staticmethod
    def jobs(request: httpx.Request) -> Any:
        data = [job("alice", "train"), job("alice", "jupyter-alice")]
        return {"totalCount": len(data), "data": data} if request.url.params.get("withTotalCount") else data

    def __call__(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        path = request.url.path
        body = json.loads(request.content) if request.content else None
        self.seen.append((request.method, path, token, body))
        user = USERS.get(token.removeprefix("tok-"))
        if user is None:
            return httpx.Response(403, json={"code": "UnauthorizedUserError", "message": "who are you?"})
        routes: dict[tuple[str, str], httpx.Response] = {
            ("GET", "/api/v2/users/me"): httpx.Response(200, json=user),
            ("GET", "/api/v2/jobs"): httpx.Response(200, json=self.jobs(request)),
            ("GET", "/api/v2/jobs/alice~jupyter-alice/config"):
                httpx.Response(200, text=yaml.safe_dump(NOTEBOOK), headers={"content-type": "text/yaml"}),
            ("GET", "/api/v2/experiments"): httpx.Response(200, json=[]),
            ("GET", "/api/v2/virtual-clusters"): httpx.Response(200, json=VCS),
            ("GET", "/api/v2/groups"): httpx.Response(200, json=[]),
            ("PUT", "/api/v2/virtual-clusters/research"):
                httpx.Response(400, json={"code": "InvalidParametersError", "message": "VC safety: too many cells"}),
            ("PUT", "/api/v2/groups/team"): httpx.Response(201, json={"message": "updated"}),
        }
        return routes.get((request.method, path)) or httpx.Response(404, json={"code": "NoApiError", "message": path})


@pytest.fixture
def hub_login(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub OAuth stand-in: the user is named by the request's X-Test-User header, their OAuth token
    is ``tok-<name>``."""
    monkeypatch.setattr(pages.PageHandler, "get_current_user",
                        lambda self: {"name": self.request.headers["X-Test-User"], "kind": "user"})
    monkeypatch.setattr(pages.PageHandler, "hub_auth",
                        SimpleNamespace(base_url="/services/pai/",
                                        get_token=lambda handler: "tok-" + handler.request.headers["X-Test-User"]))
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/services/pai/")


def browse(fake: FakePai, visits: list[tuple[str, str, str, dict[str, Any] | None]]) -> list[httpx.Response]:
    """Serve the pages on one loop whose shared client talks to ``fake``, make ``visits`` (method,
    path, user, form) and return the answers."""

    async def scenario() -> list[httpx.Response]:
        shared = AsyncPaiClient(PAI_URL, timeout=5)
        shared._http = httpx.AsyncClient(base_url=PAI_URL, transport=httpx.MockTransport(fake))
        shared_clients._SHARED[asyncio.get_running_loop()] = {(PAI_URL, None): shared}
        services = SimpleNamespace(settings=SimpleNamespace(loopback_url=PAI_URL))
        app = web.Application(pages.page_routes(), services=services)
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(app)
        server.add_sockets(sockets)
        base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        try:
            async with httpx.AsyncClient(base_url=base) as browser:
                return [await browser.request(method, path, data=form, headers={"X-Test-User": user})
                        for method, path, user, form in visits]
        finally:
            server.stop()
            await shared.aclose()

    return asyncio.run(scenario())


def test_home_reads_the_api_as_the_logged_in_user_through_the_shared_client(hub_login: None) -> None:
    fake = FakePai()
    (home,) = browse(fake, [("GET", "/", "alice", None)])
    assert home.status_code == 200, home.text
    assert {token for _, _, token, _ in fake.seen} == {"tok-alice"}
    assert "train" in home.text and "/user/alice/lab/" in home.text  # a job, and the notebook's link
    quota = home.text.split('id="pai-quota"')[1].split("</section>")[0]
    assert "default" in quota and "research" not in quota  # only the VCs alice may use
    assert ("GET", "/api/v2/jobs/alice~jupyter-alice/config", "tok-alice", None) in fake.seen


def test_admin_pages_are_refused_to_a_user_and_apply_an_admins_edits(hub_login: None) -> None:
    fake = FakePai()
    refused, vcs, quota, group = browse(fake, [
        ("GET", "/admin/virtual-clusters", "alice", None),
        ("GET", "/admin/virtual-clusters", "root", None),
        ("POST", "/admin/virtual-clusters", "root", {"action": "quota", "vc": "research", "cell:gpu": "9"}),
        ("POST", "/admin/virtual-clusters", "root", {"action": "group", "group": "team", "vcs": ["default"]}),
    ])
    assert refused.status_code == 403 and "for administrators" in refused.text
    assert vcs.status_code == 200 and 'data-vc="research"' in vcs.text
    assert quota.status_code == 302
    assert "refused+%28400%29%3A+VC+safety%3A+too+many+cells" in quota.headers["location"]
    assert ("PUT", "/api/v2/virtual-clusters/research", "tok-root", {"cells": {"gpu": 9}}) in fake.seen
    assert group.status_code == 302 and "error" not in group.headers["location"]
    assert ("PUT", "/api/v2/groups/team", "tok-root", {"virtualClusters": ["default"]}) in fake.seen


def test_a_token_the_api_refuses_is_403_with_the_apis_reason(hub_login: None) -> None:
    (page,) = browse(FakePai(), [("GET", "/", "mallory", None)])
    assert page.status_code == 403 and "who are you?" in page.text
