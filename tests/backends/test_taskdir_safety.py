"""The shared task-directory code reads back and marks what a task's account may have touched without
following links (pai_hub/backends/safefiles.py): logs, exit records, the stop marker, the archive.

The local backend's own layout keeps the account from replacing these files (its task directory is
root's); these tests put the links there as root, the way any layout that gives the account the
directory (Slurm's) would let the account do, and check that the shared code holds on its own.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from pai_hub.backends.archive import TaskArchive
from pai_hub.backends.local import LocalBackend
from tests.backends.test_retention import launch, run_to_exit

pytestmark = pytest.mark.timeout(60)

SECRET = "PLATFORM-SECRET-never-served"


def _finished_task(tmp_path: Path, tid: str) -> tuple[LocalBackend, Path]:
    backend = LocalBackend(tmp_path / "run")

    async def main() -> None:
        await backend.open()
        try:
            await run_to_exit(backend, [launch(tid, "echo mine")])
        finally:
            await backend.close()

    asyncio.run(main())
    return backend, backend.task_dir(tid)


def test_read_log_and_the_exit_record_never_follow_a_link(tmp_path: Path) -> None:
    backend, task = _finished_task(tmp_path, "21.0.worker.0.0")
    secret = tmp_path / "admin-token"
    secret.write_text(SECRET)
    secret_json = tmp_path / "secrets.json"
    secret_json.write_text(json.dumps({"exitCode": 0, "cookie_secret": SECRET}))
    assert backend.read_log("21.0.worker.0.0", "stdout") == b"mine\n"
    (task / "stdout").unlink()
    (task / "stdout").symlink_to(secret)
    (task / "exit.json").unlink()
    (task / "exit.json").symlink_to(secret_json)
    os.mkfifo(task / "stderr")  # a plain open() for reading would block forever
    assert backend.read_log("21.0.worker.0.0", "stdout") == b""
    assert backend.read_log("21.0.worker.0.0", "stderr") == b""
    assert backend._exit_record("21.0.worker.0.0") is None


def test_the_stop_marker_is_never_made_through_a_link(tmp_path: Path) -> None:
    backend, task = _finished_task(tmp_path, "22.0.worker.0.0")
    target = tmp_path / "platform-file-created-by-a-link"
    (task / "stop").symlink_to(target)
    backend._mark_stopped(str(task))
    assert not target.exists()
    assert (task / "stop").is_file() and not (task / "stop").is_symlink()
    assert (task / "stop").stat().st_mode & 0o777 == 0o600


def test_the_archive_is_private_and_never_opened_through_a_link(tmp_path: Path) -> None:
    loose = tmp_path / "loose.sqlite"
    loose.touch(mode=0o644)
    loose.chmod(0o644)
    TaskArchive(loose).close()
    assert loose.stat().st_mode & 0o777 == 0o600
    fresh = tmp_path / "fresh.sqlite"
    archive = TaskArchive(fresh)
    archive.add_many([("1.0.w.0.0", 1.0, {"exit": {}}, {"stdout": b"x"})])
    archive.close()
    for path in tmp_path.glob("fresh.sqlite*"):
        assert path.stat().st_mode & 0o077 == 0, path
    elsewhere = tmp_path / "elsewhere.sqlite"
    elsewhere.touch(mode=0o600)
    link = tmp_path / "link.sqlite"
    link.symlink_to(elsewhere)
    with pytest.raises(PermissionError, match="is a link"):
        TaskArchive(link)
    assert elsewhere.stat().st_size == 0
