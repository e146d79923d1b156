"""start, stop and progress against a PAI that counts requests: waits back off with JupyterHub's
``exponential_backoff``; progress is the job's event stream, not polling."""

from __future__ import annotations

from typing import Any

import pytest
from jupyterhub import utils

from pai_spawner import spawner as spawner_module
from tests.pai_spawner.fake_pai import FakeJob, FakePai
from tests.pai_spawner.spawners import spawner
from tests.pai_spawner.test_watcher import LOOK, run

PROFILE = {"slug": "cpu", "vc": "default", "cpu": 1, "memoryMB": 1024, "gpu": 0}


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The spawner's waits, each recorded as it goes through JupyterHub's exponential_backoff."""
    calls: list[dict[str, Any]] = []

    async def recorded(pass_func: Any, fail_message: str, **kwargs: Any) -> Any:
        calls.append({"fail_message": fail_message, **kwargs})
        return await utils.exponential_backoff(pass_func, fail_message, **kwargs)

    monkeypatch.setattr(spawner_module, "exponential_backoff", recorded)
    return calls


def test_start_and_stop_wait_with_exponential_backoff(backoffs):
    async def body(fake: FakePai) -> None:
        s = spawner("nb", pai_url=fake.url, pai_poll_interval=0.05, pai_poll_max_interval=0.4)
        s.profile = PROFILE

        def placed_at_the_fourth_look(framework: str, job: FakeJob) -> None:
            if job.state == "WAITING" and fake.count("GET", LOOK + framework) >= 4:
                job.state, job.port = "RUNNING", 31234

        fake.detail_hook = placed_at_the_fourth_look
        assert await s.start() == ("127.0.0.1", 31234)
        assert fake.submitted[0]["taskRoles"]["notebook"]["instances"] == 1
        assert fake.count("GET", LOOK + s.framework) == 4
        assert backoffs[0] == {"fail_message": f"notebook job {s.framework} did not start", "start_wait": 0.05,
                               "max_wait": 0.4, "timeout": s.start_timeout}
        assert await s.poll() is None
        await s.stop()
        assert fake.jobs[s.framework].state == "STOPPED"
        assert backoffs[-1]["fail_message"] == f"job {s.framework} did not end"
        assert backoffs[-1]["max_wait"] == 0.4 and backoffs[-1]["timeout"] == s.stop_timeout

    run(body)


def test_a_job_that_ends_before_its_server_is_up_fails_the_start():
    async def body(fake: FakePai) -> None:
        s = spawner("nb", pai_url=fake.url, pai_poll_interval=0.05)
        s.profile = PROFILE

        def fails(framework: str, job: FakeJob) -> None:
            job.state, job.exit_code = "FAILED", 2

        fake.detail_hook = fails
        with pytest.raises(RuntimeError, match="ended FAILED before the server was up"):
            await s.start()

    run(body)


def test_progress_is_the_jobs_event_stream():
    async def body(fake: FakePai) -> None:
        s = spawner("nb", pai_url=fake.url)
        s.framework = "alice~jupyter-nb-1"
        fake.jobs[s.framework] = FakeJob(state="RUNNING", events=[
            {"reason": "JobSubmitted", "message": "job alice~jupyter-nb-1 submitted"},
            {"reason": "Waiting", "message": "VC default: 0 of 1 free"},
            {"reason": "Placed", "message": "placed on node1"},
            {"reason": "TaskStarted", "message": "task notebook[0] started"},
            {"reason": "TaskRunning", "message": "not shown"},
        ])
        s._submitted.set()
        seen = [item async for item in s.progress()]
        assert [i["progress"] for i in seen] == [10, 20, 40, 60]
        assert seen[1]["message"] == "Waiting: VC default: 0 of 1 free"
        assert fake.requests == [("GET", "/api/v2/jobs/alice~jupyter-nb-1/events")]  # one stream, no polling

    run(body)


def test_progress_says_why_a_start_failed():
    async def body(fake: FakePai) -> None:
        s = spawner("nb", pai_url=fake.url)
        s.profile = {**PROFILE, "vc": "nope"}  # the fake refuses VCs other than default, as PAI would
        with pytest.raises(RuntimeError, match="VC nope does not exist"):
            await s.start()
        assert [i async for i in s.progress()] == [
            {"progress": 100, "failed": True, "message": "VC nope does not exist"}]

    run(body)
