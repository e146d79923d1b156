"""The hub pages against a real ``pai server`` with more jobs than a page: the home page asks for
one page (offset/limit, with the total) and its links reach the last job; the usage page reads only
the live jobs (in bounded chunks) and the server's usage report, never the job history."""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from pai_client import AsyncPaiClient
from pai_client import shared as shared_clients
from pai_hub.admin import pages
from tests.server import job_yaml, wait_state
from tests.waiting import wait_for

JOBS = 120


@pytest.fixture(scope="module")
def history(server):
    """alice with 120 ended jobs (one array) and one job running on a GPU."""
    alice = server.add_user("alice")
    with server.client(alice) as c:
        r = c.post("/api/v2/jobs", params={"array": f"0-{JOBS - 1}"}, content=job_yaml("hist", ["true"]),
                   headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        r = c.post("/api/v2/jobs", content=job_yaml("busy", ["sleep 300"], gpu=1), headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        wait_state(c, "alice~busy", {"RUNNING"})
        for i in (0, JOBS - 1):
            wait_state(c, f"alice~hist-{i}", {"SUCCEEDED"}, timeout=120)
        # every element ended (not only the first and last: on a loaded machine some still wait)
        wait_for(lambda: [j["name"] for j in c.get("/api/v2/jobs", params={"state": "RUNNING,WAITING"}).json()]
                 == ["busy"], timeout=120, message="the array's jobs to end", interval=0.2)
    return SimpleNamespace(tokens={"alice": alice, "admin": server.admin_token})


@pytest.fixture
def real_login(monkeypatch: pytest.MonkeyPatch, history) -> None:
    """Hub OAuth stand-in: the user is named by the X-Test-User header; their token is a real PAI
    token (the API takes it as it takes a hub token)."""
    monkeypatch.setattr(pages.PageHandler, "get_current_user",
                        lambda self: {"name": self.request.headers["X-Test-User"], "kind": "user"})
    monkeypatch.setattr(pages.PageHandler, "hub_auth", SimpleNamespace(
        base_url="/services/pai/", get_token=lambda h: history.tokens[h.request.headers["X-Test-User"]]))
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/services/pai/")


def browse(url: str, visits: list[tuple[str, str]]) -> tuple[list[httpx.Response], list[httpx.URL]]:
    """Serve the pages on one loop whose shared client talks to the server at ``url``; GET each
    (path, user) and return the pages and every URL the pages asked of the API."""
    asked: list[httpx.URL] = []

    async def record(request: httpx.Request) -> None:
        asked.append(request.url)

    async def scenario() -> list[httpx.Response]:
        shared = AsyncPaiClient(url, timeout=30)
        shared._http = httpx.AsyncClient(base_url=url, timeout=30, event_hooks={"request": [record]})
        shared_clients._SHARED[asyncio.get_running_loop()] = {(url, None): shared}
        routes = [("/services/pai" + path, handler) for path, handler in pages.page_routes()]  # as hub_routes
        app = web.Application(routes, services=SimpleNamespace(settings=SimpleNamespace(loopback_url=url)))
        sockets = bind_sockets(0, "127.0.0.1")
        http_server = HTTPServer(app)
        http_server.add_sockets(sockets)
        base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=60) as browser:
                return [await browser.get(path, headers={"X-Test-User": user}) for path, user in visits]
        finally:
            http_server.stop()
            await shared.aclose()

    return asyncio.run(scenario()), asked


def job_lists(asked: list[httpx.URL]) -> list[dict[str, list[str]]]:
    return [parse_qs(u.query.decode()) for u in asked if u.path == "/api/v2/jobs"]


def listed(page: httpx.Response) -> list[str]:
    table = page.text.split('id="pai-jobs-table"')[1].split("</table>")[0]
    return re.findall(r"<tr><td>([^<]+)</td>", table)


def test_home_lists_one_page_and_its_links_reach_the_last_job(server, real_login):
    first, asked = browse(server.url, [("/services/pai/", "alice")])
    (home,) = first
    assert home.status_code == 200, home.text
    (mine,) = [q for q in job_lists(asked) if "withTotalCount" in q]
    assert (mine["offset"], mine["limit"], mine["username"]) == (["0"], ["50"], ["alice"])
    assert all(q["limit"] != ["5000"] and int(q["limit"][0]) <= 100 for q in job_lists(asked))
    assert listed(home)[:2] == ["busy", f"hist-{JOBS - 1}"] and len(listed(home)) == 50
    assert f"1–50 of {JOBS + 1}" in home.text and 'id="pai-jobs-prev"' not in home.text
    # follow "Next" to the end, as a browser would
    seen = listed(home)
    page = home
    while 'id="pai-jobs-next"' in page.text:
        href = re.search(r'id="pai-jobs-next" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        (page,), asked = browse(server.url, [(href, "alice")])
        (q,) = [q for q in job_lists(asked) if "withTotalCount" in q]
        assert q["limit"] == ["50"] and int(q["offset"][0]) == len(seen)
        seen += listed(page)
    assert f"101–{JOBS + 1} of {JOBS + 1}" in page.text and 'id="pai-jobs-prev"' in page.text
    assert seen[-1] == "hist-0" and len(seen) == len(set(seen)) == JOBS + 1


def test_home_filters_are_kept_across_pages(server, real_login):
    (page,), asked = browse(server.url, [("/services/pai/?state=SUCCEEDED&keyword=hist-1&offset=0", "alice")])
    (q,) = [q for q in job_lists(asked) if "withTotalCount" in q]
    assert (q["state"], q["keyword"]) == (["SUCCEEDED"], ["hist-1"])
    # hist-1, hist-10..19, hist-100..119: 31 jobs, one page
    assert "1–31 of 31" in page.text and 'id="pai-jobs-next"' not in page.text
    (page,), _ = browse(server.url, [("/services/pai/?keyword=hist-&offset=50", "alice")])
    href = re.search(r'id="pai-jobs-next" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(href).query) == {"keyword": ["hist-"], "offset": ["100"]}


def test_usage_reads_live_jobs_and_the_usage_report_not_the_history(server, real_login):
    (page,), asked = browse(server.url, [("/services/pai/admin/usage?days=7", "admin")])
    assert page.status_code == 200, page.text
    lists = job_lists(asked)
    assert lists and all(q["state"] == ["RUNNING,WAITING"] and q["limit"] == ["1000"] for q in lists), lists
    (usage,) = [parse_qs(u.query.decode()) for u in asked if u.path == "/api/v2/usage"]
    assert usage["by"] == ["user"] and 6.9 * 86400 < float(usage["until"][0]) - float(usage["since"][0]) < 7.1 * 86400
    row = page.text.split('data-user="alice"')[1].split("</tr>")[0]
    cells = re.findall(r'<td class="num">([^<]+)</td>', row)
    # GPUs in use, tasks running, running, waiting, GPU-hours, jobs with GPU time, tasks with GPU time
    assert cells[:4] == ["1", "1", "1", "0"] and cells[5:] == ["1", "1"], cells
    assert float(cells[4]) >= 0


def test_usage_pages_live_jobs_in_chunks(server, real_login, monkeypatch):
    monkeypatch.setattr(pages, "USAGE_CHUNK", 1)  # alice's one running job, then an empty page
    (page,), asked = browse(server.url, [("/services/pai/admin/usage", "admin")])
    assert page.status_code == 200, page.text
    assert [(q["offset"], q["limit"]) for q in job_lists(asked)] == [(["0"], ["1"]), (["1"], ["1"])]
