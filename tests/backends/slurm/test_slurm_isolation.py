"""Issue 16 on Slurm: with an isolation policy that switches users, every task attempt is a Slurm job of
its PAI user's own Unix account (``sbatch --uid/--gid``, as batchspawner), in a clean environment,
with a task directory only that account can open. Real accounts (useradd), real Slurm jobs, real
files: each probe below is a command a user's job or debug shell runs, and every one that reaches
another user's or the platform's files must be denied."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pai_hub.backends.slurm import SlurmBackend
from pai_hub.backends.slurm.backend import _import_path
from pai_hub.backends.slurm.users import SlurmUsers
from pai_runtime.accounts import ensure_account
from pai_runtime.isolation import IsolationPolicy
from tests.backends.slurm.test_slurm import exits, launch, until
from tests.requirements import require_tool
from tests.terminal import terminal_output

pytestmark = pytest.mark.timeout(180)

#: The test's own account names and uids, apart from other tests' and real users'.
TEMPLATE = "pai6s-{username}"
UID_MIN, UID_MAX = 46100, 46199
CANARY = "PAI_PLATFORM_CANARY"


def _interpreter() -> str:
    """An interpreter the accounts can run: this one if every directory above it lets them through,
    else the system's python3 (the job script needs only the standard library and our import path)."""
    for candidate in (sys.executable, "/usr/bin/python3", shutil.which("python3")):
        if candidate and os.path.exists(candidate):
            try:
                SlurmUsers.check_reachable(os.path.realpath(candidate), "python")
                return candidate
            except RuntimeError:
                continue
    pytest.fail("no Python interpreter that other accounts can run (this one lies under a closed directory): "
                "apt-get install -y python3", pytrace=False)


