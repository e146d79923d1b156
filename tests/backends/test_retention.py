"""Retention: finished task directories folded into the archive, expired, and never a live one touched."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from pai_hub.backends.archive import TaskExpired
from pai_hub.backends.base import TaskExit, TaskLaunch
from pai_hub.backends.local import LocalBackend
from pai_hub.backends.retention import RetentionPolicy, SweepResult
from pai_hub.retention import Retention
from pai_runtime.spec import TaskPeer, TaskRoleInfo, TaskSpec
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
