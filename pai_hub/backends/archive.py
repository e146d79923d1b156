"""The archive of finished task attempts: one SQLite file instead of a directory per attempt.

A finished task attempt leaves ``<run_root>/tasks/<task_id>/`` behind: spec.json, pid.json, exit.json,
four logs, a work directory; about 7 files and 15 KB of disk even for a task that printed nothing,
since every file and directory takes at least one filesystem block. The retention policy
(:mod:`pai_hub.backends.retention`) folds such a directory into one row of this archive: a JSON
record (exit record, a summary of the spec without secrets, the other small files) and the logs
concatenated in one blob, so a finished task costs its log bytes plus about a hundred bytes. Log
reads with offsets stay byte-exact: ``substr`` on the blob.

When a task expires, its row keeps only a tombstone (task id, when it ended, when it expired), so a
reader is told *why* the logs are gone, not just that they are.

The file holds every user's logs: it is created 0600, never opened through a link, and an existing
one (and its ``-wal``/``-shm``) found readable by others is closed again at open.

One connection per thread (the API's blocking pool reads while the retention thread writes); WAL,
so readers never wait for the writer. The file must be on a local disk: SQLite's WAL does not work
on network filesystems (a Slurm run root on NFS needs ``retention_archive`` set elsewhere).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pai_runtime.supervisor import LOG_NAMES

_SCHEMA = """
CREATE TABLE IF NOT EXISTS archived_tasks (
    task_id      TEXT NOT NULL UNIQUE,
    finished_at  REAL NOT NULL,
    compacted_at REAL NOT NULL,
    expired_at   REAL,
    record       TEXT,
    logs         BLOB
);
CREATE INDEX IF NOT EXISTS archived_tasks_unexpired ON archived_tasks (finished_at) WHERE expired_at IS NULL;
"""


#: SQLite's companions of the database file (created with the database file's mode).
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _own_private(path: str, *, create: bool) -> None:
    """Make ``path`` a regular file of this process's user, mode 0600 (it holds every user's logs):
    created so when missing (``create``), never through a link, and closed when an older version or
    a looser umask left it readable. Raises PermissionError for a file that is a link, not a regular
    file, or another user's."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):
            raise PermissionError(f"{path} is a link or not a regular file: refusing to use it as the task "
                                  "archive") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise PermissionError(f"{path} is not a regular file of uid {os.geteuid()} (owner uid "
                                  f"{st.st_uid}): refusing to use it as the task archive")
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class TaskExpired(KeyError):
    """The task's files and logs were deleted by the retention policy (a KeyError: unknown to old callers).

    ``gone`` lets the API answer 410 with this message without importing backends."""

    gone = True

    def __init__(self, task_id: str, finished_at: float, expired_at: float) -> None:
        super().__init__(task_id)
        self.task_id = task_id
        self.finished_at = finished_at
        self.expired_at = expired_at

    def __str__(self) -> str:
        days = max(0.0, self.expired_at - self.finished_at) / 86400
        ended = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.finished_at))
        return (f"task {self.task_id} (ended {ended}) was expired by the retention policy after "
                f"{days:.3g} days: its logs and files are deleted")


@dataclass(frozen=True)
class ArchivedLog:
    """Where one log lies in a task's blob, and how much of the original was dropped by the size cap."""

    start: int
    length: int
    original: int

    @property
    def truncated(self) -> bool:
        return self.original != self.length


