"""LocalBackend with real processes: environment, logs, exit codes, stop, survival and adoption."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pai_hub.backends.base import TaskExit, TaskLaunch, TaskRunning
from pai_hub.backends.local import LocalBackend, discover_gpus
from pai_runtime.exitcodes import EXIT_TASK_LOST
from pai_runtime.spec import TaskPeer, TaskRoleInfo, TaskSpec
from tests.terminal import terminal_output
from tests.waiting import wait_for, wait_for_async

pytestmark = pytest.mark.timeout(60)


def make_spec(task_id: str, command: str, *, gpus: tuple[int, ...] = (), **extra) -> dict:
    spec = TaskSpec(
        task_id=task_id, task_uid=f"uid-{task_id}", framework_name="alice~job1", username="alice",
        job_name="job1", virtual_cluster="default", task_role="train_er", task_index=0,
        job_attempt_id=0, task_attempt_id=0, command=command, gpus=list(gpus), work_dir="", log_dir="",
        task_roles={"train_er": TaskRoleInfo(instances=1, cpu=1, memory_mb=512, gpu=len(gpus),
                                             ports={"http": 1, "ssh": 1})},
        peers=[TaskPeer("train_er", 0, None)],
    )
    data = spec.to_json_dict()
    data.update(extra)
    return data


def launch(task_id: str, command: str, gpus: tuple[int, ...] = (), **extra) -> TaskLaunch:
    return TaskLaunch(task_id=task_id, node="local", gpus=gpus,
                      spec=make_spec(task_id, command, gpus=gpus, **extra))


async def exits(backend: LocalBackend, ids: set[str], timeout: float = 15.0) -> dict[str, TaskExit]:
    """Consume events until every id in ``ids`` has exited."""
    got: dict[str, TaskExit] = {}

    async def consume() -> None:
        async for event in backend.events():
            if isinstance(event, TaskExit) and event.task_id in ids:
                got[event.task_id] = event
                if len(got) == len(ids):
                    return

    await asyncio.wait_for(consume(), timeout)
    return got


def run(coro):
    return asyncio.run(coro)


def test_env_logs_cwd_and_exit_codes(tmp_path: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(tmp_path / "run", simulated_gpus=4)
        await backend.open()
        try:
            await backend.start(launch(
                "ok", 'echo out; echo err >&2; env > env.txt; pwd > cwd.txt; echo "$CUDA_VISIBLE_DEVICES"',
                gpus=(1, 3), env={"MY_VAR": "x", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}))
            await backend.start(launch("nogpu", 'printf "[%s]" "$CUDA_VISIBLE_DEVICES"; exit 3'))
            got = await exits(backend, {"ok", "nogpu"})
        finally:
            await backend.close()
        assert got["ok"].exit_code == 0
        assert got["ok"].started_at is not None and got["ok"].finished_at >= got["ok"].started_at
        assert got["nogpu"].exit_code == 3
        task_dir = backend.task_dir("ok")
        work = task_dir / "work"
        assert (work / "cwd.txt").read_text().strip() == str(work)
        env = dict(line.split("=", 1) for line in (work / "env.txt").read_text().splitlines() if "=" in line)
        assert env["CUDA_VISIBLE_DEVICES"] == "1,3"  # the job's env cannot widen the mask
        assert env["MY_VAR"] == "x"
        assert env["PAI_JOB_NAME"] == "alice~job1"
        assert env["PAI_CURRENT_TASK_ROLE_NAME"] == "train_er"
        assert env["PAI_TASK_ROLE_TASK_COUNT_train_er"] == "1"
        assert env["PAI_RESOURCE_train_er"] == "2,1,512,0"
        assert env["PAI_HOST_IP_trainer_0"] == "127.0.0.1"
        assert env["PAI_CONTAINER_SSH_PORT"].isdigit()
        assert env["PAI_TASK_ROLE_trainer_HOST_LIST"] == f"127.0.0.1:{env['PAI_CURRENT_CONTAINER_PORT']}"
        assert env["PAI_WORK_DIR"] == str(work)
        assert env["FC_POD_UID"] == "uid-ok"
        assert "NVIDIA_VISIBLE_DEVICES" not in env
        assert "PYTEST_CURRENT_TEST" not in env  # control-plane environment is not inherited
        assert backend.read_log("ok", "stdout") == b"out\n1,3\n"
        assert backend.read_log("ok", "stderr") == b"err\n"
        assert sorted(backend.read_log("ok", "all").splitlines()) == [b"1,3", b"err", b"out"]
        assert backend.read_log("ok", "stdout", offset=4, limit=2) == b"1,"
        runtime_log = backend.read_log("ok", "runtime.log").decode()
        assert "[openpai-runtime] [INFO] USER COMMAND START" in runtime_log
        assert "[openpai-runtime] [INFO] USER COMMAND END" in runtime_log
        assert set(backend.log_names("ok")) == {"stdout", "stderr", "all", "runtime.log"}
        assert backend.read_log("nogpu", "stdout") == b"[]"
        assert oct((task_dir / "spec.json").stat().st_mode & 0o777) == "0o600"
        with pytest.raises(KeyError):
            backend.read_log("nope", "stdout")
        with pytest.raises(KeyError):
            backend.read_log("ok", "../spec.json")

    run(main())


def log_or_empty(backend: LocalBackend, task_id: str, name: str) -> bytes:
    try:
        return backend.read_log(task_id, name)
    except KeyError:  # not written yet
        return b""


def process_state(pid: int) -> str:
    """The state letter of ``/proc/<pid>/stat`` (``Z`` for a zombie), or ``gone``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except FileNotFoundError:
        return "gone"


