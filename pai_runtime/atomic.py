"""Whole-file writes that readers (and a crash) see entirely or not at all — the one implementation.

The task directory's records (``exit.json``, ``spec.json``, Slurm's ``slurm.json``), the hub's saved
``cluster.yaml`` and every other file that is replaced as a whole go through :func:`write_atomic`:
write a temporary file in the same directory, flush it, ``os.replace`` it over the target (atomic on
POSIX), and make both durable with ``fsync`` (the file before the rename, the directory after it), so
that after a power loss the target holds the old content or the new one, never an empty file.

``durable=False`` keeps the atomic rename but skips both fsyncs. It is for records whose loss after a
power cut is already handled and which are written on a hot path: the launcher's ``exit.json`` (a task
whose record is missing after a reboot is reported lost and retried), where an fsync per task would
cost the launcher's single loop milliseconds for every task it ends.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644,
                 durable: bool = True) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8) so readers see the old or the new file only."""
    target = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(target))
    # A name of our own: concurrent writers (other processes, other hosts on a shared run root)
    # never write into each other's temporary file.
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        _fsync_dir(directory)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, mode: int = 0o644, durable: bool = True) -> None:
    """:func:`write_atomic` of ``obj`` as JSON."""
    write_atomic(path, json.dumps(obj), mode=mode, durable=durable)


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (some file systems refuse fsync on a directory)."""
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
