"""Retention: finished task directories folded into the archive, expired, and never a live one touched."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pai_hub.backends.archive import TaskExpired
from pai_hub.backends.base import TaskExit, TaskLaunch
from pai_hub.backends.local import LocalBackend
from pai_hub.backends.retention import RetentionPolicy, SweepResult
from pai_hub.retention import Retention
from pai_runtime.accounts import Account
from pai_runtime.spec import TaskPeer, TaskRoleInfo, TaskSpec
from tests.accounts import isolated_account
from tests.backends.test_local import exits

pytestmark = pytest.mark.timeout(60)

# Bytes no text decoder would keep as they are, and enough of them to cross block boundaries.
NOISY = r"printf '\xff\x00\xfe head\n'; seq 1 2000; printf 'err \x80\n' >&2; printf 'no newline'"


def launch(task_id: str, command: str) -> TaskLaunch:
    spec = TaskSpec(
        task_id=task_id, task_uid=f"uid-{task_id}", framework_name="alice~job", username="alice",
        job_name="job", virtual_cluster="default", task_role="worker", task_index=0, job_attempt_id=0,
        task_attempt_id=0, command=command, gpus=[], work_dir="", log_dir="",
        task_roles={"worker": TaskRoleInfo(instances=1, cpu=1, memory_mb=512, gpu=0)},
        peers=[TaskPeer("worker", 0, None)], secrets={"token": "s3cret"},
    )
    return TaskLaunch(task_id=task_id, node="local", gpus=(), spec=spec.to_json_dict())


async def run_to_exit(backend: LocalBackend, launches: list[TaskLaunch], timeout: float = 30.0) -> dict[str, TaskExit]:
    for x in launches:
        await backend.start(x)
    return await exits(backend, {x.task_id for x in launches}, timeout)


def files_under(path: Path) -> int:
    return sum(len(files) + len(dirs) for _, dirs, files in os.walk(path))


def disk_bytes(path: Path) -> int:
    """Blocks actually allocated (what ``du`` reports), files and directories."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def all_logs(backend: LocalBackend, task_id: str) -> dict[str, bytes]:
    return {name: backend.read_log(task_id, name) for name in backend.log_names(task_id)}


async def sweep(backend: LocalBackend, policy: RetentionPolicy, needed_jobs: set[int] | None = None,
                later: float = 1.0) -> SweepResult:
    """One sweep as if ``later`` seconds had passed (no waiting for a policy's delay)."""
    retention = Retention(backend, policy, lambda: needed_jobs or set())
    try:
        return await retention.sweep_once(now=time.time() + later)
    finally:
        await retention.close()


