"""The one loop that drives the state machine: inputs in, effects committed, then acted on.

Each turn drains every pending input (submissions, stop requests, backend task events), applies
them to the :class:`~.machine.Machine`, asks the scheduler for placements, commits the resulting
effects in one transaction on a dedicated writer thread, and only then starts and stops tasks and
answers the callers. Bursts therefore cost one commit, and nothing is acted on before it is stored.

A commit that fails is retried, the same effects with backoff, until it succeeds (FrameworkController
requeues a failed sync the same way): the turn neither acts nor ends meanwhile, so no other turn
runs on top of uncommitted state, and readers waiting in :meth:`Controller.settled` are refused
with :class:`StoreUnavailable` rather than shown what the store lacks.

A caller is not kept waiting through an outage either: past :attr:`Controller.input_timeout` its
request is refused with :class:`StoreUnavailable` naming the cause ("database is locked", "no
space"). A request still queued behind the failing commit is withdrawn first, so it never happens
and can simply be sent again; one already in the commit being retried is stored once the store
recovers (the answer says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, TaskExit, TaskRunning
from ..store import history
from ..store import jobs as job_store
from ..store.db import Store
from . import store_faults
from .effects import Effects
from .machine import Machine
from .records import EXIT_START_FAILED, EXIT_TASK_LOST, JobRecord

if TYPE_CHECKING:  # the read model's types
    from ..core import NodeInfo
    from ..scheduler.base import GangRequest, PodRequest
    from ..scheduler.requests import ClusterFacts
    from .records import JobAttemptRecord, TaskRecord

log = logging.getLogger("pai_hub.orchestrator")


#: First pause before a failed commit is retried, and the longest pause between retries.
COMMIT_RETRY_FIRST = 0.05
COMMIT_RETRY_MAX = 2.0
#: How long a reader waits for the commit in flight before it is told the store is unavailable.
SETTLE_TIMEOUT = 10.0
#: How long a caller's change may wait for a stalled store before it is refused (503).
INPUT_TIMEOUT = 10.0


class ConflictError(Exception):
    """A job of this name already exists for this user (names are unique per user, forever)."""


class ControlPlaneFailed(Exception):
    """The loop stopped after an internal error (see :meth:`Controller._fail`): nothing more is
    accepted or shown until the service restarts from the store."""

    def __init__(self) -> None:
        super().__init__("the control plane stopped after an internal error and restarts from its store; "
                         "try again shortly")


class StoreUnavailable(Exception):
    """The store has not accepted the commit in flight in time: what the machine holds cannot be
    shown yet (the API answers 503). The loop keeps retrying that commit on its own."""


class Controller:
    """Owns the machine; everything that changes a job goes through :meth:`submit`/:meth:`stop`."""

    def __init__(self, store: Store, backend: Backend, machine: Machine,
                 plan_of: Callable[[JobRecord], Any], clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.backend = backend
        self.machine = machine
        self.plan_of = plan_of
        self.clock = clock
        self._inputs: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pai-store-writer")
        # History (jobs no longer in memory) is read here, beside the writer, never on the loop.
        self._reader = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pai-store-reader")
        self._tasks: list[asyncio.Task] = []
        self._subscribers: dict[int, set[asyncio.Queue]] = {}
        self._closing = False
        # Set while a turn's effects are being committed: the machine already holds them, the store
        # not yet. Readers wait on it (:meth:`settled`) so that nothing is shown before it is stored.
        # Its result says whether the commit succeeded (False only when the controller closed first).
        self._committing: asyncio.Future[bool] | None = None
        self.settle_timeout = SETTLE_TIMEOUT
        self.input_timeout = INPUT_TIMEOUT
        self._outage_since: float | None = None  # monotonic time of the first failed commit of an outage
        self._store_error: str | None = None  # the cause of the last failed commit of the outage
        self._probed: tuple[float, str] | None = None  # (monotonic time, cause) of the last probe
        self.failure: BaseException | None = None  # what stopped the loop (fail-stop), if anything did
        self._failed = asyncio.Event()
        # Called after each committed turn with (effects, seconds spent scheduling, now): metrics,
        # alerts and timelines watch the platform here without the loop knowing about them.
        self.observers: list[Callable[[Effects, float, float], None]] = []

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self, backend_open: bool = False) -> None:
        """Reload the store, re-adopt live tasks from the backend, then start turning. The backend
        is opened here unless the caller already did (to read its nodes)."""
        if not backend_open:
            await self.backend.open()
        loop = asyncio.get_running_loop()
        jobs, attempts, tasks = await loop.run_in_executor(self._writer, job_store.load, self.store)
        last_event = await loop.run_in_executor(self._writer, job_store.last_event_id, self.store)
        last_job = await loop.run_in_executor(self._writer, job_store.last_job_id, self.store)
        names = self.machine.names
        await loop.run_in_executor(self._writer, lambda: names.retire_all(job_store.job_names(self.store)))
        now = self.clock()
        to_adopt = self.machine.restore(jobs, attempts, tasks, self.plan_of, now, last_event, last_job)
        if to_adopt:
            for ev in await self.backend.adopt(to_adopt):
                self._apply_backend_event(ev, now)
        log.info("loaded %d live jobs (%d names taken), adopted %d live tasks", len(jobs), len(names),
                 len(to_adopt))
        await self._turn()
        self._tasks = [
            asyncio.create_task(self._run(), name="pai-orchestrator"),
            asyncio.create_task(self._pump_backend(), name="pai-backend-events"),
        ]

    async def close(self) -> None:
        self._closing = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.backend.close()
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    # -- inputs ---------------------------------------------------------------------------------
    async def submit(self, job: JobRecord, plan: Any) -> JobRecord:
        """Queue a job; returns once it is committed. Raises ConflictError on a duplicate name."""
        return await self._queue(("submit", job, plan, self._input_future()))

    async def submit_many(self, jobs: list[tuple[JobRecord, Any]]) -> list[JobRecord]:
        """Queue many jobs (a batch or a job array) as ONE input: one turn adds them all and one
        commit stores them, or none is added. A name already taken, or given twice in ``jobs``,
        refuses the whole batch with :class:`ConflictError`; its ``position`` attribute is that
        job's place in ``jobs``, so the caller can name the element."""

        def add_all(machine: Machine, now: float) -> list[JobRecord]:
            seen: set[str] = set()
            for position, (job, _) in enumerate(jobs):
                if job.framework_name in machine.names or job.framework_name in seen:
                    conflict = ConflictError(f"Job {job.framework_name} already exists.")
                    conflict.position = position  # type: ignore[attr-defined]
                    raise conflict
                seen.add(job.framework_name)
            for job, plan in jobs:
                machine.submit(job, plan, now)
            return [job for job, _ in jobs]

        return await self.call(add_all)

    async def stop(self, job_id: int) -> None:
        await self._queue(("stop", job_id, self._input_future()))

    async def call(self, fn: Callable[[Machine, float], Any]) -> Any:
        """Run ``fn(machine, now)`` inside a turn: its effects are committed, then acted on, as any input's."""
        return await self._queue(("call", fn, self._input_future()))

    def _input_future(self) -> asyncio.Future:
        if self.failure is not None:
            raise ControlPlaneFailed()
        return asyncio.get_running_loop().create_future()

    async def _queue(self, item: tuple[Any, ...]) -> Any:
        """Queue an input and return its answer once its turn is committed. While the store stalls
        (a commit failing, or not returning) the wait is bounded by :attr:`input_timeout`: then an
        input still queued is withdrawn (it never happens: sending it again is safe) and one in the
        commit being retried is left to it (stored once the store recovers); either way the caller
        gets :class:`StoreUnavailable` with the cause. A busy loop with a healthy store is waited for."""
        fut: asyncio.Future = item[-1]
        self._inputs.append(item)
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.input_timeout
        while True:
            await asyncio.wait({fut}, timeout=max(0.0, deadline - loop.time()))
            if fut.done():
                return fut.result()
            if not self._store_stalled():
                deadline = loop.time() + 0.1  # the loop is busy, not the store: keep waiting
                continue
            cause = await self._stall_cause()
            if fut.done():
                return fut.result()
            if self._withdraw(item):
                raise StoreUnavailable(f"{store_faults.RETRY}: {cause}; nothing was changed")
            raise StoreUnavailable(f"{store_faults.RETRY} later: {cause}; the change is kept and stored once "
                                   "the storage recovers, so look before sending it again")

    def _withdraw(self, item: tuple[Any, ...]) -> bool:
        """Take an input out of the queue if no turn has taken it yet; True when it was there."""
        for i, queued in enumerate(self._inputs):
            if queued is item:
                del self._inputs[i]
                return True
        return False

    def _store_stalled(self) -> bool:
        """Whether the store is failing (an outage) or a commit is in flight, i.e. the store, not
        the loop, is what callers are waiting on."""
        return self._outage_since is not None or (self._committing is not None and not self._committing.done())

    async def _stall_cause(self) -> str:
        """The cause of the outage; before a commit has failed (SQLite waits out a lock for its busy
        timeout first), what a probe of the database finds, else how long the commit has taken."""
        if self._store_error is not None:
            return self._store_error
        if self._probed is not None and time.monotonic() - self._probed[0] < 1.0:
            return self._probed[1]  # many callers time out together: one probe a second answers them
        cause = "the database has not finished the commit in flight"
        with contextlib.suppress(Exception):
            cause = await self._read(store_faults.probe, self.store.url) or cause
        self._probed = (time.monotonic(), cause)
        return cause

    async def settled(self, timeout: float | None = None) -> None:
        """Return once no commit is in flight. The machine is changed before its turn is committed;
        a reader that waits here sees only what the store holds (a job shown SUCCEEDED already has
        its JobSucceeded event), so a crash can never take back what a client was shown.

        Raises :class:`StoreUnavailable` when the commit is still not stored after ``timeout``
        seconds (default :attr:`settle_timeout`): the store is failing and the loop is retrying."""
        if self.failure is not None:
            raise StoreUnavailable(str(ControlPlaneFailed()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.settle_timeout if timeout is None else timeout)
        while self._committing is not None and not self._committing.done():
            try:
                committed = await asyncio.wait_for(asyncio.shield(self._committing),
                                                   max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                cause = await self._stall_cause()
                raise StoreUnavailable(f"{store_faults.RETRY} shortly: the job store is not accepting writes "
                                       f"({cause}); the service retries on its own") from None
            if not committed:
                raise StoreUnavailable("the service is shutting down")

    def subscribe(self, job_id: int) -> asyncio.Queue:
        """A queue that receives each committed event of a job (for server-sent events)."""
        q: asyncio.Queue = asyncio.Queue()
        self._subscribers.setdefault(job_id, set()).add(q)
        return q

    def unsubscribe(self, job_id: int, q: asyncio.Queue) -> None:
        subs = self._subscribers.get(job_id)
        if subs is not None:
            subs.discard(q)
            if not subs:
                del self._subscribers[job_id]

    # -- read model ---------------------------------------------------------------------------
    # What the API, the hub pages, monitoring and experiments read of jobs and of the cluster. None
    # of these change anything; handlers call :meth:`settled` first so that they show only what the
    # store holds. Live jobs are the machine's own records (read, never write); a job that ended
    # has left memory and is read from the store, off the loop (the ``async`` methods).
    def job(self, framework_name: str) -> JobRecord | None:
        """The live job ``<user>~<name>`` (in memory), or None: also for one that has ended (see
        :meth:`find_job`)."""
        job_id = self.machine.names.get(framework_name)
        return None if job_id is None else self.machine.jobs.get(job_id)

    def job_by_id(self, job_id: int) -> JobRecord | None:
        """The live job of this id, or None."""
        return self.machine.jobs.get(job_id)

    def jobs(self, *, username: str | None = None, virtual_cluster: str | None = None,
             states: Collection[str] | None = None) -> list[JobRecord]:
        """The live jobs (those not ended, and ended ones kept for debugging), or those of one user,
        one VC and/or in one of ``states``. History is :meth:`list_jobs`."""
        return [j for j in self.machine.jobs.values()
                if (username is None or j.username == username)
                and (virtual_cluster is None or j.virtual_cluster == virtual_cluster)
                and (states is None or j.state in states)]

    def name_taken(self, framework_name: str) -> bool:
        """Whether a job of this name was ever submitted (a second one is refused, 409)."""
        return framework_name in self.machine.names

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, *args)

    async def find_job(self, framework_name: str) -> JobRecord | None:
        """The job ``<user>~<name>``, live or ended, or None."""
        job = self.job(framework_name)
        if job is not None or framework_name not in self.machine.names:
            return job
        return await self._read(history.job_by_name, self.store, framework_name)

    async def job_status(self, job: JobRecord) -> tuple[JobAttemptRecord | None, list[TaskRecord]]:
        """The current attempt of ``job`` and its tasks: from memory while it is live, else stored."""
        if self.machine.jobs.get(job.id) is job:
            return self.machine.attempts.get(job.id), list(self.machine.tasks.get(job.id, ()))
        await self.settled()  # it may have left memory in the turn being committed
        return await self._read(history.current_attempt, self.store, job)

    async def list_jobs(self, query: history.JobQuery, offset: int, limit: int, *,
                        after: history.Keyset | None = None, with_total: bool = False) -> history.JobPage:
        """A page of every job, live or ended, from the store's indexes. Each turn commits what the
        machine changed, so after :meth:`settled` the store holds the live jobs as the machine does."""
        await self.settled()
        return await self._read(lambda: history.list_jobs(self.store, query, offset, limit, after=after,
                                                          with_total=with_total))

    def attempt(self, job_id: int) -> JobAttemptRecord | None:
        """The live job's current attempt."""
        return self.machine.attempts.get(job_id)

    def tasks(self, job_id: int) -> list[TaskRecord]:
        """The tasks of the live job's current attempt (none once it has left memory)."""
        return list(self.machine.tasks.get(job_id, ()))

    def nodes(self) -> list[NodeInfo]:
        return list(self.machine.nodes.values())

    def has_node(self, name: str) -> bool:
        return name in self.machine.nodes

    def gpu_holders(self) -> dict[tuple[str, int], str]:
        """(node, GPU index) -> the job holding it: running tasks and debug reservations."""
        machine = self.machine
        holders: dict[tuple[str, int], str] = {}
        for job_id, tasks in machine.tasks.items():
            for t in tasks:
                if t.launch_state in ("launching", "running") or job_id in machine.debugging:
                    for g in t.gpus:
                        holders[(t.node or "", g)] = machine.jobs[job_id].framework_name
        return holders

    @property
    def cluster_facts(self) -> ClusterFacts:
        """What job requests are mapped with (SKUs per VC, pinned cells) for the config in force."""
        return self.machine.cluster_facts

    def cluster_status(self) -> dict[str, Any]:
        """The scheduler's view of the cluster: per SKU and per node (``healthy``, ``skus``)."""
        return self.machine.scheduler.cluster_status()

    def vc_status(self, vc: str) -> dict[str, Any]:
        """Capacity, use and free cells of one VC per SKU. Raises KeyError for an unknown VC."""
        return self.machine.scheduler.vc_status(vc)

    def validate(self, gang: GangRequest) -> str | None:
        """Why the scheduler could never place ``gang`` as written (a 400 at submission), or None."""
        return self.machine.scheduler.validate(gang)

    def leaf_cells(self, gang: GangRequest, pod: PodRequest) -> int:
        """Leaf cells one task of ``gang`` takes."""
        return self.machine.scheduler.leaf_cells(gang, pod)

    def scheduler_identity(self) -> int:
        """Changes when a cluster reload replaces the scheduler (its marks, e.g. bad nodes, start over)."""
        return id(self.machine.scheduler)

    # -- the loop -------------------------------------------------------------------------------
    async def _pump_backend(self) -> None:
        async for ev in self.backend.events():
            self._inputs.append(("backend", ev))
            self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            deadline = self.machine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass  # a deadline (debug reservation) passed: turn anyway
            self._wake.clear()
            try:
                await self._turn()
            except Exception as exc:
                self._fail(exc)
                return

    def _fail(self, exc: BaseException) -> None:
        """Fail-stop after a turn broke for a reason other than the store (a bug in the machine or
        the scheduler). The machine may hold half of that turn, uncommitted: going on would act on
        it or show it, so the controller stops taking inputs, refuses every caller and every reader,
        and tells the service (:meth:`wait_failed`), which exits; the store is still the truth and a
        restart resumes from it (JupyterHub restarts a managed service that exits)."""
        log.critical("orchestrator turn failed; stopping the control plane, which resumes from the store on "
                     "restart", exc_info=exc)
        self.failure = exc
        self._closing = True
        for item in self._inputs:
            fut = item[-1]
            if isinstance(fut, asyncio.Future) and not fut.done():
                fut.set_exception(ControlPlaneFailed())
        self._inputs = []
        self._failed.set()

    async def wait_failed(self) -> BaseException:
        """Return the error that stopped the loop, once it has (see :meth:`_fail`)."""
        await self._failed.wait()
        failure = self.failure
        if failure is None:
            raise RuntimeError("the failure event was set without a failure")
        return failure

    def _apply_backend_event(self, ev: Any, now: float) -> None:
        if isinstance(ev, TaskRunning):
            self.machine.task_running(ev.task_id, ev.started_at, now)
        elif isinstance(ev, TaskExit):
            record = ev.record or {}
            self.machine.task_exited(ev.task_id, ev.exit_code, ev.started_at, ev.finished_at, now,
                                     record.get("diagnostics"), record.get("exitInfo"))

    async def _turn(self) -> None:
        inputs, self._inputs = self._inputs, []
        try:
            await self._apply_and_commit(inputs)
        except Exception:
            for item in inputs:  # no caller of a broken turn is left waiting
                fut = item[-1]
                if isinstance(fut, asyncio.Future) and not fut.done():
                    fut.set_exception(ControlPlaneFailed())
            raise

    async def _apply_and_commit(self, inputs: list[tuple[Any, ...]]) -> None:
        now = self.clock()
        waiters: list[tuple[asyncio.Future, Any]] = []
        for item in inputs:
            kind = item[0]
            if kind == "submit":
                _, job, plan, fut = item
                if job.framework_name in self.machine.names:
                    fut.set_exception(ConflictError(f"Job {job.framework_name} already exists."))
                    continue
                self.machine.submit(job, plan, now)
                waiters.append((fut, job))
            elif kind == "stop":
                _, job_id, fut = item
                self.machine.stop(job_id, now)
                waiters.append((fut, None))
            elif kind == "call":
                _, fn, fut = item
                try:
                    waiters.append((fut, fn(self.machine, now)))
                except Exception as exc:  # the caller gets it; the turn goes on
                    fut.set_exception(exc)
            else:
                self._apply_backend_event(item[1], now)
        self.machine.expire_debug(now)
        started = time.perf_counter()
        self.machine.schedule(now)
        scheduling = time.perf_counter() - started
        fx = self.machine.take_effects()
        if fx:
            self._committing = committing = asyncio.get_running_loop().create_future()
            try:
                await self._commit(fx)
            except BaseException:  # closing: nothing of this turn may be acted on or shown
                committing.set_result(False)
                for fut, _ in waiters:
                    if not fut.done():
                        fut.set_exception(StoreUnavailable("the service closed before the change was stored"))
                raise
            committing.set_result(True)
        for fut, value in waiters:
            if not fut.done():
                fut.set_result(value)
        for observe in self.observers:
            try:
                observe(fx, scheduling, now)
            except Exception:
                log.exception("observer failed")
        await self._act(fx)

    async def _commit(self, fx: Effects) -> None:
        """Store ``fx``, retrying the same effects with exponential backoff until the store takes
        them. Returns only once they are committed (or raises CancelledError when closing)."""
        loop = asyncio.get_running_loop()
        pause = COMMIT_RETRY_FIRST
        retries = 0
        while True:
            try:
                # after a failure, the transaction may have been committed all the same (a lost
                # connection after COMMIT): writing it twice would duplicate its rows
                if not (retries and await loop.run_in_executor(self._writer, job_store.committed, self.store, fx)):
                    await loop.run_in_executor(self._writer, job_store.persist, self.store, fx)
            except Exception as exc:
                cause = store_faults.describe(exc, self.store.url)
                if self._outage_since is None or cause != self._store_error:
                    # the cause only: the statement's parameters hold users' job documents
                    log.error("store commit failed (%s: %s); nothing of this turn is acted on or shown, "
                              "retrying until the store accepts it", type(exc).__name__, cause)
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                self._store_error = cause
                retries += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, COMMIT_RETRY_MAX)
                continue
            if self._outage_since is not None:
                log.warning("store commit succeeded after %d retries (%.1f s without a store); resuming",
                            retries, time.monotonic() - self._outage_since)
                self._outage_since = None
                self._store_error = None
            return

    async def _act(self, fx: Effects) -> None:
        for launch in fx.starts:
            try:
                await self.backend.start(launch)
            except ValueError as exc:  # it was started before: whatever ran is gone without a record
                log.warning("start of %s refused: %s", launch.task_id, exc)
                self._inputs.append(("backend", TaskExit(launch.task_id, EXIT_TASK_LOST, None, self.clock(),
                                                         {"diagnostics": str(exc)})))
                self._wake.set()
            except Exception as exc:
                log.exception("start of %s failed", launch.task_id)
                self._inputs.append(("backend", TaskExit(launch.task_id, EXIT_START_FAILED, None, self.clock(),
                                                         {"diagnostics": f"backend could not start it: {exc}"})))
                self._wake.set()
        for task_id, grace in fx.stops:
            try:
                await self.backend.stop(task_id, grace)
            except Exception:  # stored as stopping: the backend's exit report, or adoption, ends it
                log.exception("stop of %s failed", task_id)
        if self._subscribers:
            for ev in fx.events:
                for q in self._subscribers.get(ev.job_id, ()):
                    q.put_nowait(ev)
