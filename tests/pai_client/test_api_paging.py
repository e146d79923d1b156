"""``job_page``: one page of the job list with the total, on both transports, against a real server
with more jobs than a page; following ``next_offset`` reaches the last job."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pai_client import AsyncPaiClient, PaiClient
from pai_client.models import JobPage
from tests.server import job_yaml, wait_state

JOBS = 120


@pytest.fixture(scope="module")
def alice(server) -> str:
    token = server.add_user("alice")
    with server.client(token) as c:
        r = c.post("/api/v2/jobs", params={"array": f"0-{JOBS - 1}"}, content=job_yaml("pg", ["true"]),
                   headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        wait_state(c, f"alice~pg-{JOBS - 1}", {"SUCCEEDED"}, timeout=120)
    return token


def pages_sync(url: str, token: str, asked: list[httpx.URL], **filters: object) -> list[JobPage]:
    with PaiClient(url, token) as c:
        c._http.event_hooks["request"].append(lambda request: asked.append(request.url))
        pages = [c.job_page(0, 50, **filters)]
        while pages[-1].next_offset is not None:
            pages.append(c.job_page(pages[-1].next_offset, 50, **filters))
        return pages


def pages_async(url: str, token: str, asked: list[httpx.URL], **filters: object) -> list[JobPage]:
    async def record(request: httpx.Request) -> None:
        asked.append(request.url)

    async def go() -> list[JobPage]:
        async with AsyncPaiClient(url, token) as c:
            c._http.event_hooks["request"].append(record)
            pages = [await c.job_page(0, 50, **filters)]
            while pages[-1].next_offset is not None:
                pages.append(await c.job_page(pages[-1].next_offset, 50, **filters))
            return pages

    return asyncio.run(go())


@pytest.mark.parametrize("run", [pages_sync, pages_async])
def test_job_page_asks_for_one_page_and_paging_reaches_the_last_job(server, alice, run):
    asked: list[httpx.URL] = []
    pages = run(server.url, alice, asked)
    assert [(p.offset, len(p.jobs), p.total) for p in pages] == [(0, 50, JOBS), (50, 50, JOBS), (100, 20, JOBS)]
    assert [(u.params["offset"], u.params["limit"], u.params["withTotalCount"]) for u in asked] == \
        [("0", "50", "true"), ("50", "50", "true"), ("100", "50", "true")]
    names = [j["name"] for p in pages for j in p.jobs]
    assert names[0] == f"pg-{JOBS - 1}" and names[-1] == "pg-0" and len(set(names)) == JOBS
    assert [p.label for p in pages] == ["1–50 of 120", "51–100 of 120", "101–120 of 120"]
    assert (pages[0].previous_offset, pages[1].previous_offset, pages[2].next_offset) == (None, 0, None)


def test_job_page_filters_on_the_server(server, alice):
    asked: list[httpx.URL] = []
    (page,) = pages_sync(server.url, alice, asked, keyword="pg-11", state=["SUCCEEDED"])
    assert sorted(j["name"] for j in page.jobs) == ["pg-11", *(f"pg-11{i}" for i in range(10))]
    assert page.total == 11 and page.label == "1–11 of 11"
    assert asked[0].params["keyword"] == "pg-11" and asked[0].params["state"] == "SUCCEEDED"


def test_an_empty_page_reads_as_the_end():
    page = JobPage.from_json({"totalCount": 3, "data": []}, offset=50, limit=50)
    assert (page.next_offset, page.previous_offset, page.label) == (None, 0, "0 of 3")
