"""The retention service: applies the retention policy to a backend's finished tasks, periodically.

Each sweep takes a snapshot on the event loop of what must not be touched (the backend's live tasks;
the jobs the orchestrator still holds, not ended or kept for debugging), then does all file and
archive work in one dedicated thread (:func:`pai_hub.backends.retention.sweep`). Backends without
task directories (Kubernetes) have nothing to compact: no service is started for them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pai_hub.backends.retention import RetentionPolicy, SweepResult, job_id_of, sweep
from pai_hub.backends.taskdir import TaskDirBackend
from pai_hub.orchestrator.states import TERMINAL_JOB_STATES
from pai_runtime.supervisor import JOBS_DIR

log = logging.getLogger(__name__)


def needed_job_ids(controller: Any) -> set[int]:
    """Jobs whose task directories must stay: not ended, or ended and kept for debugging.

    Reads the controller's read model on the event loop (live jobs only are in memory)."""
    needed: set[int] = set()
    for job in controller.jobs():
        if job.state not in TERMINAL_JOB_STATES or any(t.debug_until is not None for t in controller.tasks(job.id)):
            needed.add(job.id)
    return needed


class Retention:
    """Sweeps ``backend``'s task directories every ``policy.interval`` seconds (see module docstring)."""

    def __init__(self, backend: TaskDirBackend, policy: RetentionPolicy,
                 needed_jobs: Callable[[], Collection[int]],
                 live_frameworks: Callable[[], Collection[str]] = tuple) -> None:
        self.backend = backend
        self.policy = policy
        self.needed_jobs = needed_jobs
        self.live_frameworks = live_frameworks  # framework names whose job directories must stay
        self.last: SweepResult | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="pai-retention")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.policy.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pai-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._thread.shutdown(wait=True)

    async def _run(self) -> None:
        await asyncio.sleep(min(self.policy.interval, 30.0))  # not in the way of a restart's first turns
        while True:
            try:
                result = await self.sweep_once()
                if result.compacted or result.expired or result.errors:
                    log.info("retention: %d task directories compacted, %d tasks expired, %d kept%s",
                             result.compacted, result.expired, result.kept,
                             f"; errors: {result.errors[:5]}" if result.errors else "")
            except Exception:
                log.exception("retention sweep failed; trying again in %.0f s", self.policy.interval)
            await asyncio.sleep(self.policy.interval)

    async def sweep_once(self, now: float | None = None) -> SweepResult:
        """One sweep. The snapshot is taken here, on the loop; the work runs in the retention thread."""
        live = frozenset(self.backend._live)
        jobs = frozenset(self.needed_jobs())
        now = time.time() if now is None else now

        def needed(task_id: str) -> bool:
            return task_id in live or job_id_of(task_id) in jobs

        keep_dirs = frozenset(hashlib.md5(name.encode()).hexdigest() for name in self.live_frameworks())
        archive = self.backend.archive(create=True)
        assert archive is not None
        loop = asyncio.get_running_loop()
        self.last = await loop.run_in_executor(
            self._thread, sweep, str(self.backend.run_root), archive, self.policy, needed, now)
        if self.policy.compact_after >= 0:
            self.last.job_dirs_removed = await loop.run_in_executor(
                self._thread, prune_job_dirs, str(self.backend.run_root), keep_dirs,
                now - self.policy.compact_after)
        return self.last


def prune_job_dirs(run_root: str, keep: Collection[str], older_than: float) -> int:
    """Delete job directories (``run/jobs/<md5>``: a job's ssh key pair and other shared files, owned by
    its user's account) of jobs no longer held, once untouched since ``older_than``: private keys must
    not pile up for ever. Never follows links (``shutil.rmtree`` walks by directory handle)."""
    removed = 0
    for sub in (JOBS_DIR, "job-ssh"):
        base = os.path.join(run_root, sub)
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for entry in entries:
            if entry.name in keep:
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime > older_than:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError as exc:
                log.warning("retention: could not remove %s: %s", entry.path, exc)
    return removed


def start_retention(backend: Any, policy: RetentionPolicy, controller: Any) -> Retention | None:
    """The retention service for ``backend``, started; None when it has no task directories or the
    policy is off."""
    if not isinstance(backend, TaskDirBackend) or not policy.enabled:
        return None
    retention = Retention(backend, policy, lambda: needed_job_ids(controller),
                          lambda: [job.framework_name for job in controller.jobs()])
    retention.start()
    return retention
