"""Ended jobs leave the control plane's memory and are served from the store: listed, filtered,
paged (stably while new jobs arrive), read in detail, and their names stay taken."""

from __future__ import annotations

import asyncio

from tests.orchestrator.test_commit_failure import service
from tests.server import job_yaml

YAML = {"Content-Type": "text/yaml"}


def test_ended_jobs_are_served_from_the_store(tmp_path):
    async def scenario() -> None:
        async with service(tmp_path) as svc:
            c, controller = svc.client, svc.app.controller
            for i in range(4):
                await svc.run(f"hist-{i}")
            assert not controller.machine.jobs, "ended jobs left memory"

            listed = (await c.get("/api/v2/jobs", params={"keyword": "hist-", "withTotalCount": "true"})).json()
            assert listed["totalCount"] == 4
            assert [j["name"] for j in listed["data"]] == ["hist-3", "hist-2", "hist-1", "hist-0"]
            assert all(j["state"] == "SUCCEEDED" for j in listed["data"])
            filtered = await c.get("/api/v2/jobs", params={"username": "admin", "state": "SUCCEEDED",
                                                           "virtualCluster": "default", "keyword": "hist-"})
            assert len(filtered.json()) == 4
            assert (await c.get("/api/v2/jobs", params={"state": "FAILED", "keyword": "hist-"})).json() == []

            detail = (await c.get("/api/v2/jobs/admin~hist-1")).json()
            assert detail["jobStatus"]["state"] == "SUCCEEDED"
            [task] = detail["taskRoles"]["worker"]["taskStatuses"]
            assert task["taskState"] == "SUCCEEDED"
            config = await c.get("/api/v2/jobs/admin~hist-1/config")
            assert config.status_code == 200 and "hist-1" in config.text
            events = (await c.get("/api/v2/jobs/admin~hist-1/events")).json()
            assert events["data"][0]["reason"] == "JobSucceeded"
            logs = await c.get("/api/v2/jobs/admin~hist-1/attempts/0/taskRoles/worker/taskIndex/0/attempts/0/logs")
            assert logs.status_code == 200 and logs.json()["locations"]

            again = await svc.submit("hist-1")
            assert again.status_code == 409 and again.json()["code"] == "ConflictJobError"
            dry = await c.post("/api/v2/jobs", params={"dryRun": "true"}, content=job_yaml("hist-2", ["true"]),
                               headers=YAML)
            assert dry.status_code == 409

    asyncio.run(scenario())


def test_offset_paging_continues_after_the_last_row_while_new_jobs_arrive(tmp_path):
    async def scenario() -> None:
        async with service(tmp_path) as svc:
            c = svc.client
            for i in range(5):
                await svc.run(f"page-{i}")
            params = {"keyword": "page-", "limit": 2}
            first = [j["name"] for j in (await c.get("/api/v2/jobs", params={**params, "offset": 0})).json()]
            await svc.run("page-new")  # sorts first: a plain OFFSET would repeat page-3
            second = [j["name"] for j in (await c.get("/api/v2/jobs", params={**params, "offset": 2})).json()]
            third = [j["name"] for j in (await c.get("/api/v2/jobs", params={**params, "offset": 4})).json()]
            assert first + second + third == ["page-4", "page-3", "page-2", "page-1", "page-0"]

    asyncio.run(scenario())
