"""poll() reads the hub's one watched cache of notebook jobs (kubespawner's reflector), against a
PAI that counts requests: one listing per user and round, not one look per server and poll."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tests.pai_spawner.fake_pai import FakeJob, FakePai
from tests.pai_spawner.spawners import spawner

LIST = "/api/v2/jobs?"  # a listing of jobs
LOOK = "/api/v2/jobs/"  # a look at one job


def run(body: Callable[[FakePai], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        fake = FakePai().start()
        try:
            return await asyncio.wait_for(body(fake), 30)
        finally:
            fake.stop()

    return asyncio.run(main())


def restored(fake: FakePai, server: str, framework: str, user: str = "alice"):
    s = spawner(server, user=user, pai_url=fake.url, pai_watch_interval=60)
    s.load_state({"framework": framework, "ip": "127.0.0.1", "port": 31000})
    return s


def test_two_servers_share_one_client_and_one_watcher_and_poll_reads_its_cache():
    async def body(fake: FakePai) -> None:
        fake.jobs = {"alice~jupyter-a-1": FakeJob(), "alice~jupyter-b-1": FakeJob()}
        a, b = restored(fake, "a", "alice~jupyter-a-1"), restored(fake, "b", "alice~jupyter-b-1")
        assert a.watcher is b.watcher
        assert a.pai._http is b.pai._http  # one connection pool for the hub, each acting as its user
        assert a.pai.auth_headers() == {"Authorization": "Bearer hub-token-of-alice"}
        assert await asyncio.gather(a.poll(), b.poll()) == [None, None]  # the hub polls restored servers at once
        for _ in range(5):
            assert await a.poll() is None and await b.poll() is None
        assert fake.count("GET", LIST) == 1, fake.requests  # one listing answered twelve polls
        assert fake.count("GET", LOOK) == 0, fake.requests  # and no server was looked at on its own

        fake.jobs["alice~jupyter-a-1"] = FakeJob(state="FAILED", exit_code=3)
        await a.watcher.next_round()  # what the watcher does every pai_watch_interval
        assert await a.poll() == 3 and await b.poll() is None
        assert fake.count("GET", LIST) == 2 and fake.count("GET", LOOK) == 0

    run(body)


def test_one_listing_per_user_and_round():
    async def body(fake: FakePai) -> None:
        fake.jobs = {"alice~jupyter-a-1": FakeJob(), "bob~jupyter-b-1": FakeJob(), "bob~jupyter-c-1": FakeJob()}
        spawners = [restored(fake, "a", "alice~jupyter-a-1"), restored(fake, "b", "bob~jupyter-b-1", "bob"),
                    restored(fake, "c", "bob~jupyter-c-1", "bob")]
        assert await asyncio.gather(*(s.poll() for s in spawners)) == [None, None, None]
        lists = [p for m, p in fake.requests if p.startswith(LIST)]
        assert sorted(lists) == ["/api/v2/jobs?username=alice&keyword=jupyter",
                                 "/api/v2/jobs?username=bob&keyword=jupyter"]

    run(body)


def test_a_job_missing_from_the_listing_is_looked_at_once_and_a_gone_one_is_over():
    async def body(fake: FakePai) -> None:
        gone = restored(fake, "gone", "alice~jupyter-gone-1")
        assert await gone.poll() == 0  # listed: not there; looked at: 404
        assert fake.count("GET", LIST) == 1 and fake.count("GET", LOOK + "alice~jupyter-gone-1") == 1

    run(body)


def test_a_listing_begun_before_a_submission_does_not_drop_the_new_job():
    """start() records the job it submitted; a listing that began earlier (and so lacks the job)
    must not make the next poll report the new server as gone."""

    async def body(fake: FakePai) -> None:
        fake.jobs = {"alice~jupyter-old-1": FakeJob()}
        old = restored(fake, "old", "alice~jupyter-old-1")
        assert await old.poll() is None
        fake.list_gate = asyncio.Event()  # the next listing is under way and waits
        listing = asyncio.ensure_future(old.watcher.next_round())
        while fake.count("GET", LIST) < 2:
            await asyncio.sleep(0.01)
        new = spawner("new", pai_url=fake.url, pai_watch_interval=60)
        new.framework = "alice~jupyter-new-1"
        fake.jobs[new.framework] = FakeJob(state="WAITING")
        new.watcher.record(new.framework, {"state": "WAITING"})  # what start() does after submitting
        fake.list_gate.set()
        await listing
        assert await new.poll() is None
        assert fake.count("GET", LOOK) == 0, fake.requests

    run(body)


def test_an_unreachable_pai_is_retried_with_backoff_until_it_answers():
    async def body(fake: FakePai) -> None:
        port = fake.url.rsplit(":", 1)[1]
        fake.stop()  # PAI restarting: nothing listens
        s = spawner("a", pai_url=f"http://127.0.0.1:{port}", pai_watch_interval=60)
        s.framework = "alice~jupyter-a-1"  # a server of this hub, not a restored one: poll waits for PAI
        poll = asyncio.ensure_future(s.poll())
        await s.watcher.next_round()  # a listing failed: nothing listens
        back = FakePai()
        back.jobs = {"alice~jupyter-a-1": FakeJob(state="SUCCEEDED", exit_code=0)}
        back.start(int(port))
        try:
            assert await poll == 0
        finally:
            back.stop()

    run(body)
