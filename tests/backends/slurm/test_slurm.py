"""The Slurm backend against a real Slurm (Debian's slurm-wlm 22.05 + munge) started on 127.0.0.1 with
4 emulated nodes x 4 fake GPUs by scripts/slurm-test-cluster.sh (the ``slurm_conf`` fixture, conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess

import pytest

from pai_hub.backends.base import TaskExit, TaskLaunch, TaskRunning
from pai_hub.backends.slurm import SlurmBackend, parse_gres_gpus
from pai_runtime.spec import TaskPeer, TaskRoleInfo, TaskSpec
from tests.terminal import terminal_output

pytestmark = pytest.mark.timeout(120)


def make_spec(task_id, command, *, role="worker", index=0, instances=1, gpus=(), peers=None) -> dict:
    spec = TaskSpec(
        task_id=task_id, task_uid=f"uid-{task_id}", framework_name="alice~job1", username="alice",
        job_name="job1", virtual_cluster="default", task_role=role, task_index=index,
        job_attempt_id=0, task_attempt_id=0, command=command, gpus=list(gpus), work_dir="", log_dir="",
        task_roles={role: TaskRoleInfo(instances=instances, cpu=1, memory_mb=512, gpu=len(gpus),
                                       ports={"http": 1})},
        peers=peers if peers is not None else [TaskPeer(role, 0, None)],
    )
    return spec.to_json_dict()


def launch(task_id, command, node="node1", gpus=(), **kw) -> TaskLaunch:
    return TaskLaunch(task_id, node, tuple(gpus), make_spec(task_id, command, gpus=gpus, **kw))


@contextlib.asynccontextmanager
async def opened(tmp_path, slurm_conf, **kw):
    """A Slurm backend on the test cluster, open for the block (its tasks outlive it)."""
    backend = SlurmBackend(tmp_path / "run", slurm_conf=slurm_conf, **kw)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def exits(backend, ids, timeout=60.0) -> dict[str, TaskExit]:
    got: dict[str, TaskExit] = {}

    async def consume():
        async for ev in backend.events():
            if isinstance(ev, TaskExit) and ev.task_id in ids:
                got[ev.task_id] = ev
                if len(got) == len(ids):
                    return

    await asyncio.wait_for(consume(), timeout)
    return got


async def until(condition, timeout=30.0) -> None:
    """Wait for a condition of the test cluster, failing the test (not hanging) when it never holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the test Slurm cluster did not get there in time"
        await asyncio.sleep(0.05)


def log_or_empty(backend, task_id) -> bytes:
    try:
        return backend.read_log(task_id, "stdout")
    except (KeyError, OSError):  # not written yet
        return b""


def env_of(backend, task_id) -> dict[str, str]:
    out = backend.read_log(task_id, "stdout").decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_parse_gres():
    assert parse_gres_gpus("gpu:4") == (None, 4)
    assert parse_gres_gpus("gpu:a100:4(S:0-1)") == ("a100", 4)
    assert parse_gres_gpus("gpu:a100:2,gpu:v100:2") == ("a100", 4)
    assert parse_gres_gpus("") == (None, 0)


def test_nodes_exit_codes_and_logs(slurm_conf, tmp_path):
    async def main():
        async with opened(tmp_path, slurm_conf, simulated_gpus=True) as b:
            nodes = b.nodes()
            assert [n.name for n in nodes] == ["node1", "node2", "node3", "node4"]
            assert all(len(n.gpus) == 4 and n.cpu == 8 and n.ip == "127.0.0.1" for n in nodes)
            await b.start(launch("ok", "echo hello; echo oops >&2", node="node3"))
            await b.start(launch("bad", "exit 7", node="node2"))
            got = await exits(b, {"ok", "bad"})
            assert got["ok"].exit_code == 0 and got["bad"].exit_code == 7
            assert b.read_log("ok", "stdout") == b"hello\n"
            assert b"oops" in b.read_log("ok", "stderr")
            assert "runtime.log" in b.log_names("ok")
            assert b.read_log("ok", "stdout", offset=2) == b"llo\n"
            job = b.task_dir("ok") / "slurm_job.json"
            assert '"node": "node3"' in job.read_text()
            with pytest.raises(KeyError):
                b.read_log("ok", "../spec.json")

    asyncio.run(main())


def test_gang_spans_nodes_with_peer_env(slurm_conf, tmp_path):
    async def main():
        async with opened(tmp_path, slurm_conf) as b:
            peers = [TaskPeer("worker", i, "127.0.0.1", {"http": [20000 + i]}) for i in range(4)]
            cmd = "env | grep -E '^(PAI_|CUDA_VISIBLE_DEVICES|SLURMD_NODENAME)' | sort"
            ids = {f"gang-{i}" for i in range(4)}
            for i in range(4):
                await b.start(TaskLaunch(f"gang-{i}", f"node{i + 1}", (0, 1, 2, 3),
                                         make_spec(f"gang-{i}", cmd, index=i, instances=4, gpus=(0, 1, 2, 3),
                                                   peers=peers)))
            got = await exits(b, ids)
            assert all(e.exit_code == 0 for e in got.values()), got
            for i in range(4):
                env = env_of(b, f"gang-{i}")
                assert env["SLURMD_NODENAME"] == f"node{i + 1}"
                assert env["PAI_TASK_INDEX"] == str(i)
                assert env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
                for j in range(4):
                    assert env[f"PAI_HOST_IP_worker_{j}"] == "127.0.0.1"
                    assert env[f"PAI_worker_{j}_http_PORT"] == str(20000 + j)
                assert env["PAI_TASK_ROLE_TASK_COUNT_worker"] == "4"

    asyncio.run(main())


