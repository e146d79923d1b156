"""A failed store commit is retried, never dropped: memory and the store cannot drift apart.

The store is made to fail from inside ``job_store.persist`` (the same place a full disk or a lost
database connection fails), once and then for a while. The loop must retry the same effects until
they are stored, act on none of them before (no task started, no caller answered, no observer
told), refuse readers with 503 rather than show what the store lacks, and recover by itself. The
outages here are short; the code path is the one a 30 s outage takes (backoff capped at 2 s).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.exc import OperationalError
from tornado import httpserver

from pai_hub.app import PaiHub
from pai_hub.orchestrator import loop as loop_module
from pai_hub.orchestrator.effects import Effects
from pai_hub.store import history
from pai_hub.store import jobs as job_store
from tests.server import free_port, job_yaml

REAL_PERSIST = job_store.persist
YAML = {"Content-Type": "text/yaml"}


class FaultyStore:
    """Stands in for ``job_store.persist``: fails while ``failing(fx)`` says so, else commits."""

    def __init__(self, failing: Callable[[Effects], bool]) -> None:
        self.failing = failing
        self.failures = 0
        self.calls = threading.Condition()

    def __call__(self, store: Any, fx: Effects) -> None:
        if self.failing(fx):
            with self.calls:
                self.failures += 1
                self.calls.notify_all()
            raise OperationalError("COMMIT", None, OSError("disk I/O error (injected)"))
        REAL_PERSIST(store, fx)

    async def wait_failures(self, n: int, timeout: float = 30) -> None:
        def wait() -> None:
            with self.calls:
                assert self.calls.wait_for(lambda: self.failures >= n, timeout), f"{self.failures} failures"
        await asyncio.get_running_loop().run_in_executor(None, wait)


@dataclass
class Service:
    app: PaiHub
    client: httpx.AsyncClient
    starts: Counter = field(default_factory=Counter)  # task id -> backend.start calls
    observed: list[Effects] = field(default_factory=list)

    def stored_names(self) -> set[str]:
        return set(job_store.job_names(self.app.store))

    async def submit(self, name: str) -> httpx.Response:
        """POST admin's job ``name``, one task that runs ``true``; the answer as it comes."""
        return await self.client.post("/api/v2/jobs", content=job_yaml(name, ["true"]), headers=YAML)

    async def run(self, name: str) -> None:
        """Submit admin's job ``name`` and wait for it to succeed: a store in working order."""
        r = await self.submit(name)
        assert r.status_code == 202, r.text
        await self.wait_state(f"admin~{name}", {"SUCCEEDED"})

    async def state(self, framework: str) -> str:
        r = await self.client.get(f"/api/v2/jobs/{framework}")
        assert r.status_code == 200, r.text
        return r.json()["jobStatus"]["state"]

    async def wait_state(self, framework: str, states: set[str], timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while (state := await self.state(framework)) not in states:
            assert asyncio.get_running_loop().time() < deadline, f"{framework} stayed {state}"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def service(tmp_path) -> AsyncIterator[Service]:
    app = PaiHub(data_dir=str(tmp_path / "data"), node_cpu=4)
    web_app = await app.start_services()
    app.controller.settle_timeout = 0.3  # readers give up quickly here; 10 s in service
    server = httpserver.HTTPServer(web_app)
    port = free_port()
    server.listen(port, address="127.0.0.1")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                 headers={"Authorization": f"Bearer {app.admin_token}"}) as client:
        svc = Service(app, client)
        backend = app.controller.backend
        real_start = backend.start

        async def counting_start(launch: Any) -> None:
            svc.starts[launch.task_id] += 1
            await real_start(launch)

        backend.start = counting_start  # type: ignore[method-assign]
        app.controller.observers.append(lambda fx, _s, _n: svc.observed.append(fx))
        try:
            yield svc
        finally:
            server.stop()
            await app.controller.close()
            app.store.close()


def _job_events(svc: Service, framework: str, reason: str) -> list[dict[str, Any]]:
    job = history.job_by_name(svc.app.store, framework)  # ended jobs leave memory: ask the store
    assert job is not None
    job_id = job.id
    return [e for e in job_store.events(svc.app.store, job_id) if e["reason"] == reason]


def test_a_commit_that_fails_once_is_retried_and_the_job_runs_once(tmp_path, monkeypatch):
    failed = threading.Event()

    def first_submission_fails(fx: Effects) -> bool:
        if fx.new_jobs and not failed.is_set():
            failed.set()
            return True
        return False

    fault = FaultyStore(first_submission_fails)
    monkeypatch.setattr(loop_module.job_store, "persist", fault)

    async def scenario() -> None:
        async with service(tmp_path) as svc:
            r = await svc.submit("once")
            assert r.status_code == 202, r.text
            assert fault.failures == 1
            assert "admin~once" in svc.stored_names()
            await svc.wait_state("admin~once", {"SUCCEEDED"})
            assert len(_job_events(svc, "admin~once", "JobSubmitted")) == 1
            assert len(_job_events(svc, "admin~once", "JobSucceeded")) == 1
            assert svc.starts and set(svc.starts.values()) == {1}, svc.starts

    asyncio.run(scenario())


