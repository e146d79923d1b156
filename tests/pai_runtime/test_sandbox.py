"""pai_runtime.sandbox: the prefix really runs user code as the account, in the view it promises.

Real accounts (``pait-*``, uids 47000-47999), real ``bwrap`` and ``setpriv``. GPU devices do not exist
on test machines: ``prepare(dev_dir=...)`` takes a directory of stand-in files named like the nvidia
nodes, and the test lists ``/dev`` inside the sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pai_runtime import accounts, sandbox
from pai_runtime.accounts import Account, ensure_account
from pai_runtime.isolation import IsolationPolicy
from pai_runtime.sandbox import TaskPlace, prepare, user_environ
from tests.requirements import require_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IsolationPolicy, Account, Path]]:
    if os.geteuid() != 0:
        pytest.fail("sandbox tests need root (CI runs them as root)", pytrace=False)
    require_tool("bwrap", "apt-get install bubblewrap")
    require_tool("setpriv", "apt-get install util-linux")
    root = tmp_path_factory.mktemp("sbx")
    (root / "home").mkdir(mode=0o755)
    hidden = root / "platform"
    hidden.mkdir(mode=0o700)
    (hidden / "token").write_text("TOKEN")
    policy = IsolationPolicy(mode="sandbox", account_template="pait-{username}", uid_min=47000,
                             uid_max=47999, home_root=str(root / "home"), hidden_paths=(str(hidden),),
                             exposed_paths=(sys.prefix, sys.base_prefix, str(REPO)))
    user = f"s{os.getpid()}"
    acc = ensure_account(policy, user)
    try:
        yield policy, acc, root
    finally:
        subprocess.run(["userdel", acc.name], capture_output=True)
        subprocess.run(["groupdel", acc.name], capture_output=True)
        accounts._cache.clear()


def _task(root: Path, acc: Account, name: str, **kw: object) -> TaskPlace:
    task = root / name
    (task / "work").mkdir(parents=True)
    task.chmod(0o711)
    os.chown(task / "work", acc.uid, acc.gid)
    return TaskPlace(task_id=name, task_dir=str(task), work_dir=str(task / "work"), **kw)  # type: ignore[arg-type]


def _run(policy: IsolationPolicy, acc: Account, place: TaskPlace, command: str,
         env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    user_env = user_environ(acc, {"LANG": "C.UTF-8", "HOME": "/root", "SECRET_OF_PLATFORM": "x"})
    user_env.update(env or {})
    prepared = prepare(policy, acc, place, user_env, **kw)  # type: ignore[arg-type]
    return subprocess.run([*prepared.prefix, "/bin/bash", "-c", command], env=prepared.spawn_env,
                          capture_output=True, text=True, cwd=place.work_dir, timeout=60)


def test_only_the_tasks_gpus_are_in_dev(account: tuple[IsolationPolicy, Account, Path]) -> None:
    policy, acc, root = account
    fake_dev = root / "fake-dev"
    fake_dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidia2", "nvidia3", "nvidiactl", "nvidia-uvm"):
        (fake_dev / name).write_text(name)
    place = _task(root, acc, "gpu", gpus=[1, 3])
    out = _run(policy, acc, place, "ls /dev | grep nvidia; cat /dev/nvidia3", dev_dir=str(fake_dev))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["nvidia-uvm", "nvidia1", "nvidia3", "nvidiactl", "nvidia3"]
    assert sandbox.gpu_nodes([0], str(fake_dev)) == ["nvidia0", "nvidiactl", "nvidia-uvm"]


def test_view_identity_and_environment(account: tuple[IsolationPolicy, Account, Path]) -> None:
    policy, acc, root = account
    place = _task(root, acc, "view")
    out = _run(policy, acc, place, (
        "id -u; id -G; echo $HOME; pwd; env | sort | cut -d= -f1 | tr '\\n' ' '; echo;"
        f"cat {policy.hidden_paths[0]}/token || echo hidden;"
        "touch /tmp/t && echo tmp-writable; touch /usr/x 2>/dev/null || echo root-readonly;"
        "touch $HOME/h && echo home-writable; touch x && echo work-writable;"
        "python -c 'import pai_runtime; print(\"python-ok\")';"
        "grep NoNewPrivs /proc/self/status; grep CapBnd /proc/self/status; echo pid1=$(cat /proc/1/comm)"))
    lines = out.stdout.splitlines()
    assert lines[0] == str(acc.uid) and lines[1] == str(acc.gid), out
    assert lines[2] == acc.home and lines[3] == place.work_dir
    names = set(lines[4].split())
    assert "SECRET_OF_PLATFORM" not in names and {"HOME", "PATH", "USER", "LANG"} <= names
    assert "hidden" in lines and "tmp-writable" in lines and "root-readonly" in lines
    assert "home-writable" in lines and "work-writable" in lines and "python-ok" in lines, out
    assert any(line.split() == ["NoNewPrivs:", "1"] for line in lines)
    assert any(line.split() == ["CapBnd:", "0000000000000000"] for line in lines)
    assert "pid1=bwrap" in lines  # a PID namespace of its own


def test_the_users_environment_is_applied_after_the_switch(account: tuple[IsolationPolicy, Account, Path]) -> None:
    """A job's env may say LD_PRELOAD; the tools that run as root in front must not get it."""
    policy, acc, root = account
    place = _task(root, acc, "preload")
    env = user_environ(acc)
    env["LD_PRELOAD"] = "/nonexistent/evil.so"
    prepared = prepare(policy, acc, place, env)
    assert "LD_PRELOAD" not in prepared.spawn_env
    out = _run(policy, acc, place, "echo $LD_PRELOAD", env={"LD_PRELOAD": "/nonexistent/evil.so"})
    assert "/nonexistent/evil.so" in out.stdout


def test_users_mode_switches_without_a_sandbox(account: tuple[IsolationPolicy, Account, Path]) -> None:
    policy, acc, root = account
    users = IsolationPolicy(**{**policy.__dict__, "mode": "users"})
    place = _task(root, acc, "users")
    prepared = prepare(users, acc, place, user_environ(acc))
    assert not any("bwrap" in part for part in prepared.prefix)
    out = _run(users, acc, place, "id -u; cat /etc/shadow >/dev/null 2>&1 || echo denied")
    assert out.stdout.split() == [str(acc.uid), "denied"]


def test_memory_limit_without_cgroup_v2_is_rlimit_as_with_the_reason(
        account: tuple[IsolationPolicy, Account, Path]) -> None:
    policy, acc, root = account
    place = _task(root, acc, "mem", memory_mb=256, cpu=2)
    prepared = prepare(policy, acc, place, user_environ(acc))
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers") and os.access("/sys/fs/cgroup", os.W_OK):
        assert prepared.cgroup is not None
        return
    assert f"--as={256 << 20}" in prepared.prefix
    assert any("RLIMIT_AS" in n and "cgroup v2" in n for n in prepared.notes), prepared.notes
    assert any("CPU share not enforced" in n for n in prepared.notes)
    out = _run(policy, acc, place, "ulimit -v")
    assert out.stdout.strip() == str(256 << 10)
    gpu = prepare(policy, acc, TaskPlace("g", place.task_dir, place.work_dir, gpus=[0], memory_mb=256),
                  user_environ(acc))
    assert not any(part.startswith("--as=") for part in gpu.prefix)
    assert any("would break CUDA" in n for n in gpu.notes), gpu.notes


def test_mode_none_is_refused() -> None:
    with pytest.raises(ValueError):
        prepare(IsolationPolicy(), Account("x", 1, 1, "/"), TaskPlace("t", "/", "/"), {})
