"""Prerequisite callbacks, failure policies, plugins, failure analysis and checkpoints with real processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from pai_hub.backends.base import TaskExit, TaskLaunch
from pai_hub.backends.local import LocalBackend
from pai_runtime.supervisor import run_task
from tests.backends.test_local import exits as _exits
from tests.backends.test_local import make_spec

pytestmark = pytest.mark.timeout(60)


def callbacks(name: str, order: Path, *, policy: str = "fail", start: str = "", extra: list | None = None) -> dict:
    """A cmd invocation appending '<name> <moment>' lines to ``order``."""
    return {
        "plugin": "cmd", "name": name, "failurePolicy": policy, "parameters": {},
        "callbacks": [
            {"event": "containerStart", "commands": [f"echo {name} start >> {order}", *([start] if start else [])]},
            {"event": "taskSucceeds", "commands": [f"echo {name} succeeds >> {order}"]},
            {"event": "containerExit", "commands": [f"echo {name} exit >> {order}"]},
            *(extra or []),
        ],
    }


def run_here(tmp_path: Path, task_id: str, command: str, **extra) -> tuple[dict, Path]:
    task_dir = tmp_path / "tasks" / task_id
    task_dir.mkdir(parents=True)
    spec = make_spec(task_id, command, **extra)
    spec["peers"] = [{"role": "train_er", "index": 0, "ip": "127.0.0.1", "ports": {}}]
    (task_dir / "spec.json").write_text(json.dumps(spec))
    run_task(str(task_dir))
    return json.loads((task_dir / "exit.json").read_text()), task_dir


def backend_log(task_dir: Path) -> str:
    return next(task_dir.rglob("runtime.log")).read_text()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_callbacks_around_a_successful_command(tmp_path: Path) -> None:
    order = tmp_path / "order"
    record, task_dir = run_here(tmp_path, "ok", f"echo user >> {order}; echo out; echo $PAI_TASK_INDEX",
                                plugins=[callbacks("a", order), callbacks("b", order)])
    assert record["exitCode"] == 0 and "exitInfo" not in record
    assert lines(order) == ["a start", "b start", "user", "b succeeds", "b exit", "a succeeds", "a exit"]
    assert (task_dir / "logs" / "stdout").read_text() == "out\n0\n"
    runtime_log = (task_dir / "logs" / "runtime.log").read_text()
    assert runtime_log.index("'a' (plugin cmd): containerStart") < runtime_log.index("USER COMMAND START") \
        < runtime_log.index("USER COMMAND END") < runtime_log.index("'a' (plugin cmd): containerExit")
    assert oct((task_dir / "runtime.sh").stat().st_mode & 0o777) == "0o600"


def test_callbacks_after_a_failing_command(tmp_path: Path) -> None:
    order = tmp_path / "order"
    record, _ = run_here(tmp_path, "fails", f"echo user >> {order}; exit 3",
                         plugins=[callbacks("a", order), callbacks("b", order)])
    assert record["exitCode"] == 3  # the user command's code, not a callback's
    assert lines(order) == ["a start", "b start", "user", "b exit", "a exit"]  # no taskSucceeds
    assert record["exitInfo"]["originUserExitCode"] == 3 and record["exitInfo"]["exitCode"] == 255


def test_failure_policy_fail_stops_the_task(tmp_path: Path) -> None:
    order = tmp_path / "order"
    record, task_dir = run_here(
        tmp_path, "policy-fail", f"echo user >> {order}",
        plugins=[callbacks("a", order), callbacks("b", order, start="exit 7"), callbacks("c", order)])
    assert lines(order) == ["a start", "b start", "a exit"]  # command and c never ran; b did not start
    assert record["exitCode"] == 240
    info = record["exitInfo"]
    assert (info["exitCode"], info["phrase"], info["type"]) == (240, "PrerequisiteCallbackFailed", "USER_FAILURE")
    assert info["prerequisite"] == {"name": "b", "plugin": "cmd", "event": "containerStart", "exitCode": 7}
    runtime_log = (task_dir / "logs" / "runtime.log").read_text()
    assert ("[ERROR] prerequisite 'b' (plugin cmd): containerStart callback failed with exit code 7; "
            "failurePolicy is fail") in runtime_log
    assert "USER COMMAND START" not in runtime_log


def test_failure_policy_ignore_continues(tmp_path: Path) -> None:
    order = tmp_path / "order"
    record, task_dir = run_here(
        tmp_path, "policy-ignore", f"echo user >> {order}",
        plugins=[callbacks("a", order, policy="ignore", start="false"),
                 {"plugin": "no-such-plugin", "name": "bogus", "failurePolicy": "ignore"}])
    assert record["exitCode"] == 0
    assert lines(order) == ["a start", "user", "a succeeds", "a exit"]
    runtime_log = (task_dir / "logs" / "runtime.log").read_text()
    assert "failurePolicy is ignore: continuing" in runtime_log
    assert "unknown runtime plugin 'no-such-plugin'" in runtime_log


def test_plugin_fallbacks_without_sshd_or_tensorboard(tmp_path: Path) -> None:
    record, task_dir = run_here(
        tmp_path, "plugins", 'echo "$PAI_SSH_CONFIG"',
        plugins=[{"plugin": "ssh", "name": "ssh", "parameters": {"jobssh": True, "userssh": {"value": "ssh-rsa AAA me"}}},
                 {"plugin": "tensorboard", "name": "tb", "parameters": {"logdir": "tb-logs"}}])
    assert record["exitCode"] == 0
    runtime_log = (task_dir / "logs" / "runtime.log").read_text()
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        assert "ssh plugin: sshd is not installed on this node" in runtime_log
    else:
        assert "ssh plugin: sshd started" in runtime_log
    if shutil.which("tensorboard") is None:
        assert "TensorBoard" in runtime_log
    ssh_dir = task_dir / "ssh"
    assert (task_dir / "logs" / "stdout").read_text().strip() == str(ssh_dir / "config")
    assert "Host train_er-0" in (ssh_dir / "config").read_text()
    keys = (ssh_dir / "authorized_keys").read_text()
    assert "ssh-rsa AAA me" in keys
    if shutil.which("ssh-keygen"):
        assert keys.startswith("ssh-ed25519 ") and (ssh_dir / "id_job").exists()


def test_real_failures_are_classified(tmp_path: Path) -> None:
    syntax, _ = run_here(tmp_path, "syntax", "python3 -c 'syntax error('")
    info = syntax["exitInfo"]
    assert (info["exitCode"], info["phrase"], info["behavior"], info["retryable"]) == (
        231, "ContainerSyntaxError", "PERMANENT", False)
    assert syntax["exitCode"] == 1 and info["originUserExitCode"] == 1 and "SyntaxError" in info["matchedUserLogString"]
    imp, _ = run_here(tmp_path, "import", "python3 -c 'import nosuchmodule'")
    assert (imp["exitInfo"]["exitCode"], imp["exitInfo"]["phrase"]) == (232, "ContainerImportError")
    killed, _ = run_here(tmp_path, "killed", "kill -KILL $$")
    info = killed["exitInfo"]
    assert (killed["exitCode"], info["exitCode"], info["phrase"], info["behavior"], info["retryable"]) == (
        137, 137, "ContainerSigKillReceived", "TRANSIENT", True)


def test_checkpoint_dir_created_and_shared_by_attempts(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt" / "job" / "worker-0"
    command = (f'test "$PAI_CHECKPOINT_DIR" = "{ckpt}" || exit 9; n=$(cat "$PAI_CHECKPOINT_DIR/n" 2>/dev/null || echo 0);'
               ' echo $((n+1)) > "$PAI_CHECKPOINT_DIR/n"; echo $n')
    first, d1 = run_here(tmp_path, "attempt-0", command, checkpoint_dir=str(ckpt))
    second, d2 = run_here(tmp_path, "attempt-1", command, checkpoint_dir=str(ckpt), task_attempt_id=1)
    assert first["exitCode"] == second["exitCode"] == 0
    assert (d1 / "logs" / "stdout").read_text() == "0\n" and (d2 / "logs" / "stdout").read_text() == "1\n"
    assert (ckpt / "n").read_text() == "2\n"




def test_stop_runs_exit_callbacks_within_grace(tmp_path: Path) -> None:
    order = tmp_path / "order"
    slow_exit = {"event": "containerExit", "commands": [f"sleep 30; echo never >> {order}"]}

    async def main() -> tuple[dict[str, TaskExit], float]:
        backend = LocalBackend(tmp_path / "run")
        await backend.open()
        try:
            spec = make_spec("stopped", f"echo user >> {order}; sleep 30",
                             plugins=[callbacks("a", order), callbacks("b", order, extra=[slow_exit])])
            await backend.start(TaskLaunch(task_id="stopped", node="local", gpus=(), spec=spec))
            deadline = time.monotonic() + 10
            while "user" not in lines(order) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            t0 = time.monotonic()
            await backend.stop("stopped", grace=8)
            got = await _exits(backend, {"stopped"})
            return got, time.monotonic() - t0
        finally:
            await backend.close()

    os.environ["PAI_EXIT_CALLBACK_GRACE"] = "1"  # read by the launcher this backend starts
    try:
        got, elapsed = asyncio.run(main())
    finally:
        del os.environ["PAI_EXIT_CALLBACK_GRACE"]
    assert got["stopped"].exit_code == 143  # the user command's code (SIGTERM)
    # b's slow exit callback was cut at the grace; a's exit callback still ran after it
    assert lines(order) == ["a start", "b start", "user", "b exit", "a exit"]
    assert elapsed < 5
    assert got["stopped"].record["exitInfo"]["phrase"] == "ContainerSigTermReceived"
    runtime_log = backend_log(tmp_path / "run" / "tasks" / "stopped")
    assert "exit callback still running after 1s: killed" in runtime_log


def test_rule_file_edit_applies_to_next_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("- containerExitCode: 201\n  patterns:\n  - userLogRegex: '(?i)disk full'\n")
    monkeypatch.setenv("PAI_EXIT_SPEC", str(rules))

    async def main() -> list[TaskExit]:
        backend = LocalBackend(tmp_path / "run")
        await backend.open()
        try:
            out = []
            for i, edit in enumerate([None, "- containerExitCode: 202\n  patterns:\n  - exitCode: 5\n"]):
                if edit is not None:
                    rules.write_text(edit)
                spec = make_spec(f"f{i}", "echo DISK FULL; exit 5")
                await backend.start(TaskLaunch(task_id=f"f{i}", node="local", gpus=(), spec=spec))
                out.append((await _exits(backend, {f"f{i}"}))[f"f{i}"])
            return out
        finally:
            await backend.close()

    first, second = asyncio.run(main())  # one backend, one launcher for both
    assert first.exit_code == second.exit_code == 5
    assert first.record["exitInfo"]["exitCode"] == 201
    assert first.record["exitInfo"]["matchedUserLogString"] == "DISK FULL"
    assert second.record["exitInfo"]["exitCode"] == 202