def test_compaction_folds_files_and_keeps_logs_byte_exact(tmp_path: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(tmp_path / "run")
        await backend.open()
        try:
            got = await run_to_exit(backend, [launch("1.0.worker.0.0", NOISY), launch("2.0.worker.0.0", "exit 3")])
            before = {tid: all_logs(backend, tid) for tid in got}
            assert before["1.0.worker.0.0"]["stdout"].startswith(b"\xff\x00\xfe head\n1\n")
            files_before = files_under(backend.tasks_dir)
            result = await sweep(backend, RetentionPolicy(compact_after=0))
        finally:
            await backend.close()
        assert result.compacted == 2 and not result.errors
        assert files_before >= 14 and files_under(backend.tasks_dir) == 0  # every file folded
        for tid, logs in before.items():
            assert set(backend.log_names(tid)) == {"stdout", "stderr", "all", "runtime.log"}
            assert all_logs(backend, tid) == logs  # byte-exact
        stdout = before["1.0.worker.0.0"]["stdout"]
        for offset, limit in [(0, 5), (3, None), (1000, 100), (len(stdout) - 4, None), (len(stdout), None),
                              (len(stdout) + 50, None)]:
            expected = stdout[offset:] if limit is None else stdout[offset:offset + limit]
            assert backend.read_log("1.0.worker.0.0", "stdout", offset, limit) == expected
        archive = backend.archive()
        assert archive is not None
        record = archive.record("2.0.worker.0.0")
        assert record["exit"]["exitCode"] == 3
        assert record["spec"]["task_id"] == "2.0.worker.0.0"
        assert "secrets" not in record["spec"] and "s3cret" not in str(record)  # secrets are not archived
        assert "pid.json" in record["files"]
        assert oct(os.stat(backend.archive_path).st_mode & 0o777) == "0o600"

    asyncio.run(main())


def test_live_debug_reserved_and_recent_tasks_are_untouched(tmp_path: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(tmp_path / "run")
        await backend.open()
        try:
            await run_to_exit(backend, [launch("5.0.worker.0.0", "echo reserved; exit 1"),
                                        launch("6.0.worker.0.0", "echo held"), launch("7.0.worker.0.0", "echo old")])
            await backend.start(launch("8.0.worker.0.0", "sleep 30"))
            (backend.task_dir("6.0.worker.0.0") / "hold").touch()  # Slurm's debug hold marker
            policy = RetentionPolicy(compact_after=0)
            # job 5 is kept for debugging: the orchestrator still needs it
            result = await sweep(backend, policy, needed_jobs={5})
            assert result.compacted == 1  # only job 7
            assert not backend.task_dir("7.0.worker.0.0").exists()
            assert (backend.task_dir("5.0.worker.0.0") / "exit.json").exists()
            assert (backend.task_dir("6.0.worker.0.0") / "exit.json").exists()
            assert backend.task_dir("8.0.worker.0.0").is_dir()  # running: no exit.json, live in the backend
            # a task that ended less than compact_after ago waits for a later sweep
            result = await sweep(backend, RetentionPolicy(compact_after=3600))
            assert result.compacted == 0 and backend.task_dir("5.0.worker.0.0").is_dir()
            # the reservation released: the next sweep folds it
            result = await sweep(backend, policy)
            assert result.compacted == 1 and not backend.task_dir("5.0.worker.0.0").exists()
            assert backend.read_log("5.0.worker.0.0", "stdout") == b"reserved\n"
            assert backend.task_dir("8.0.worker.0.0").is_dir()
            await backend.stop("8.0.worker.0.0", grace=0.1)
        finally:
            await backend.close()

    asyncio.run(main())


def test_expiry_deletes_and_says_why(tmp_path: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(tmp_path / "run")
        await backend.open()
        try:
            await run_to_exit(backend, [launch("3.0.worker.0.0", "echo a"), launch("4.0.worker.0.0", "echo b")])
            await sweep(backend, RetentionPolicy(compact_after=0))  # 3 and 4 archived
            await run_to_exit(backend, [launch("9.0.worker.0.0", "echo c")])  # never compacted
            policy = RetentionPolicy(compact_after=-1, expire_after=7 * 86400)
            assert (await sweep(backend, policy)).expired == 0  # not old enough
            result = await sweep(backend, policy, later=8 * 86400)
        finally:
            await backend.close()
        assert result.expired == 3
        assert files_under(backend.tasks_dir) == 0
        archive = backend.archive()
        assert archive is not None and archive.counts() == (0, 3)
        for tid in ("3.0.worker.0.0", "9.0.worker.0.0"):
            with pytest.raises(TaskExpired) as err:
                backend.log_names(tid)
            assert "expired by the retention policy after 8 days" in str(err.value)
            with pytest.raises(KeyError):  # callers that know only KeyError still get one
                backend.read_log(tid, "stdout")
        with pytest.raises(KeyError):
            backend.log_names("10.0.worker.0.0")  # never existed: a plain KeyError

    asyncio.run(main())


def test_log_cap_keeps_head_and_tail(tmp_path: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(tmp_path / "run")
        await backend.open()
        try:
            await run_to_exit(backend, [launch("1.0.worker.0.0", "seq 1 100000")])
            full = backend.read_log("1.0.worker.0.0", "stdout")
            await sweep(backend, RetentionPolicy(compact_after=0, max_log_bytes=4096))
        finally:
            await backend.close()
        kept = backend.read_log("1.0.worker.0.0", "stdout")
        assert kept.startswith(full[:2048]) and kept.endswith(full[-2048:])
        assert f"[... {len(full) - 4096} bytes dropped by the retention policy ...]".encode() in kept
        archive = backend.archive()
        assert archive is not None
        place = archive.log_places("1.0.worker.0.0")["stdout"]
        assert place.truncated and place.original == len(full)

    asyncio.run(main())


def test_disk_per_finished_job_is_bounded(tmp_path: Path) -> None:
    jobs = 200

    async def main() -> tuple[int, int]:
        backend = LocalBackend(tmp_path / "run")
        await backend.open()
        try:
            await run_to_exit(backend, [launch(f"{i}.0.worker.0.0", "echo done") for i in range(1, jobs + 1)], 60)
            before = disk_bytes(backend.tasks_dir)
            await sweep(backend, RetentionPolicy(compact_after=0, batch=64))
            after = disk_bytes(backend.run_root)  # the archive, the socket, the launcher log included
        finally:
            await backend.close()
        return before, after

    before, after = asyncio.run(main())
    # each trivial job's directory: 7+ files and directories, a filesystem block each
    assert before / jobs >= 12_000
    # folded: its logs and records, about a kilobyte, plus the archive's fixed pages
    print(f"disk per job: {before / jobs:.0f} bytes before, {after / jobs:.0f} after compaction")
    assert after / jobs <= 2_500, f"{after / jobs:.0f} bytes per job after compaction"


# -- directories a task's account controls (Slurm with isolation: the whole task directory) ------------

SECRET = "ADMIN-TOKEN-must-never-be-archived"


@pytest.fixture(scope="module")
def account() -> Iterator[tuple[Account, Path]]:
    """A real Unix account and a base directory it may traverse (tests/accounts.py)."""
    with isolated_account("retention", "these tests play a task's account against the platform") as found:
        yield found


def as_account(acc: Account, cwd: Path, script: str) -> None:
    """Run ``script`` in bash as the account (what a task could do to its own directory)."""
    done = subprocess.run(["setpriv", f"--reuid={acc.uid}", f"--regid={acc.gid}", "--clear-groups", "--",
                           "/bin/bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def platform_files(base: Path) -> Path:
    """The platform's private directory: a secret token and a root file named like a log."""
    platform = base / "platform"
    platform.mkdir(mode=0o700)
    (platform / "admin-token").write_text(SECRET)
    (platform / "admin-token").chmod(0o600)
    (platform / "stdout").write_text(SECRET)
    (platform / "hub-secrets.json").write_text(json.dumps({"cookie_secret": SECRET, "finishedAt": 1}))
    return platform


def give_to(acc: Account, task_dir: Path) -> None:
    """The Slurm layout with isolation: the whole task directory is the account's, 0700."""
    for root, dirs, files in os.walk(task_dir):
        for name in dirs + files:
            os.chown(os.path.join(root, name), acc.uid, acc.gid, follow_symlinks=False)
    os.chown(task_dir, acc.uid, acc.gid)
    task_dir.chmod(0o700)


def archived_text(backend: LocalBackend) -> str:
    """Everything the archive holds (records and log blobs), as text."""
    db = sqlite3.connect(backend.archive_path)
    try:
        rows = db.execute("SELECT record, logs FROM archived_tasks").fetchall()
    finally:
        db.close()
    return "".join((r or "") + (bytes(b or b"").decode(errors="replace")) for r, b in rows)


def test_links_hard_links_and_fifos_a_user_leaves_are_never_archived_or_followed(
        account: tuple[Account, Path]) -> None:
    """The account replaces its logs with a symlink and (as root would find it where
    fs.protected_hardlinks is off) a hard link to the admin token, leaves a FIFO in place of a log
    (a plain open() blocks forever on it) and a link from work/ to a directory outside: the sweep
    archives none of the token, does not hang, and deletes nothing outside."""
    acc, base = account
    platform = platform_files(base)
    outside = base / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")

    async def main() -> tuple[SweepResult, str, dict[str, bytes], dict[str, Any]]:
        backend = LocalBackend(base / "run1")
        await backend.open()
        try:
            tid = "11.0.worker.0.0"
            await run_to_exit(backend, [launch(tid, "echo mine; echo err >&2")])
            task = backend.task_dir(tid)
            give_to(acc, task)
            token = platform / "admin-token"
            as_account(acc, task, f"ln -sf {token} runtime.log; ln -s {token} notes.txt; rm -f stdout; "
                                  f"mkfifo stdout; mkfifo pipe.txt; ln -s {outside} work/escape; "
                                  f"ln -s {platform / 'hub-secrets.json'} extra.json")
            os.unlink(task / "stderr")
            os.link(token, task / "stderr")  # a second link to the platform's file
            result = await asyncio.wait_for(sweep(backend, RetentionPolicy(compact_after=0)), 20)
            logs = {name: backend.read_log(tid, name) for name in ("stdout", "stderr", "all", "runtime.log")}
            archive = backend.archive()
            assert archive is not None
            return result, archived_text(backend), logs, archive.record(tid)
        finally:
            await backend.close()

    result, text, logs, record = asyncio.run(main())
    assert result.compacted == 1 and not result.errors, result
    assert SECRET not in text
    assert logs["all"] == b"mine\nerr\n"  # the root-owned log is archived as it was
    assert logs["stdout"] == logs["stderr"] == logs["runtime.log"] == b""
    assert set(record["files"]) <= {"pid.json", "claim"}, record["files"]
    assert (outside / "keep.txt").read_text() == "keep" and (platform / "admin-token").read_text() == SECRET
    assert not (base / "run1" / "tasks" / "11.0.worker.0.0").exists()


def test_a_log_dir_outside_the_task_dir_is_not_read(account: tuple[Account, Path]) -> None:
    """With the task directory its own, the account may rewrite spec.json: a log_dir pointing at the
    platform's directory (where a root file is named like a log) is refused, not archived."""
    acc, base = account
    platform = base / "platform2"
    platform.mkdir(mode=0o700)
    (platform / "stdout").write_text(SECRET)

    async def main() -> tuple[SweepResult, str, dict[str, Any]]:
        backend = LocalBackend(base / "run2")
        await backend.open()
        try:
            tid = "12.0.worker.0.0"
            await run_to_exit(backend, [launch(tid, "echo mine")])
            task = backend.task_dir(tid)
            spec = json.loads((task / "spec.json").read_text())
            give_to(acc, task)
            spec["log_dir"] = f"{task}/../../../platform2"
            as_account(acc, task, f"rm -f spec.json; printf '%s' {shlex.quote(json.dumps(spec))} > spec.json")
            result = await sweep(backend, RetentionPolicy(compact_after=0))
            archive = backend.archive()
            assert archive is not None
            return result, archived_text(backend), archive.record(tid)
        finally:
            await backend.close()

    result, text, record = asyncio.run(main())
    assert result.compacted == 1 and not result.errors, result
    assert SECRET not in text
    assert "is not inside the task directory" in record["logsRefused"]
    assert record["logs"] == {}


def test_job_directories_of_jobs_no_longer_held_are_removed(tmp_path: Path) -> None:
    """run/jobs/<md5> holds a job's ssh key pair: kept while the job is held, removed once it is not and
    the directory is older than compact_after, never through a link."""
    import hashlib

    from pai_hub.retention import prune_job_dirs

    jobs = tmp_path / "run" / "jobs"
    held, gone, fresh = (hashlib.md5(n.encode()).hexdigest() for n in ("alice~held", "alice~gone", "alice~new"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep-me").write_text("x")
    for name in (held, gone, fresh):
        (jobs / name / "ssh-key").mkdir(parents=True)
        (jobs / name / "ssh-key" / "id_rsa").write_text("PRIVATE")
    (jobs / gone / "link").symlink_to(outside)
    old = time.time() - 7200
    for name in (held, gone):
        os.utime(jobs / name, (old, old))
    removed = prune_job_dirs(str(tmp_path / "run"), {held}, time.time() - 3600)
    assert removed == 1
    assert sorted(p.name for p in jobs.iterdir()) == sorted([held, fresh])
    assert (outside / "keep-me").read_text() == "x"  # the link was removed, not followed
