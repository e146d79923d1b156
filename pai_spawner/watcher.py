"""One watcher per hub: the hub's notebook jobs, kept fresh in a cache that ``poll()`` reads.

JupyterHub polls every running server (every ``Spawner.poll_interval``, on many API calls, and all
of them at once when the hub starts). Asking PAI once per server and poll is what kubespawner
avoids with its reflectors: one watch fills a cache, and ``poll()`` reads the cache. PAI has no
watch over all jobs, so the watcher lists instead: every ``interval`` seconds (or at once when a
spawner asks about a user it has no answer for) one task lists, for each hub user with a watched
server, that user's notebook jobs (``GET /api/v2/jobs?username=<user>&keyword=<prefix>``, with the
user's own hub token: a user sees only their jobs). The cost is one request per user and round, not
one per server and poll; all polls in between are answered from memory.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pai_client import AsyncPaiClient, PaiError

Job = dict[str, Any]  # what the cache keeps of a job: at least ``state`` and ``appExitCode``


@dataclass(frozen=True)
class Answer:
    """What the watcher knows of one job: ``listed`` (its user's jobs were listed; ``job`` is None
    when the job was not among them) or ``error`` (the last listing failed)."""

    job: Job | None = None
    listed: bool = False
    error: PaiError | None = None


@dataclass(frozen=True)
class _Outcome:
    """How a user's last listing went, and which of their servers it covered."""

    error: PaiError | None
    covered: frozenset[str] = frozenset()


class NotebookJobs:
    """The cache of the hub's notebook jobs and the task that keeps it fresh."""

    def __init__(self, prefix: str, interval: float) -> None:
        self.prefix = prefix
        self.interval = interval
        self.jobs: dict[str, Job] = {}  # user~job → the job's summary
        self._recorded: dict[str, float] = {}  # user~job → when (monotonic) its entry was written
        self._watched: dict[str, str] = {}  # user~job of a server the hub has → its user
        self._clients: dict[str, Callable[[], AsyncPaiClient]] = {}  # user → the client acting as them
        self._outcomes: dict[str, _Outcome] = {}  # user → how their last listing went
        self._started = 0  # rounds begun
        self._done = 0  # rounds finished
        self._finished = asyncio.Condition()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- what spawners call --------------------------------------------------------------------------
    def watch(self, framework: str, as_user: Callable[[], AsyncPaiClient]) -> None:
        """Keep ``framework`` (a server of the hub) fresh; ``as_user`` gives the client acting as
        its user (their own token: a user sees only their own jobs)."""
        user = framework.split("~", 1)[0]
        self._watched[framework] = user
        self._clients[user] = as_user
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="PaiSpawner watcher")

    def forget(self, framework: str) -> None:
        """The hub has no server on ``framework`` any more: stop listing for it."""
        user = self._watched.pop(framework, None)
        self.jobs.pop(framework, None)
        self._recorded.pop(framework, None)
        if user is not None and user not in self._watched.values():
            self._clients.pop(user, None)
            self._outcomes.pop(user, None)

    def record(self, framework: str, job: Job) -> None:
        """What a spawner saw itself (the job it just submitted or looked up): newer than any
        listing begun before now, so such a listing does not drop it."""
        self.jobs[framework] = job
        self._recorded[framework] = time.monotonic()

    async def lookup(self, framework: str, as_user: Callable[[], AsyncPaiClient]) -> Answer:
        """The job from the cache; when no listing of its user covered it yet, or the last listing
        failed, after the next round (which begins at once)."""
        self.watch(framework, as_user)
        user = self._watched[framework]
        outcome = self._outcomes.get(user)
        if outcome is None or outcome.error is not None or (
                framework not in outcome.covered and framework not in self.jobs):
            await self.next_round()
            outcome = self._outcomes.get(user, _Outcome(PaiError(0, "NotListed", f"{user}'s jobs were not listed")))
        if outcome.error is not None:
            return Answer(error=outcome.error)
        return Answer(job=self.jobs.get(framework), listed=True)

    async def next_round(self) -> None:
        """Until a round that begins after this call has finished."""
        target = self._started + 1
        self._wake.set()
        async with self._finished:
            await self._finished.wait_for(lambda: self._done >= target)

    # -- the task -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self._started += 1
            round_number = self._started
            began = time.monotonic()
            users = {user: self._clients[user] for user in set(self._watched.values()) if user in self._clients}
            try:
                await asyncio.gather(*(self._list(user, as_user, began) for user, as_user in users.items()))
            finally:  # whatever happened, nobody waits on this round any longer
                async with self._finished:
                    self._done = round_number
                    self._finished.notify_all()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval if self._watched else None)
            except asyncio.TimeoutError:
                pass

    async def _list(self, user: str, as_user: Callable[[], AsyncPaiClient], began: float) -> None:
        covered = [f for f, owner in self._watched.items() if owner == user]  # as the listing begins
        try:
            summaries = await as_user().jobs(username=user, keyword=self.prefix)
        except PaiError as exc:
            self._outcomes[user] = _Outcome(exc)
            return
        except Exception as exc:  # e.g. minting the user's token failed: the other users are still listed
            self._outcomes[user] = _Outcome(PaiError(500, type(exc).__name__, str(exc)))
            return
        found = {f"{user}~{s.get('name')}": s for s in summaries if s.get("username") == user}
        for framework in covered:
            if self._recorded.get(framework, 0.0) > began:
                continue  # a spawner recorded it after this listing began: that is newer
            if framework in found:
                self.jobs[framework] = found[framework]
                self._recorded[framework] = began
            else:  # not there (any more)
                self.jobs.pop(framework, None)
                self._recorded.pop(framework, None)
        self._outcomes[user] = _Outcome(None, frozenset(covered))


_WATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], NotebookJobs]] = \
    weakref.WeakKeyDictionary()


def hub_watcher(url: str, prefix: str, interval: float) -> NotebookJobs:
    """The event loop's one watcher of notebook jobs named ``<prefix>-...`` at the PAI at ``url``."""
    watchers = _WATCHERS.setdefault(asyncio.get_running_loop(), {})
    key = (url, prefix)
    if key not in watchers:
        watchers[key] = NotebookJobs(prefix, interval)
    return watchers[key]
