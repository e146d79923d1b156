"""The retention policy: what happens to a finished task attempt's directory, and when.

``<run_root>/tasks/<task_id>/`` is the task's working state while it runs and its record once it has
ended. Kept forever, a million finished jobs are seven million files. A sweep (run off the event
loop by :class:`pai_hub.retention.Retention`, in batches) looks at every task directory and

* **compacts** one whose task ended more than ``compact_after`` seconds ago and that nobody needs
  any more: the exit record, a summary of the spec (no secrets, no env), the other small files and
  the logs (each capped at ``max_log_bytes``: head and tail kept, a marker line between) become one
  row of the :class:`~pai_hub.backends.archive.TaskArchive`; then the directory (with ``work/``)
  is deleted. The backend's log reads fall back to the archive, offsets unchanged;
* **expires** a task that ended more than ``expire_after`` seconds ago: its archived row (or its
  directory, if it was never compacted) is deleted, leaving a tombstone so that readers learn why.

"Nobody needs it" is decided by the caller, on the event loop, *before* the sweep starts: the
backend's live tasks, and the jobs the orchestrator still holds (not ended, or kept for debugging).
A task that ends after that snapshot is left for the next sweep (its exit record is newer than the
snapshot), so a job that becomes debug-reserved meanwhile cannot lose its directory.

Crash safety: a directory is deleted only after its row is committed, and it is first renamed into
``<run_root>/retention-trash/`` (one atomic rename), so a reader never sees half a directory; a
sweep empties what an interrupted one left in the trash.

Hostile directories: the sweep runs as the platform's user (root) over directories that the tasks'
accounts partly own (local: ``runtime.log`` and ``work/``; Slurm: everything). Nothing is read by
path: the task directory is opened once without following a link, every file below it is opened
relative to it with ``O_NOFOLLOW`` and kept only when it is a regular file the platform may trust
(:mod:`pai_hub.backends.safefiles`), a ``log_dir`` outside the task directory is not read, and
deleting never follows a link. A symlink to the admin token left in place of a log is archived as
nothing, not as the token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from pai_hub.backends import safefiles
from pai_hub.backends.archive import TaskArchive
from pai_runtime.exitcodes import EXIT_TASK_LOST
from pai_runtime.supervisor import EXIT_FILE, LOG_NAMES, SPEC_FILE

log = logging.getLogger(__name__)

#: Markers that say a task's directory is still in use whatever its exit record says (Slurm's debug hold).
KEEP_MARKERS = ("hold",)
#: A directory without exit.json (a task lost, or never launched) is folded only this long after it
#: was last changed, and only when neither the backend nor the orchestrator knows the task.
LOST_TASK_AGE = 86400.0
#: Other files of a task directory larger than this are summarised by their size only.
SMALL_FILE_BYTES = 65536
#: Spec fields that never go to the archive: the job's secrets and its environment.
_SECRET_SPEC_FIELDS = ("secrets", "env")

TRASH_DIR = "retention-trash"


@dataclass(frozen=True)
class RetentionPolicy:
    """How long finished tasks keep their directory and their logs (``PaiHub.retention_*``)."""

    compact_after: float = 3600.0  # seconds after a task ended; < 0: never compact
    expire_after: float = 0.0  # seconds after a task ended; 0: never expire
    max_log_bytes: int = 8 << 20  # per log, kept as head + tail at compaction; 0: no cap
    interval: float = 300.0  # seconds between sweeps; 0: no retention at all
    batch: int = 500  # task directories per archive transaction

    @property
    def enabled(self) -> bool:
        return self.interval > 0 and (self.compact_after >= 0 or self.expire_after > 0)


@dataclass
class SweepResult:
    """What one sweep did (logged, and read by tests and benchmarks)."""

    compacted: int = 0
    expired: int = 0
    kept: int = 0  # finished but still needed, or not old enough yet
    errors: list[str] = field(default_factory=list)
    job_dirs_removed: int = 0  # run/jobs/<md5> of jobs no longer held (pai_hub.retention.prune_job_dirs)


def job_id_of(task_id: str) -> int | None:
    """The orchestrator's task ids start with the job id (``<job>.<attempt>.<role>.<index>.<try>``)."""
    head = task_id.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def read_capped(path: str, cap: int) -> tuple[bytes, int] | None:
    """A log's bytes, keeping head and tail with a marker line between when it is over ``cap``;
    also its original size. None if there is no such file, or it is a link or not a regular file the
    platform may trust (:func:`pai_hub.backends.safefiles.open_path`)."""
    f = safefiles.open_path(path)
    return None if f is None else read_capped_file(f, cap)