@pytest.fixture(scope="module")
def place():
    """A base directory others may pass (0711) with the run root and a platform data directory (0700,
    holding an admin token 0600) in it; the accounts' homes under it; accounts removed afterwards."""
    for tool in ("useradd", "userdel", "setpriv"):
        require_tool(tool, "apt-get install -y passwd util-linux")
    base = Path(tempfile.mkdtemp(prefix="pai-slurm-iso-"))
    os.chmod(base, 0o711)
    (base / "homes").mkdir(mode=0o755)
    data = base / "data"
    data.mkdir(mode=0o700)
    (data / "admin-token").write_text("ADMIN-TOKEN-SECRET\n")
    os.chmod(data / "admin-token", 0o600)
    policy = IsolationPolicy(mode="users", account_template=TEMPLATE, uid_min=UID_MIN, uid_max=UID_MAX,
                             home_root=str(base / "homes"))
    accounts = {u: ensure_account(policy, u) for u in ("alice", "bob")}
    try:
        yield base, data, policy, accounts
    finally:
        for a in accounts.values():
            subprocess.run(["userdel", a.name], capture_output=True)
            subprocess.run(["groupdel", a.name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def isolated(base: Path, slurm_conf: str, policy: IsolationPolicy, **kw) -> SlurmBackend:
    python = _interpreter()
    return SlurmBackend(base / "run", slurm_conf=slurm_conf, isolation=policy, python=python,
                        import_path=_import_path(), **kw)


def user_launch(task_id: str, user: str, command: str, **kw):
    out = launch(task_id, command, **kw)
    out.spec["username"] = user
    out.spec["framework_name"] = f"{user}~job1"
    return out


def probes(paths: dict[str, str]) -> str:
    """A shell command that tries to read, list or write each path and prints ``NAME=ALLOWED|DENIED``."""
    lines = []
    for name, (how, path) in paths.items():
        test = {"read": f"cat -- '{path}' >/dev/null 2>&1", "list": f"ls -- '{path}' >/dev/null 2>&1",
                "write": f"touch -- '{path}' 2>/dev/null"}[how]
        lines.append(f"if {test}; then echo {name}=ALLOWED; else echo {name}=DENIED; fi")
    return "; ".join(lines)


def test_tasks_run_as_their_accounts_and_cannot_reach_others(slurm_conf, place, monkeypatch):
    base, data, policy, accounts = place
    alice, bob = accounts["alice"], accounts["bob"]
    monkeypatch.setenv(CANARY, "platform-only")  # in the platform's environment, never in a task's

    async def main():
        b = isolated(base, slurm_conf, policy)
        await b.open()
        try:
            await b.start(user_launch("bob-1", "bob", "echo bob-private > mine.txt; sleep 30", node="node2"))
            await until(lambda: (b.task_dir("bob-1") / "slurm_job.json").exists())
            bob_dir = b.task_dir("bob-1")
            targets = {
                "bob_spec": ("read", f"{bob_dir}/spec.json"),
                "bob_dir": ("list", str(bob_dir)),
                "bob_file": ("read", f"{bob_dir}/work/mine.txt"),
                "bob_write": ("write", f"{bob_dir}/planted"),
                "bob_home": ("list", bob.home),
                "data_dir": ("list", str(data)),
                "admin_token": ("read", f"{data}/admin-token"),
                "task_list": ("list", str(b.tasks_dir)),
                "job_records": ("list", str(base / "run" / "slurm-jobs")),
                "bob_record": ("read", str(base / "run" / "slurm-jobs" / "bob-1.json")),
            }
            cmd = ("echo UID=$(id -u) GID=$(id -g) HOME=$HOME; env | grep -c ^" + CANARY + " | sed s/^/CANARY=/; "
                   + probes(targets) + "; echo OWN=$(cat ../spec.json >/dev/null && echo ok)")
            await b.start(user_launch("alice-1", "alice", cmd, node="node1"))
            got = await exits(b, {"alice-1"})
            assert got["alice-1"].exit_code == 0, b.read_log("alice-1", "stderr")
            out = dict(kv.split("=", 1) for kv in b.read_log("alice-1", "stdout").decode().split() if "=" in kv)
            assert (out["UID"], out["GID"], out["HOME"]) == (str(alice.uid), str(alice.gid), alice.home)
            assert out["CANARY"] == "0"  # the platform's environment did not reach the task
            assert out["OWN"] == "ok"  # its own spec.json it reads
            denied = {k: v for k, v in out.items() if k in targets}
            assert denied == dict.fromkeys(targets, "DENIED"), denied
            # bob's task directory is bob's, closed to everybody else
            for path, mode in ((bob_dir, 0o700), (bob_dir / "spec.json", 0o600)):
                st = os.stat(path)
                assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (bob.uid, mode), (path, st)
            assert pwd.getpwuid(os.stat(bob_dir / "work" / "mine.txt").st_uid).pw_name == bob.name
            await b.stop("bob-1", grace=1)
            await exits(b, {"bob-1"})
        finally:
            await b.close()

    asyncio.run(main())


def test_debug_shell_is_the_accounts(slurm_conf, place):
    """A held allocation's debug shell (``srun --overlap`` as the account) and a shell after the job:
    the account's uid and HOME, none of the platform's environment, the same denials."""
    base, data, policy, accounts = place
    alice = accounts["alice"]

    async def main():
        b = isolated(base, slurm_conf, policy, debug_hold_minutes=5)
        await b.open()
        try:
            await b.start(user_launch("alice-dbg", "alice", "exit 1", node="node3"))
            got = await exits(b, {"alice-dbg"})
            assert got["alice-dbg"].exit_code == 1
            await until(lambda: (b.task_dir("alice-dbg") / "hold").exists())
            script = ("echo \"uid=$(id -u) home=$HOME on=$SLURMD_NODENAME dbg=$PAI_DEBUG_SHELL\"; "
                      + probes({"token": ("read", f"{data}/admin-token"), "data": ("list", str(data))})
                      + "; exit\n")
            said = await asyncio.to_thread(terminal_output, b.exec_shell("alice-dbg"), script)
            assert f"uid={alice.uid} home={alice.home} on=node3 dbg=1" in said, said
            assert "token=DENIED" in said and "data=DENIED" in said, said
            assert await b.release("alice-dbg")
            said = await asyncio.to_thread(terminal_output, b.exec_shell("alice-dbg"),
                                           f"echo \"uid=$(id -u) cwd=$PWD\"; {probes({'token': ('read', f'{data}/admin-token')})}; exit\n")
            assert f"uid={alice.uid}" in said and "token=DENIED" in said, said
        finally:
            await b.close()

    asyncio.run(main())


def test_platform_reads_only_the_accounts_own_files(slurm_conf, place):
    """A user who swaps his log for a link to the admin token gets nothing back through the log API:
    root reads a user's task directory without following links, and only files the account owns."""
    base, data, policy, _ = place

    async def main():
        b = isolated(base, slurm_conf, policy)
        await b.open()
        try:
            cmd = f"echo visible; cd ..; rm -f stdout all; ln -s '{data}/admin-token' stdout; ln -s '{data}/admin-token' all"
            await b.start(user_launch("alice-link", "alice", cmd, node="node4"))
            got = await exits(b, {"alice-link"})
            assert got["alice-link"].exit_code == 0
            assert os.path.islink(b.task_dir("alice-link") / "stdout")
            for name in ("stdout", "all"):
                assert b"ADMIN-TOKEN" not in b.read_log("alice-link", name)
        finally:
            await b.close()

    asyncio.run(main())


def test_no_account_fails_the_start_with_the_reason(slurm_conf, place):
    base, _, policy, _ = place
    strict = IsolationPolicy(**{**policy.__dict__, "create_accounts": False})

    async def main():
        b = isolated(base, slurm_conf, strict)
        await b.open()
        try:
            await b.start(user_launch("carol-1", "carol", "echo never", node="node1"))
            got = await exits(b, {"carol-1"})
            assert got["carol-1"].exit_code == -200
            assert "creating accounts is turned off" in str(got["carol-1"].record), got["carol-1"].record
        finally:
            await b.close()

    asyncio.run(main())


def test_open_refuses_a_run_root_the_accounts_cannot_reach(place):
    base, _, policy, _ = place
    closed = base / "closed"
    closed.mkdir(mode=0o700)
    b = SlurmBackend(closed / "run", isolation=policy, python="/usr/bin/env", import_path=[])
    with pytest.raises(RuntimeError, match=r"not reachable by the users' accounts: .*closed is mode 0700"):
        asyncio.run(b.open())