class TaskArchive:
    """Compacted task attempts in ``path`` (see module docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._local = threading.local()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        for path in (self.path, *(self.path + s for s in _SIDE_FILES)):
            _own_private(path, create=path == self.path)
        with self._db() as db:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a row lost to a power cut: its directory is still there
            self._local.db = db
        return db

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- writing -------------------------------------------------------------------------------

    def add_many(self, rows: list[tuple[str, float, dict[str, Any], dict[str, bytes]]]) -> None:
        """Archive ``(task_id, finished_at, record, logs)`` rows in one transaction (a batch of a sweep).

        ``record`` gets ``logs``: each log's place in the blob. Re-adding a task replaces its row."""
        now = time.time()
        values = []
        for task_id, finished_at, record, logs in rows:
            places: dict[str, list[int]] = {}
            parts: list[bytes] = []
            start = 0
            for name in LOG_NAMES:
                data = logs.get(name)
                if data is None:
                    continue
                original = int(record.get("logSizes", {}).get(name, len(data)))
                places[name] = [start, len(data), original]
                parts.append(data)
                start += len(data)
            doc = dict(record, logs=places)
            values.append((task_id, finished_at, now, json.dumps(doc, separators=(",", ":")), b"".join(parts)))
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO archived_tasks (task_id, finished_at, compacted_at, record, logs) "
                           "VALUES (?, ?, ?, ?, ?)", values)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def add_tombstones(self, rows: list[tuple[str, float]], expired_at: float) -> None:
        """Record ``(task_id, finished_at)`` tasks as expired without ever having been archived."""
        db = self._db()
        db.executemany("INSERT OR REPLACE INTO archived_tasks (task_id, finished_at, compacted_at, expired_at) "
                       "VALUES (?, ?, ?, ?)", [(t, f, expired_at, expired_at) for t, f in rows])

    def expire(self, finished_before: float, now: float, limit: int) -> int:
        """Drop the logs and records of up to ``limit`` tasks that ended before ``finished_before``;
        their tombstones stay. Returns how many were expired."""
        db = self._db()
        cur = db.execute(
            "UPDATE archived_tasks SET expired_at = ?, record = NULL, logs = NULL WHERE rowid IN "
            "(SELECT rowid FROM archived_tasks WHERE expired_at IS NULL AND finished_at < ? LIMIT ?)",
            (now, finished_before, limit))
        return cur.rowcount

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file and truncate it (after a sweep), so the archive's
        disk use is its rows, not its history."""
        self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reading -------------------------------------------------------------------------------

    def has(self, task_id: str) -> bool:
        return self._db().execute("SELECT 1 FROM archived_tasks WHERE task_id = ?", (task_id,)).fetchone() is not None

    def record(self, task_id: str) -> dict[str, Any]:
        """The archived record of ``task_id``. KeyError if unknown, :class:`TaskExpired` if expired."""
        row = self._db().execute("SELECT finished_at, expired_at, record FROM archived_tasks WHERE task_id = ?",
                                 (task_id,)).fetchone()
        if row is None:
            raise KeyError(task_id)
        finished_at, expired_at, record = row
        if expired_at is not None:
            raise TaskExpired(task_id, finished_at, expired_at)
        return json.loads(record)

    def exit_record(self, task_id: str) -> dict[str, Any] | None:
        """The task's exit.json as it was archived, or None (unknown, or expired)."""
        try:
            return self.record(task_id).get("exit")
        except KeyError:
            return None

    def log_places(self, task_id: str) -> dict[str, ArchivedLog]:
        return {name: ArchivedLog(*place) for name, place in self.record(task_id).get("logs", {}).items()}

    def read_log(self, task_id: str, name: str, offset: int = 0, limit: int | None = None) -> bytes:
        """Bytes of one archived log from ``offset`` (of the log as archived): as a file read would give."""
        place = self.log_places(task_id).get(name)
        if place is None:
            return b""
        offset = max(0, offset)
        length = place.length - offset if limit is None else min(limit, place.length - offset)
        if length <= 0:
            return b""
        row = self._db().execute("SELECT substr(logs, ?, ?) FROM archived_tasks WHERE task_id = ?",
                                 (place.start + offset + 1, length, task_id)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""

    def counts(self) -> tuple[int, int]:
        """(archived tasks with logs, expired tombstones)."""
        row = self._db().execute("SELECT count(*) - count(expired_at), count(expired_at) FROM archived_tasks").fetchone()
        return int(row[0]), int(row[1])
