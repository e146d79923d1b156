"""Small /proc helpers shared by the supervisor and the backends (pid-reuse-safe liveness)."""

from __future__ import annotations

import os


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat), or None.

    A (pid, start time) pair names one process for the life of the machine: a recycled pid has a
    different start time.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        fields = data[data.rindex(b")") + 2:].split()
        if fields[0] == b"Z":  # a zombie has finished: it is not "alive"
            return None
        return int(fields[19])
    except (ValueError, IndexError):
        return None


def is_alive(pid: int | None, start_time: int | None) -> bool:
    """True if the process ``pid`` exists, is not a zombie, and started at ``start_time``."""
    if not pid or start_time is None:
        return False
    return proc_start_time(pid) == start_time


def has_environ(pid: int | None, key: str, value: str) -> bool:
    """True if process ``pid`` was started with ``key=value`` in its environment: a pid-reuse-safe
    identity for a task (its ``FC_POD_UID`` is unique), read only when needed."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{key}={value}".encode() in f.read().split(b"\0")
    except OSError:
        return False


def kill_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False if it no longer exists (or may not be signalled)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
