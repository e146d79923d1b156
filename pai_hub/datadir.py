"""The platform's data directory is private: created so, and checked before anything in it is used.

The data directory holds what would let a user act as the admin or as another user: the database
(tokens' hashes, jobs' secrets), ``admin-token``, the hub's secrets (``hub/``: its cookie secret, the
PAI service's hub token, the first admin's password), ``pai_config.py`` (code the server runs),
``cluster.yaml`` and the experiments' files. Users' tasks run as other Unix accounts (issue 16), so
these files must be closed to every account but the platform's own:

- the server runs with umask ``0o077``, so whatever it creates later (SQLite's WAL files, logs,
  archives) is born private;
- the data directory is created ``0700`` (``0711`` when tasks run as other accounts: they traverse
  ``<data>/run/tasks/<task>`` to reach their own task directory, never list anything);
- at start-up, before ``pai_config.py`` is read, the directory and its files are checked: owned by
  the platform's uid and neither readable nor writable by group or others. Anything else stops the
  server with one message naming every offending path, its mode and the command that fixes it. A
  server refuses rather than repairs: a readable file may already have been read, and the admin
  should know (rotate the tokens). The one repair is an *empty* data directory (made by the
  admin's ``mkdir`` with the default umask): nothing in it can have leaked.

What users' tasks own (``run/tasks/<task>/``) is not checked here: the backend gives each task
directory to its user.
"""

from __future__ import annotations

import logging
import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("pai_hub")

#: The process umask of the server: nothing it creates is readable by group or others.
UMASK = 0o077
#: Directories tasks running as other accounts must traverse (execute bit only) to reach their own
#: task directory: relative to the data directory.
TRAVERSED = (Path("."), Path("run"), Path("run") / "tasks")
#: Directories whose entries are checked one level deep (besides the data directory's own entries).
CHECKED_DIRS = ("hub", "run")


@dataclass(frozen=True)
class Problem:
    """One path that others can read or write, or that the platform does not own."""

    path: Path
    mode: int
    owner: int
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"  {self.path} (mode {stat.filemode(self.mode)} {self.mode & 0o7777:04o}, " \
               f"uid {self.owner}): {self.reason}; fix: {self.fix}"


class DataDirError(SystemExit):
    """The data directory is not private: the server refuses to start (the message says how to fix it)."""


def private_umask() -> None:
    """Make everything this process creates from now on private to the platform's user."""
    os.umask(UMASK)


def prepare(data_dir: Path | str, traversable: bool = False) -> Path:
    """Create ``data_dir`` private (or check it is), set the private umask; return the path.

    ``traversable``: tasks run as other Unix accounts and must reach their task directories, so the
    data directory and ``run/`` get the execute bit for others (``0711``) — never read or write.
    Raises :class:`DataDirError` naming every path others can read or write.
    """
    private_umask()
    data = Path(data_dir).expanduser().absolute()
    dir_mode = 0o711 if traversable else 0o700
    if not data.exists():
        data.mkdir(parents=True, mode=0o700)
        os.chmod(data, dir_mode)  # mkdir's mode is filtered by the umask; say it exactly
    elif data.is_dir() and not any(data.iterdir()) and _owned(data) and stat.S_IMODE(data.stat().st_mode) & 0o066:
        log.info("data directory %s was empty and readable by others (mode %04o): made it %04o",
                 data, stat.S_IMODE(data.stat().st_mode), dir_mode)
        os.chmod(data, dir_mode)
    problems = check(data)
    if problems:
        raise DataDirError(refusal(data, problems))
    if traversable:
        for rel in TRAVERSED[:2]:  # the data directory and run/ (run/tasks is the backend's)
            path = data / rel
            path.mkdir(mode=0o700, exist_ok=True)
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) | 0o711)
    return data


def check(data: Path) -> list[Problem]:
    """Every path of the platform's under ``data`` that others can read or write, or that another
    uid owns: the data directory, its entries, and the entries of ``hub/`` and ``run/``."""
    uid = os.geteuid()
    paths = [data]
    if data.is_dir():
        for entry in sorted(data.iterdir()):
            paths.append(entry)
            if entry.name in CHECKED_DIRS and entry.is_dir() and not entry.is_symlink():
                paths += sorted(entry.iterdir())  # run/tasks itself, not the tasks (their users' own)
    traversed = {data / rel for rel in TRAVERSED}
    problems = []
    for path in dict.fromkeys(paths):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # a file that went away meanwhile (a WAL file, a socket)
        problem = _problem(path, st, uid, path in traversed)
        if problem is not None:
            problems.append(problem)
    return problems


def _problem(path: Path, st: os.stat_result, uid: int, traversed: bool) -> Problem | None:
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != uid:
        return Problem(path, st.st_mode, st.st_uid, f"owned by uid {st.st_uid}, not by the platform's uid {uid}",
                       f"chown {uid} {_q(path)}")
    allowed = 0o011 if traversed and stat.S_ISDIR(st.st_mode) else 0
    loose = mode & 0o077 & ~allowed
    if loose:
        return Problem(path, st.st_mode, st.st_uid, _who_may(loose),
                       f"chmod go-rwx {_q(path)}" + (f" && chmod go+x {_q(path)}" if allowed else ""))
    return None


def refusal(data: Path, problems: list[Problem]) -> str:
    """The message the server stops with: what is wrong, where, and the commands that fix it."""
    lines = [f"pai-hub: refusing to start: the data directory {data} is not private to this server's user "
             f"(uid {os.geteuid()}). It holds the database, tokens and the hub's secrets; users' tasks must not "
             "read them. Fix each path, then rotate any token another account may have read:"]
    lines += [str(p) for p in problems]
    return "\n".join(lines)


def _who_may(bits: int) -> str:
    """``0o044`` → 'group may read, others may read'."""
    parts = []
    for who, shift in (("group", 3), ("others", 0)):
        verbs = [verb for verb, bit in (("read", 4), ("write", 2), ("enter", 1)) if bits >> shift & bit]
        if verbs:
            parts.append(f"{who} may {'/'.join(verbs)}")
    return ", ".join(parts)


def _owned(path: Path) -> bool:
    return path.stat().st_uid == os.geteuid()


def _q(path: Path) -> str:
    return shlex.quote(str(path))
