"""Why the job store refuses writes, in words an operator (and a client told 503) can act on.

SQLite reports a full disk, a file-size limit and an unwritable file each in a few words ("database
or disk is full", "disk I/O error", "attempt to write a readonly database"), and a lock held by
another process only after its busy timeout. The loop (:mod:`.loop`) answers callers with the cause
of the outage it is retrying through; this module turns an exception into that cause, adding what the
process itself can see (free space beside the database, ``RLIMIT_FSIZE``, the file's mode), and probes
a SQLite database whose commit has not returned yet without waiting on its lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import sqlite3
from pathlib import Path

from sqlalchemy import make_url

#: What every 503 of a store outage starts with: the client's next step.
RETRY = "storage unavailable, retry"
#: Free space below which a failed write is put down to a full disk.
_LOW_SPACE = 1 << 20
#: ``FS_IOC_GETFLAGS`` and its immutable and append-only flags (``chattr +i``, ``+a``).
_GETFLAGS, _IMMUTABLE, _APPEND_ONLY = 0x80086601, 0x10, 0x20


class StoreNotWritable(OSError):
    """The database cannot be written at start-up: the service refuses to start, saying why (an
    ``OSError``, so that ``pai server`` prints it as one line and exits 1)."""


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def describe(exc: BaseException, url: str | None = None) -> str:
    """One line naming the cause of a failed store call: the database's own words, then what this
    process can see about them (never the statement or its parameters, which hold users' data)."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    path = sqlite_path(url) if url else None
    hint = _hint(text.lower(), path)
    return f"{text} ({hint})" if hint else text


def _hint(text: str, path: Path | None) -> str | None:
    if "locked" in text or "busy" in text:
        return "another process holds a lock on the database"
    if "full" in text or "no space" in text:
        return _space(path) or "no space left for the database"
    if "readonly" in text or "read-only" in text or "permission" in text:
        return _writable(path) or "the database file or its directory cannot be written"
    if "i/o error" in text:
        return _space(path) or _writable(path)
    return None


def _space(path: Path | None) -> str | None:
    """No space: the file-size limit of this process, or a full file system beside ``path``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        return f"no space: this process may write files only up to {soft} bytes (RLIMIT_FSIZE)"
    if path is not None:
        with contextlib.suppress(OSError):
            st = os.statvfs(path.parent)
            if st.f_bavail * st.f_frsize < _LOW_SPACE:
                return f"no space left on the file system of {path.parent}"
    return None


def _writable(path: Path | None) -> str | None:
    """Why the database file, its WAL files or its directory refuse writes (a read-only mount, an
    immutable flag, the mode), or None when nothing this process can see does."""
    if path is None:
        return None
    for target in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"), path.parent):
        found = _refusal(target)
        if found:
            return found
    return None


def _refusal(target: Path) -> str | None:
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{target} cannot be opened: {exc.strerror}"
    try:
        if os.fstatvfs(fd).f_flag & os.ST_RDONLY:
            return f"{target} is on a read-only file system"
        with contextlib.suppress(OSError):
            flags = int.from_bytes(fcntl.ioctl(fd, _GETFLAGS, bytes(8))[:4], "little")
            if flags & _IMMUTABLE:
                return f"{target} is immutable (chattr -i allows writes again)"
            if flags & _APPEND_ONLY:
                return f"{target} is append-only (chattr -a allows writes again)"
    finally:
        os.close(fd)
    if not os.access(target, os.W_OK):
        return f"{target} is not writable by this process (mode {target.stat().st_mode & 0o7777:o})"
    return None


def check_writable(url: str, timeout: float = 10.0) -> None:
    """Refuse to start on a SQLite database that cannot be written (:class:`StoreNotWritable`, naming
    the file and the cause): a control plane that cannot store what it decides can do nothing, and
    a clear line at start-up beats a traceback from the first write. A lock is waited out for up to
    ``timeout`` seconds. A database that does not exist yet is left to the migrations to create."""
    path = sqlite_path(url)
    if path is None or not path.exists():
        return
    problem = _writable(path)
    if problem is None:
        try:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                conn.execute(f"PRAGMA user_version = {version}")  # a real write, of what is there
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            problem = describe(exc, url)
    if problem is not None:
        raise StoreNotWritable(f"the database {path} cannot be written: {problem}")


def probe(url: str) -> str | None:
    """Why a write to the SQLite database at ``url`` would not go through right now, without waiting
    on its lock: the cause, or None when it would (or for another kind of database). Run off the
    event loop: it opens the file."""
    path = sqlite_path(url)
    if path is None:
        return None
    try:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    except sqlite3.Error as exc:
        return describe(exc, url)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        return describe(exc, url)
    finally:
        conn.close()
    return None