def test_an_outage_acts_on_nothing_shows_nothing_and_heals_by_itself(tmp_path, monkeypatch, caplog):
    outage = threading.Event()
    fault = FaultyStore(lambda fx: outage.is_set())
    monkeypatch.setattr(loop_module.job_store, "persist", fault)
    caplog.set_level(logging.INFO, logger="pai_hub.orchestrator")

    async def scenario() -> None:
        async with service(tmp_path) as svc:
            await svc.run("before")
            starts_before, observed_before = sum(svc.starts.values()), len(svc.observed)

            outage.set()
            during = asyncio.create_task(svc.submit("during"))
            await fault.wait_failures(3)  # the same turn, retried with backoff
            queued = asyncio.create_task(svc.submit("queued"))
            await fault.wait_failures(5)

            # the machine holds the job, the store does not: nobody is shown or told anything
            assert "admin~during" in svc.app.controller.machine.names
            assert "admin~during" not in svc.stored_names()
            assert "admin~queued" not in svc.app.controller.machine.names  # no turn on top of it
            assert not during.done() and not queued.done()
            assert sum(svc.starts.values()) == starts_before
            assert len(svc.observed) == observed_before
            for path in ("/api/v2/jobs/admin~during", "/api/v2/jobs", "/api/v2/jobs/admin~before"):
                r = await svc.client.get(path)
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.json()["code"] == "UnavailableError", r.text

            outage.clear()
            for submission in (during, queued):
                r = await submission
                assert r.status_code == 202, r.text
            for name in ("admin~during", "admin~queued"):
                await svc.wait_state(name, {"SUCCEEDED"})
                assert len(_job_events(svc, name, "JobSubmitted")) == 1
            listed = {j["name"] for j in (await svc.client.get("/api/v2/jobs")).json()}
            assert listed == {"before", "during", "queued"}
            assert svc.stored_names() == {"admin~before", "admin~during", "admin~queued"}
            assert set(svc.starts.values()) == {1}, svc.starts
            assert len(svc.starts) == 3

    asyncio.run(scenario())
    failures = [r for r in caplog.records if "store commit failed" in r.getMessage()]
    recoveries = [r for r in caplog.records if "store commit succeeded" in r.getMessage()]
    assert len(failures) == 1 and len(recoveries) == 1, [r.getMessage() for r in caplog.records]
    assert not any(r.exc_info for r in failures + recoveries)


def test_a_turn_is_acted_on_only_once_committed(tmp_path, monkeypatch):
    """Starts, answers and observers wait for the commit of the turn that decided them."""
    entered, release = threading.Event(), threading.Event()

    def gated(store: Any, fx: Effects) -> None:
        if fx.starts:
            entered.set()
            assert release.wait(30)
        REAL_PERSIST(store, fx)

    monkeypatch.setattr(loop_module.job_store, "persist", gated)

    async def scenario() -> None:
        async with service(tmp_path) as svc:
            observed_before = len(svc.observed)
            post = asyncio.create_task(svc.submit("gated"))
            await asyncio.get_running_loop().run_in_executor(None, entered.wait, 30)
            # the turn that placed the job is being committed: its decisions exist only in memory
            assert svc.app.controller.machine.names.get("admin~gated") is not None
            assert not svc.starts
            assert len(svc.observed) == observed_before
            assert not post.done()
            release.set()
            r = await post
            assert r.status_code == 202, r.text
            assert list(svc.starts.values()) == [1]
            assert any(fx.starts for fx in svc.observed[observed_before:])
            await svc.wait_state("admin~gated", {"SUCCEEDED"})

    asyncio.run(scenario())


def test_a_30_second_outage_loses_and_repeats_nothing(tmp_path, monkeypatch):
    """The issue's case as it is: the store fails once, then for 30 s while clients keep submitting."""
    outage = threading.Event()
    fault = FaultyStore(lambda fx: outage.is_set())
    monkeypatch.setattr(loop_module.job_store, "persist", fault)

    async def scenario() -> None:
        async with service(tmp_path) as svc:
            # callers wait through the whole outage here (in service a caller is refused after
            # input_timeout, 10 s: tests/orchestrator/test_storage_faults.py)
            svc.app.controller.input_timeout = 60
            outage.set()
            first = asyncio.create_task(svc.submit("first"))
            await fault.wait_failures(1)
            outage.clear()  # the single failure
            assert (await first).status_code == 202
            outage.set()  # then 30 s without a store, with submissions arriving all along
            started = asyncio.get_running_loop().time()
            posts = []
            while asyncio.get_running_loop().time() - started < 30:
                posts.append(asyncio.create_task(svc.submit(f"during-{len(posts)}")))
                await asyncio.sleep(3)  # the workload: a submission every 3 s of the outage
            assert not any(p.done() for p in posts), "a submission was answered before it was stored"
            outage.clear()
            for p in posts:
                r = await p
                assert r.status_code == 202, r.text
            names = ["admin~first"] + [f"admin~during-{i}" for i in range(len(posts))]
            for name in names:
                await svc.wait_state(name, {"SUCCEEDED"})
                assert len(_job_events(svc, name, "JobSubmitted")) == 1
                assert len(_job_events(svc, name, "JobSucceeded")) == 1
            assert svc.stored_names() == set(names)
            assert len(svc.starts) == len(names) and set(svc.starts.values()) == {1}, svc.starts

    asyncio.run(scenario())