def test_gpus_isolated_on_one_node(slurm_conf, tmp_path):
    async def main():
        async with opened(tmp_path, slurm_conf) as b:
            cmd = "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; sleep 2"
            for i in range(2):  # the orchestrator's guess (0,1 twice) is replaced by Slurm's allocation
                await b.start(launch(f"g{i}", cmd, node="node4", gpus=(0, 1)))
            await exits(b, {"g0", "g1"})
            seen = {env_of(b, f"g{i}")["CUDA_VISIBLE_DEVICES"] for i in range(2)}
            assert seen == {"0,1", "2,3"}

    asyncio.run(main())


def test_stop_running_and_pending(slurm_conf, tmp_path):
    async def main():
        async with opened(tmp_path, slurm_conf) as b:
            await b.start(launch("long", "trap 'echo got TERM; exit 143' TERM; echo trapped; sleep 60 & wait",
                                 node="node1"))
            await b.start(launch("hog", "sleep 60", node="node2", gpus=(0, 1, 2, 3)))
            # Only once the hog holds all of node2's GPUs is "pend" sure to wait behind it: submitted together,
            # Slurm may start the 1-GPU job first while a previous test's job still frees a GPU there.
            await until(lambda: all((b.task_dir(t) / "slurm_job.json").exists() for t in ("long", "hog")))
            await b.start(launch("pend", "echo never", node="node2", gpus=(0,)))
            await until(lambda: b.job_id("pend") is not None)
            await until(lambda: b"trapped" in log_or_empty(b, "long"))  # its TERM trap is in place
            for tid in ("long", "pend", "hog"):
                await b.stop(tid, grace=3)
            got = await exits(b, {"long", "pend", "hog"})
            assert got["long"].exit_code == 143
            assert b"got TERM" in b.read_log("long", "stdout")
            assert got["pend"].exit_code == 143 and not (b.task_dir("pend") / "slurm_job.json").exists()
            assert got["hog"].exit_code != 0
            await b.stop("long")  # idempotent

    asyncio.run(main())


def test_adoption_after_restart(slurm_conf, tmp_path):
    async def first():
        async with opened(tmp_path, slurm_conf) as b:  # its tasks keep running after it
            await b.start(launch("a-run", "sleep 4; echo done", node="node1"))
            await b.start(launch("a-quick", "exit 3", node="node2"))
            await until(lambda: (b.task_dir("a-run") / "slurm_job.json").exists())

    async def second():
        await until(lambda: (tmp_path / "run" / "tasks" / "a-quick" / "exit.json").exists())  # ended meanwhile
        async with opened(tmp_path, slurm_conf) as b:
            found = {e.task_id: e for e in await b.adopt(["a-run", "a-quick", "a-never"])}
            assert isinstance(found["a-run"], TaskRunning)
            assert isinstance(found["a-quick"], TaskExit) and found["a-quick"].exit_code == 3
            assert isinstance(found["a-never"], TaskExit) and found["a-never"].exit_code == -1101
            got = await exits(b, {"a-run"})
            assert got["a-run"].exit_code == 0 and b.read_log("a-run", "stdout") == b"done\n"

    asyncio.run(first())
    asyncio.run(second())


def test_debug_hold_keeps_allocation(slurm_conf, tmp_path):
    async def main():
        async with opened(tmp_path, slurm_conf, debug_hold_minutes=5) as b:
            await b.start(launch("dbg", "exit 1", node="node3", gpus=(0, 1)))
            got = await exits(b, {"dbg"})
            assert got["dbg"].exit_code == 1  # reported at once, although the job holds on
            job_id = b.job_id("dbg")
            await until(lambda: (b.task_dir("dbg") / "hold").exists())
            env = {**os.environ, "SLURM_CONF": slurm_conf}
            state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T %b"], env=env, capture_output=True,
                                   text=True).stdout.strip()
            assert state.startswith("RUNNING"), state
            # A step in the held allocation sees the task's GPUs (what exec_shell opens).
            out = subprocess.run(["srun", f"--jobid={job_id}", "--overlap", "-n1", "sh", "-c",
                                  "echo $SLURMD_NODENAME"], env=env, capture_output=True, text=True, timeout=30)
            assert out.stdout.strip() == "node3", out
            # The debug shell is such a step, on a terminal (srun --pty), with the task's environment.
            terminal = b.exec_shell("dbg")
            said = await asyncio.to_thread(
                terminal_output, terminal, "echo on=$SLURMD_NODENAME debug=$PAI_DEBUG_SHELL; exit\n")
            assert "on=node3 debug=1" in said, said
            assert await b.release("dbg")
            for _ in range(100):
                st = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], env=env, capture_output=True,
                                    text=True).stdout.strip()
                if st in ("", "COMPLETED", "CANCELLED", "COMPLETING"):
                    break
                await asyncio.sleep(0.1)
            assert st in ("", "COMPLETED", "CANCELLED", "COMPLETING"), st

    asyncio.run(main())
