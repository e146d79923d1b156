"""The Unix account a PAI user's code runs as.

A PAI user name is free text to the REST API; a Unix account name is not. :func:`unix_account_name`
maps one to the other (an explicit mapping first, else the policy's template filled with a Unix-safe
form of the name), and :func:`ensure_account` finds the account, creating it on first use when the
policy allows (as JupyterHub's ``LocalAuthenticator.create_system_users`` does with ``useradd``).

Two PAI names never map to one account: when making a name Unix-safe changed anything, a short hash
of the original name is appended. Names a path could be built from (``''``, ``.``, ``..``, ``/``,
NUL) are refused outright, never mangled into something valid.

Accounts are created with ``groupadd``/``useradd`` under an inter-process lock (the control plane,
which opens debug shells, and the launcher may both create one at once); a passwd file locked by
someone else's ``useradd`` is retried. Results are cached per process.

This module imports nothing from ``pai_hub``: the launcher uses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import os
import pwd
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pai_runtime.isolation import IsolationPolicy

#: What ``useradd`` accepts everywhere (Debian's default NAME_REGEX is stricter than POSIX).
_UNIX_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_MAX_NAME = 32
_HASH_LEN = 8
#: What a hashed name ends with: a name that already does is hashed too, or "bob-cd9fb1e1" (kept as is)
#: would be the account of "Bob" (made safe, then hashed).
_HASHED_TAIL = re.compile(r"-[0-9a-f]{8}$")
#: useradd/groupadd exit codes that mean "try again": passwd/group file busy (1, 10) or the uid/gid
#: or name just taken by a concurrent creator (4, 9).
_RETRY_CODES = frozenset({1, 4, 9, 10})
_TRIES = 20
_LOCK_PATHS = ("/run/lock/pai-accounts.lock", "/tmp/pai-accounts.lock")


class AccountError(Exception):
    """The PAI user has no Unix account to run as; the message says why."""


@dataclass(frozen=True)
class Account:
    """A Unix account: who user code runs as."""

    name: str
    uid: int
    gid: int
    home: str


def _check_pai_name(pai_username: str) -> None:
    if not isinstance(pai_username, str) or pai_username in ("", ".", ".."):
        raise AccountError(f"invalid PAI user name {pai_username!r}")
    if "/" in pai_username or "\0" in pai_username:
        raise AccountError(f"invalid PAI user name {pai_username!r}: contains '/' or NUL")


def unix_account_name(policy: IsolationPolicy, pai_username: str) -> str:
    """The Unix account name of ``pai_username`` under ``policy`` (see module docstring)."""
    _check_pai_name(pai_username)
    mapped = policy.accounts.get(pai_username)
    if mapped is not None:
        return mapped
    template = policy.account_template
    if "{username}" not in template:
        raise AccountError(f"account template {template!r} has no {{username}}")
    safe = _UNSAFE.sub("-", pai_username.lower())
    name = template.format(username=safe)
    if (name == template.format(username=pai_username) and _UNIX_NAME.fullmatch(name)
            and not _HASHED_TAIL.search(pai_username)):
        return name
    # Changed (case, characters, length, leading character): make it unique with a hash.
    digest = hashlib.sha256(pai_username.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    fixed = template.format(username="")
    room = _MAX_NAME - len(fixed) - _HASH_LEN - 1
    if room < 1:
        raise AccountError(f"account template {template!r} leaves no room for a user name")
    safe = safe.strip("-")
    name = template.format(username=f"{safe[:room]}-{digest}")
    if not name[:1].isalpha():  # the template starts with the name, and the name with no letter
        name = template.format(username=f"u{safe[:room - 1]}-{digest}")
    if not _UNIX_NAME.fullmatch(name):
        raise AccountError(f"account template {template!r} gives an invalid Unix name {name!r}")
    return name


_cache: dict[tuple[str, str], Account] = {}
_cache_lock = threading.Lock()


def _from_pwd(entry: pwd.struct_passwd) -> Account:
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def ensure_account(policy: IsolationPolicy, pai_username: str) -> Account:
    """The account ``pai_username``'s code runs as; created when missing and the policy allows."""
    name = unix_account_name(policy, pai_username)
    key = (name, policy.home_root)
    with _cache_lock:
        cached = _cache.get(key)
        account = _lookup(name)
        if cached is not None and account == cached:  # still that account: not retired and re-made since
            return cached
        if account is None:
            if pai_username in policy.accounts:
                raise AccountError(f"PAI user {pai_username!r} is mapped to Unix account {name!r}, "
                                   "which does not exist")
            if not policy.create_accounts:
                raise AccountError(f"no Unix account {name!r} for PAI user {pai_username!r} "
                                   "(creating accounts is turned off)")
            account = _create(policy, name)
        if account.uid == 0:
            raise AccountError(f"Unix account {name!r} of PAI user {pai_username!r} is root")
        _cache[key] = account
        return account