def test_a_broken_turn_stops_the_loop_and_answers_everyone(tmp_path, caplog):
    """Fail-stop: a turn that raises for another reason than the store (a bug) leaves the machine
    holding half a turn; nothing of it is committed, acted on or shown, every caller is answered 503,
    and the service is told to exit (JupyterHub restarts a managed service, which resumes from the
    store)."""
    caplog.set_level(logging.INFO, logger="pai_hub.orchestrator")

    async def scenario() -> None:
        async with service(tmp_path) as svc:
            await svc.run("fine")
            machine = svc.app.controller.machine
            real_schedule = machine.schedule

            def broken_schedule(now: float) -> None:
                raise RuntimeError("a bug in the scheduler (injected)")

            machine.schedule = broken_schedule  # type: ignore[method-assign]
            starts_before = sum(svc.starts.values())
            r = await svc.submit("broken")
            assert r.status_code == 503 and r.json()["code"] == "UnavailableError", r.text
            failure = await asyncio.wait_for(svc.app.controller.wait_failed(), 10)
            assert "injected" in str(failure)
            machine.schedule = real_schedule  # type: ignore[method-assign]
            assert "admin~broken" not in svc.stored_names()
            assert sum(svc.starts.values()) == starts_before
            for path in ("/api/v2/jobs/admin~fine", "/api/v2/jobs"):  # nothing is shown any more
                r = await svc.client.get(path)
                assert r.status_code == 503 and r.json()["code"] == "UnavailableError", r.text
            r = await svc.submit("after")
            assert r.status_code == 503, r.text

    asyncio.run(scenario())
    assert any("orchestrator turn failed" in r.getMessage() and r.levelno == logging.CRITICAL
               for r in caplog.records)


def test_the_restarted_service_resumes_from_the_store(tmp_path):
    """After a fail-stop, a new control plane on the same data directory serves what was stored."""

    async def scenario() -> None:
        async with service(tmp_path) as svc:
            await svc.run("kept")

            def broken_schedule(now: float) -> None:
                raise RuntimeError("injected")

            svc.app.controller.machine.schedule = broken_schedule  # type: ignore[method-assign]
            r = await svc.submit("lost-in-turn")
            assert r.status_code == 503
            await asyncio.wait_for(svc.app.controller.wait_failed(), 10)
        async with service(tmp_path) as svc:
            assert await svc.state("admin~kept") == "SUCCEEDED"
            r = await svc.client.get("/api/v2/jobs/admin~lost-in-turn")
            assert r.status_code == 404, r.text  # refused with 503, so never stored: the client retries
            await svc.run("lost-in-turn")

    asyncio.run(scenario())


def test_callers_are_refused_past_input_timeout_and_only_what_was_in_the_commit_happens(tmp_path, monkeypatch):
    """Bounded waits: past ``input_timeout`` of an outage, the job in the commit being retried is
    answered 503 and stored once the store recovers; one still queued is withdrawn (503, nothing
    changed) and its name stays free."""
    outage = threading.Event()
    fault = FaultyStore(lambda fx: outage.is_set())
    monkeypatch.setattr(loop_module.job_store, "persist", fault)

    async def scenario() -> None:
        async with service(tmp_path) as svc:
            svc.app.controller.input_timeout = 0.5
            outage.set()
            in_commit = asyncio.create_task(svc.submit("in-commit"))
            await fault.wait_failures(1)
            queued = await svc.submit("queued")
            assert queued.status_code == 503, queued.text
            assert "storage unavailable, retry" in queued.json()["message"]
            assert "disk I/O error (injected)" in queued.json()["message"]
            assert "nothing was changed" in queued.json()["message"]
            r = await in_commit
            assert r.status_code == 503 and "stored once the storage recovers" in r.json()["message"], r.text
            assert "admin~queued" not in svc.app.controller.machine.names
            outage.clear()
            await svc.wait_state("admin~in-commit", {"SUCCEEDED"})
            assert (await svc.client.get("/api/v2/jobs/admin~queued")).status_code == 404
            await svc.run("queued")
            assert svc.stored_names() == {"admin~in-commit", "admin~queued"}
            assert set(svc.starts.values()) == {1}, svc.starts

    asyncio.run(scenario())