def test_running_event_signal_death_and_stop(tmp_path: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(tmp_path / "run")
        await backend.open()
        try:
            await backend.start(launch("selfkill", "kill -KILL $$"))
            await backend.start(launch("sleeper", "sleep 30"))
            await backend.start(launch("stubborn", 'trap "echo got TERM" TERM; echo trapped; while true; do sleep 0.05; done'))
            first = await asyncio.wait_for(backend.events().__anext__(), 5)
            assert isinstance(first, TaskRunning) and first.task_id == "selfkill"
            await wait_for_async(lambda: b"trapped" in log_or_empty(backend, "stubborn", "stdout"), 10,
                                 "the stubborn task's TERM trap installed")
            t0 = time.monotonic()
            await backend.stop("sleeper", grace=5)
            await backend.stop("stubborn", grace=0.5)
            await backend.stop("stubborn", grace=0.5)  # idempotent
            await backend.stop("unknown-task")
            got = await exits(backend, {"selfkill", "sleeper", "stubborn"})
            assert time.monotonic() - t0 < 5
        finally:
            await backend.close()
        assert got["selfkill"].exit_code == 137 and got["selfkill"].record["signal"] == 9
        assert got["sleeper"].exit_code == 143
        assert got["stubborn"].exit_code == 137
        assert b"got TERM" in backend.read_log("stubborn", "stdout")
        assert LocalBackend(tmp_path / "run").log_names("sleeper")  # a fresh backend reads old logs

    run(main())


def test_invalid_task_id_rejected(tmp_path: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(tmp_path / "run")
        await backend.open()
        try:
            for bad in ("a/b", "..", "", "a b"):
                with pytest.raises(ValueError):
                    await backend.start(launch(bad, "true"))
        finally:
            await backend.close()

    run(main())


FIRST_LIFE = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from test_local import LocalBackend, launch, exits

async def main():
    a = LocalBackend({root!r})
    await a.open()
    await a.start(launch("done-early", "exit 7"))
    await a.start(launch("done-later", "while [ ! -e {marker} ]; do sleep 0.02; done; exit 5"))
    await a.start(launch("long", "sleep 30"))
    await exits(a, {{"done-early"}})
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_survives_control_plane_death_and_adopts(tmp_path: Path) -> None:
    root = tmp_path / "run"
    marker = tmp_path / "go"
    code = FIRST_LIFE.format(tests=str(Path(__file__).parent), root=str(root), marker=str(marker))
    control_plane = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert control_plane.stdout is not None
    assert control_plane.stdout.readline() == b"ready\n"
    control_plane.kill()  # the control plane dies hard: no close(), no cleanup
    control_plane.wait()
    marker.touch()  # done-later now ends while nobody listens
    deadline = time.monotonic() + 10
    while not (root / "tasks" / "done-later" / "exit.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)

    async def second_life() -> None:
        b = LocalBackend(root)
        await b.open()
        try:
            adopted = {e.task_id: e for e in await b.adopt(["done-early", "done-later", "long", "never-seen"])}
            assert isinstance(adopted["done-early"], TaskExit) and adopted["done-early"].exit_code == 7
            assert isinstance(adopted["done-later"], TaskExit) and adopted["done-later"].exit_code == 5
            assert isinstance(adopted["long"], TaskRunning)
            assert isinstance(adopted["never-seen"], TaskExit)
            assert adopted["never-seen"].exit_code == EXIT_TASK_LOST
            await b.stop("long", grace=1)  # its exit reaches b through the same socket path
            got = await exits(b, {"long"})
            assert got["long"].exit_code == 143
        finally:
            await b.close()

    run(second_life())


def test_supervisor_gone_without_exit_is_lost(tmp_path: Path) -> None:
    root = tmp_path / "run"

    async def first_life() -> int:
        a = LocalBackend(root)
        await a.open()
        await a.start(launch("orphan", "sleep 30"))
        while not (root / "tasks" / "orphan" / "pid.json").exists():
            await asyncio.sleep(0.01)
        pid = a._launcher.pid
        await a.close()
        return pid

    launcher_pid = run(first_life())
    os.kill(launcher_pid, signal.SIGKILL)  # the supervisor itself dies: nobody will write exit.json
    wait_for(lambda: process_state(launcher_pid) in ("gone", "Z"), 5, "the killed launcher gone")

    async def second_life() -> None:
        b = LocalBackend(root)
        await b.open()
        try:
            (event,) = await b.adopt(["orphan"])
            assert isinstance(event, TaskExit) and event.exit_code == EXIT_TASK_LOST
            assert "without recording an exit" in (event.record or {}).get("diagnostics", "")  # shown to users
        finally:
            await b.close()

    run(second_life())
    task_pid = json.loads((root / "tasks" / "orphan" / "pid.json").read_text())["taskPid"]
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{task_pid}") and time.monotonic() < deadline:
        time.sleep(0.02)  # adopt() killed the orphaned task (it is reaped by init)
    stat = Path(f"/proc/{task_pid}/stat")
    state = stat.read_text().split(") ")[1][0] if stat.exists() else "gone"
    assert state in ("gone", "Z")


def test_throughput_smoke(tmp_path: Path) -> None:
    n = 200

    async def main() -> float:
        backend = LocalBackend(tmp_path / "run")
        await backend.open()
        try:
            t0 = time.perf_counter()
            for i in range(n):
                await backend.start(launch(f"t{i}", "true"))
            got = await exits(backend, {f"t{i}" for i in range(n)}, timeout=30)
            elapsed = time.perf_counter() - t0
        finally:
            await backend.close()
        assert all(e.exit_code == 0 for e in got.values())
        return n / elapsed

    rate = run(main())
    print(f"local backend: {rate:.0f} tasks/s")


def test_gpu_discovery_and_simulated_gpus(tmp_path: Path) -> None:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        has_nvml = True
    except Exception:
        has_nvml = False
    found = discover_gpus()
    if not has_nvml:
        assert found == []
    assert all(not g.simulated for g in found)
    backend = LocalBackend(tmp_path / "run", simulated_gpus=2, gpu_model="fake", node_name="n1", cpu=8,
                           memory_mb=1024)
    (node,) = backend.nodes()
    assert (node.name, node.ip, node.cpu, node.memory_mb) == ("n1", "127.0.0.1", 8, 1024)
    assert [g.uuid for g in node.gpus] == ["SIM-GPU-0", "SIM-GPU-1"]
    assert all(g.simulated and g.model == "fake" for g in node.gpus)
    plain = LocalBackend(tmp_path / "run2")
    assert plain.nodes()[0].gpus == tuple(found)
    assert plain.nodes()[0].cpu == os.cpu_count()


def test_exec_shell_is_a_terminal_in_the_tasks_environment(tmp_path: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(tmp_path / "run", simulated_gpus=4)
        await backend.open()
        try:
            await backend.start(launch("failed", "exit 2", gpus=(2,), env={"MY_VAR": "kept"}))
            await exits(backend, {"failed"})
        finally:
            await backend.close()
        terminal = backend.exec_shell("failed")  # the task has ended: its environment is rebuilt
        said = await asyncio.to_thread(terminal_output, terminal, 'echo "[$CUDA_VISIBLE_DEVICES $MY_VAR '
                                       '$PAI_CURRENT_TASK_ROLE_NAME $PAI_DEBUG_SHELL] $(pwd) tty=$(tty)"; exit\n')
        work = backend.task_dir("failed") / "work"
        assert f"[2 kept train_er 1] {work} tty=/dev/pts/" in said, said
        with pytest.raises(KeyError):
            backend.exec_shell("never-started")

    run(main())
