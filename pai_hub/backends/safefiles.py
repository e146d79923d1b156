"""Reading and deleting, as the platform's user, files that a task's account may have touched.

With an isolation policy that switches users, parts of a task directory belong to the task's
account: on the local backend ``runtime.log`` and ``work/``, on Slurm the whole directory. The
account may put a symlink, a hard link or a FIFO where the platform expects a log or a JSON record.
Read as root with a plain ``open()``, a ``runtime.log`` that is a symlink to the admin token would
be archived and served as the user's log; a FIFO would hang the reader forever.

So every read here:

* opens each path component with ``O_NOFOLLOW`` (directories with ``O_DIRECTORY``), relative to a
  directory descriptor: no symlink is followed anywhere below the task directory, and a path that
  leaves it (``..``, an absolute ``log_dir`` elsewhere) is refused;
* opens files with ``O_NONBLOCK`` and keeps only regular files (a FIFO or a socket reads as missing);
* keeps a file only when :func:`trusted`: its directory is the platform's and closed to others (only
  the platform could have put it there), or the file belongs to the directory's owner (the task's
  account, in a directory the backend gave it), or it is the platform's with a single link (a hard
  link to one of the platform's files, where ``fs.protected_hardlinks`` is off, has two).

Deleting a directory a user controls never follows a link either: :func:`remove_tree` is
``shutil.rmtree``'s descriptor-based walk, and refuses to run where the platform lacks it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from typing import IO, Any

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: What a refused or absent path raises: all read as "no such file".
_ABSENT = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.ENXIO)
#: JSON records larger than this are not read (a user-written spec.json cannot fill memory).
JSON_LIMIT = 64 << 20


def open_dir(path: str, dir_fd: int | None = None) -> int | None:
    """A descriptor of the directory ``path`` (its last component not a symlink), or None."""
    try:
        return os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise


def relative_beneath(root: str, path: str) -> str | None:
    """``path`` relative to ``root`` when it is ``root`` or lies beneath it (lexically), else None."""
    root = os.path.normpath(root)
    path = os.path.normpath(path)
    if path == root:
        return "."
    if not path.startswith(root.rstrip("/") + "/"):
        return None
    return path[len(root.rstrip("/")) + 1:]


def open_dir_beneath(root_fd: int, relative: str) -> int | None:
    """The directory ``relative`` below ``root_fd``, walked one component at a time without following
    a link; None when a component is missing, a link, or ``..``. The caller closes the result."""
    parts = [p for p in relative.split("/") if p and p != "."]
    if ".." in parts:
        return None
    fd = os.dup(root_fd)
    for part in parts:
        child = open_dir(part, dir_fd=fd)
        os.close(fd)
        if child is None:
            return None
        fd = child
    return fd


def trusted(file_st: os.stat_result, dir_st: os.stat_result, platform_uid: int | None = None) -> bool:
    """Whether a file found in a directory may be read back by the platform (see module docstring)."""
    me = os.geteuid() if platform_uid is None else platform_uid
    if dir_st.st_uid == me and not dir_st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return True
    if file_st.st_uid == me:
        return file_st.st_nlink == 1
    return file_st.st_uid == dir_st.st_uid


def open_file(dir_fd: int, name: str) -> IO[bytes] | None:
    """``name`` in the directory ``dir_fd``, opened for reading when it is a regular file that is not
    a link and is :func:`trusted`; None otherwise (or when it is missing)."""
    if "/" in name or name in ("", ".", ".."):
        return None
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not trusted(st, os.fstat(dir_fd)):
            os.close(fd)
            return None
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def open_path(path: str) -> IO[bytes] | None:
    """:func:`open_file` for a full path: its directory opened without following a last link."""
    parent, name = os.path.split(os.path.abspath(path))
    dir_fd = open_dir(parent)
    if dir_fd is None:
        return None
    try:
        return open_file(dir_fd, name)
    finally:
        os.close(dir_fd)


def read_json_file(f: IO[bytes] | None, limit: int = JSON_LIMIT) -> dict[str, Any] | None:
    """A JSON object from an opened file (closed here), or None if absent, too large or not one."""
    if f is None:
        return None
    with f:
        try:
            data = f.read(limit + 1)
            if len(data) > limit:
                return None
            value = json.loads(data)
        except (OSError, ValueError):
            return None
    return value if isinstance(value, dict) else None


def read_json_at(dir_fd: int, name: str) -> dict[str, Any] | None:
    """The JSON object in ``name`` under ``dir_fd`` (see :func:`open_file`), or None."""
    try:
        return read_json_file(open_file(dir_fd, name))
    except OSError:
        return None


def read_json_path(path: str) -> dict[str, Any] | None:
    """:func:`read_json_at` for a full path."""
    try:
        return read_json_file(open_path(path))
    except OSError:
        return None


def create_marker(dir_path: str, name: str) -> None:
    """Create the empty file ``name`` (mode 0600) in ``dir_path`` without following a link left in
    its place: a link is removed first (the platform's marker must really be there)."""
    dir_fd = open_dir(dir_path)
    if dir_fd is None:
        raise FileNotFoundError(errno.ENOENT, "no such directory", dir_path)
    try:
        for _ in range(2):
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             0o600, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENXIO):
                    raise
                os.unlink(name, dir_fd=dir_fd)  # a link or a FIFO where the marker goes
                continue
            os.close(fd)
            return
        raise FileExistsError(errno.EEXIST, "marker replaced while it was being made", f"{dir_path}/{name}")
    finally:
        os.close(dir_fd)


def remove_tree(path: str) -> None:
    """Delete the directory ``path`` and everything in it without following any link (see module
    docstring); errors ignored, as a sweep retries what is left."""
    if not shutil.rmtree.avoids_symlink_attacks:
        raise RuntimeError("this platform's shutil.rmtree may follow symlinks: not deleting " + path)
    shutil.rmtree(path, ignore_errors=True)
