"""A real Unix account for tests that play a task's account against the platform (isolation)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pai_runtime import accounts
from pai_runtime.accounts import Account, ensure_account
from pai_runtime.isolation import IsolationPolicy
from tests.requirements import require_tool


@contextmanager
def isolated_account(prefix: str, why: str) -> Iterator[tuple[Account, Path]]:
    """A fresh ``pait-*`` account (uids 47000-47999, never a real user's) and a base directory it may
    traverse (0711, its home below it); both removed afterwards. ``why``: what needs root, for the
    failure message."""
    if os.geteuid() != 0:
        pytest.fail(f"{why}: it needs root", pytrace=False)
    require_tool("setpriv", "apt-get install util-linux")
    require_tool("useradd", "apt-get install passwd")
    base = Path(tempfile.mkdtemp(prefix=f"pai-{prefix}-", dir="/tmp"))
    base.chmod(0o711)
    (base / "home").mkdir(mode=0o755)
    policy = IsolationPolicy(mode="users", account_template="pait-{username}", uid_min=47000, uid_max=47999,
                             home_root=str(base / "home"))
    acc = ensure_account(policy, f"{prefix[0]}{os.getpid()}")
    try:
        yield acc, base
    finally:
        subprocess.run(["userdel", acc.name], capture_output=True)
        subprocess.run(["groupdel", acc.name], capture_output=True)
        accounts._cache.clear()
        shutil.rmtree(base, ignore_errors=True)