def retire_account(policy: IsolationPolicy, pai_username: str) -> str | None:
    """When a PAI user is removed, take their account out of reach of a new user of the same name:
    its processes are killed, it is locked and expired, and it and its home are renamed (the home to
    ``<home_root>/<new name>``), so the next user called so gets a fresh account with a new uid and an
    empty home, and files left with the old uid stay the retired account's. Accounts mapped by the
    admin (``policy.accounts``) are theirs to manage: left alone. Returns the retired name, or None."""
    if pai_username in policy.accounts:
        return None
    name = unix_account_name(policy, pai_username)
    with _creation_lock():
        account = _lookup(name)
        if account is None or account.uid == 0:
            return None
        digest = hashlib.sha256(f"retired:{name}:{account.uid}:{time.time_ns()}".encode()).hexdigest()
        retired = f"{name[:_MAX_NAME - _HASH_LEN - 1]}-{digest[:_HASH_LEN]}"
        _run(["pkill", "-KILL", "-U", str(account.uid)])
        argv = ["usermod", "--lock", "--expiredate", "1", "--login", retired]
        if os.path.isdir(account.home) and os.path.dirname(account.home.rstrip("/")) == policy.home_root.rstrip("/"):
            argv += ["--home", os.path.join(policy.home_root, retired), "--move-home"]
        code, out = _run([*argv, name])
        if code != 0:
            raise AccountError(f"usermod {name} failed ({code}): {out}")
        if _group_gid(name) == account.gid:
            _run(["groupmod", "--new-name", retired, name])
    with _cache_lock:
        _cache.pop((name, policy.home_root), None)
    return retired


def platform_account() -> Account:
    """The account the platform itself runs as."""
    uid = os.geteuid()
    try:
        return _from_pwd(pwd.getpwuid(uid))
    except KeyError:
        return Account(str(uid), uid, os.getegid(), os.environ.get("HOME", "/"))


def _lookup(name: str) -> Account | None:
    try:
        return _from_pwd(pwd.getpwnam(name))
    except KeyError:
        return None


@contextlib.contextmanager
def _creation_lock() -> Iterator[None]:
    """Serialise account creation across processes (best effort when no lock file can be made)."""
    for path in _LOCK_PATHS:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
        return
    yield


def _free_id(policy: IsolationPolicy) -> int:
    """The lowest id in the policy's range used neither as a uid nor as a gid."""
    used = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    for candidate in range(policy.uid_min, policy.uid_max + 1):
        if candidate not in used:
            return candidate
    raise AccountError(f"no free uid left in {policy.uid_min}-{policy.uid_max}")


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise AccountError(f"cannot create Unix accounts: `{argv[0]}` is not installed") from None
    return done.returncode, (done.stderr or done.stdout).strip()


def _create(policy: IsolationPolicy, name: str) -> Account:
    """Create ``name`` with its own group (gid = uid) and a 0700 home under ``policy.home_root``."""
    if os.geteuid() != 0:
        raise AccountError(f"no Unix account {name!r}, and only root may create one")
    home = os.path.join(policy.home_root, name)
    last = ""
    with _creation_lock():
        for attempt in range(_TRIES):
            account = _lookup(name)  # a concurrent creator without our lock may have made it
            if account is not None:
                break
            uid = _free_id(policy)
            group = _group_gid(name)
            if group is None:
                code, last = _run(["groupadd", "-g", str(uid), name])
                if code not in (0, *_RETRY_CODES):
                    raise AccountError(f"groupadd {name} failed ({code}): {last}")
                group = _group_gid(name)
                if group is None:
                    time.sleep(0.05 * (attempt + 1))
                    continue
            code, last = _run(["useradd", "-u", str(group if _uid_free(group) else uid), "-g", str(group),
                               "-M", "-d", home, "-s", "/bin/bash", "-c", "PAI user", name])
            if code not in (0, *_RETRY_CODES):
                raise AccountError(f"useradd {name} failed ({code}): {last}")
            account = _lookup(name)
            if account is not None:
                break
            time.sleep(0.05 * (attempt + 1))
        else:
            raise AccountError(f"could not create Unix account {name!r} after {_TRIES} tries: {last}")
    _make_home(account)
    return account


def _group_gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _uid_free(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return True
    return False


def _make_home(account: Account) -> None:
    """The home exists, belongs to the account and is closed to others (0700)."""
    try:
        os.makedirs(os.path.dirname(account.home) or "/", 0o755, exist_ok=True)
        try:
            os.mkdir(account.home, 0o700)
        except FileExistsError:
            pass
        st = os.stat(account.home)
        if (st.st_uid, st.st_gid) != (account.uid, account.gid):
            os.chown(account.home, account.uid, account.gid)
        os.chmod(account.home, 0o700)
    except OSError as exc:
        raise AccountError(f"cannot make the home {account.home} of {account.name!r}: {exc}") from exc