def read_capped_file(f: IO[bytes], cap: int) -> tuple[bytes, int]:
    """:func:`read_capped` on an opened file (closed here)."""
    with f:
        size = os.fstat(f.fileno()).st_size
        if not cap or size <= cap:
            data = f.read()
            return data, max(size, len(data))
        head = f.read(cap // 2)
        tail_len = cap - len(head)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
    dropped = size - len(head) - len(tail)
    marker = f"\n[... {dropped} bytes dropped by the retention policy ...]\n".encode()
    return head + marker + tail, size


def spec_summary(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as archived: everything but the job's secrets and environment."""
    return {k: v for k, v in spec.items() if k not in _SECRET_SPEC_FIELDS}


def _other_files(dir_fd: int, skip: set[str]) -> dict[str, Any]:
    """The task directory's other top-level files: JSON parsed, small text as text, the rest as a size.
    Links, FIFOs and files the platform may not trust are left out (see module docstring)."""
    out: dict[str, Any] = {}
    with os.scandir(dir_fd) as entries:
        names = [e.name for e in entries if e.name not in skip and e.is_file(follow_symlinks=False)]
    for name in names:
        f = safefiles.open_file(dir_fd, name)
        if f is None:
            continue
        with f:
            size = os.fstat(f.fileno()).st_size
            if size > SMALL_FILE_BYTES:
                out[name] = {"size": size}
                continue
            data = f.read(SMALL_FILE_BYTES)
        if name.endswith(".json"):
            with contextlib.suppress(ValueError):
                out[name] = json.loads(data)
                continue
        out[name] = data.decode(errors="replace")
    return out


@contextlib.contextmanager
def opened_dir(path: str) -> Iterator[int]:
    """The task directory ``path`` as a descriptor (not through a link); FileNotFoundError if none."""
    fd = safefiles.open_dir(path)
    if fd is None:
        raise FileNotFoundError(f"{path}: missing, or not a directory")
    try:
        yield fd
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TaskFolder:
    """One sweep's view of the task directories: the cut-offs and who still needs which task."""

    tasks_dir: str
    policy: RetentionPolicy
    needed: Callable[[str], bool]  # the snapshot taken on the event loop
    now: float

    @property
    def compact_before(self) -> float:
        return self.now - self.policy.compact_after

    @property
    def expire_before(self) -> float | None:
        return self.now - self.policy.expire_after if self.policy.expire_after > 0 else None

    def finished_at(self, task_dir: str, task_id: str) -> tuple[float, dict[str, Any]] | None:
        """When a no-longer-needed task ended and its exit record; None while it must be kept."""
        if self.needed(task_id):
            return None
        with opened_dir(task_dir) as dir_fd:
            if any(_lexists(dir_fd, m) for m in KEEP_MARKERS):
                return None
            f = safefiles.open_file(dir_fd, EXIT_FILE)
            if f is not None:
                mtime = os.fstat(f.fileno()).st_mtime
                record = safefiles.read_json_file(f)
                if record is not None:
                    finished = record.get("finishedAt")
                    if isinstance(finished, (int, float)) and not isinstance(finished, bool):
                        return float(finished), record
                    return mtime, record
            changed = os.fstat(dir_fd).st_mtime  # lost or never launched: judged by its age
        if changed > self.now - max(LOST_TASK_AGE, self.policy.compact_after):
            return None
        return changed, {"exitCode": EXIT_TASK_LOST, "finishedAt": changed,
                         "reason": "no exit record (task lost or never launched); folded by the retention policy"}

    def fold(self, task_dir: str, task_id: str, exit_record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The archive record and the (capped) logs of one task directory."""
        with opened_dir(task_dir) as dir_fd:
            spec = safefiles.read_json_at(dir_fd, SPEC_FILE) or {}
            log_dir = spec.get("log_dir") or f"{task_dir}/logs"
            relative = safefiles.relative_beneath(task_dir, log_dir) if isinstance(log_dir, str) else None
            logs: dict[str, bytes] = {}
            sizes: dict[str, int] = {}
            log_fd = safefiles.open_dir_beneath(dir_fd, relative) if relative is not None else None
            if log_fd is not None:
                try:
                    for name in LOG_NAMES:
                        f = safefiles.open_file(log_fd, name)
                        if f is not None:
                            logs[name], sizes[name] = read_capped_file(f, self.policy.max_log_bytes)
                finally:
                    os.close(log_fd)
            skip = {SPEC_FILE, EXIT_FILE}
            if relative == ".":
                skip.update(LOG_NAMES)
            record = {"taskId": task_id, "exit": exit_record, "spec": spec_summary(spec),
                      "files": _other_files(dir_fd, skip), "logSizes": sizes}
            if relative is None:
                record["logsRefused"] = f"log_dir {log_dir!r} is not inside the task directory: not read"
        return record, logs


def _lexists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def task_dirs(tasks_dir: str) -> Iterator[tuple[str, str]]:
    """(task id, path) of every task directory, as the filesystem lists them."""
    try:
        entries = os.scandir(tasks_dir)
    except FileNotFoundError:
        return
    with entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield entry.name, entry.path


def _discard(path: str, trash: str) -> None:
    """Move a directory out of readers' sight in one rename, then delete it (never through a link)."""
    os.makedirs(trash, 0o700, exist_ok=True)
    target = f"{trash}/{os.path.basename(path)}.{time.monotonic_ns()}"
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return
    safefiles.remove_tree(target)


def empty_trash(run_root: str) -> None:
    """Delete what an interrupted sweep left half-deleted."""
    trash = f"{run_root}/{TRASH_DIR}"
    try:
        st = os.lstat(trash)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    for name in os.listdir(trash):
        entry = f"{trash}/{name}"
        if stat.S_ISDIR(os.lstat(entry).st_mode):
            safefiles.remove_tree(entry)
        else:
            os.unlink(entry)


def sweep(run_root: str, archive: TaskArchive, policy: RetentionPolicy, needed: Callable[[str], bool],
          now: float | None = None) -> SweepResult:
    """One pass over ``<run_root>/tasks`` and the archive (blocking: run it in a thread)."""
    result = SweepResult()
    now = time.time() if now is None else now
    folder = TaskFolder(f"{run_root}/tasks", policy, needed, now)
    trash = f"{run_root}/{TRASH_DIR}"
    empty_trash(run_root)
    expire_before = folder.expire_before
    rows: list[tuple[str, float, dict[str, Any], dict[str, bytes]]] = []
    tombstones: list[tuple[str, float]] = []
    done: list[str] = []

    def flush() -> None:
        if rows:
            archive.add_many(rows)
        if tombstones:
            archive.add_tombstones(tombstones, now)
        for path in done:  # only once their rows are committed
            _discard(path, trash)
        result.compacted += len(rows)
        result.expired += len(tombstones)
        rows.clear()
        tombstones.clear()
        done.clear()

    for task_id, path in task_dirs(folder.tasks_dir):
        try:
            found = folder.finished_at(path, task_id)
            if found is None:
                result.kept += 1
                continue
            finished, exit_record = found
            if expire_before is not None and finished < expire_before:
                tombstones.append((task_id, finished))
            elif policy.compact_after >= 0 and finished < folder.compact_before:
                record, logs = folder.fold(path, task_id, exit_record)
                rows.append((task_id, finished, record, logs))
            else:
                result.kept += 1
                continue
            done.append(path)
        except OSError as exc:  # one unreadable directory must not stop the sweep
            result.errors.append(f"{task_id}: {exc}")
            continue
        if len(done) >= policy.batch:
            flush()
    flush()
    if expire_before is not None:
        while (n := archive.expire(expire_before, now, policy.batch)) > 0:
            result.expired += n
    archive.checkpoint()
    return result
