"""Trials that run as their owner's Unix account (isolation ``users``/``sandbox``) cannot enter the
platform's experiment directory (0700): the trial job written by launcher.py carries the uploaded files
and writes them, and NNI's per-trial output, in the task's own directory. Run here for real: the job's
command under bash, as another account, in a directory that account owns."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pai_hub.experiments.launcher import build_protocol
from tests.experiments.isolation_helpers import (
    SYSTEM_PATH,
    make_accounts,
    require_isolation_tools,
    system_python,
    test_policy,
)

TRIAL = """import os, sys
from helpers import tag
open("seen.txt", "w").write(tag + "|" + os.environ["NNI_OUTPUT_DIR"] + "|" + os.getcwd())
"""


@pytest.fixture(scope="module")
def alice(tmp_path_factory):
    require_isolation_tools()
    with make_accounts(test_policy(tmp_path_factory.mktemp("homes"), "t16la"), "alice") as made:
        yield made["alice"]


@pytest.fixture
def tmp_path():
    """A directory other accounts may traverse (pytest's own live under a 0700 directory)."""
    base = Path(tempfile.mkdtemp(prefix="pai-t16-launcher-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def run_as(account, command: str, cwd: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--clear-groups",
                           "bash", "-c", command], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={"PATH": SYSTEM_PATH, **env})


def test_uploaded_files_are_written_and_run_in_the_task_directory(alice, tmp_path):
    platform_dir = tmp_path / "experiments" / "abcd1234"
    platform_dir.mkdir(parents=True, mode=0o700)
    os.chmod(tmp_path / "experiments", 0o700)
    spec = {"experimentId": "abcd1234", "virtualCluster": "default", "binDir": os.path.dirname(system_python()),
            "codeDir": str(platform_dir / "code"), "ownAccount": True, "codeInTask": True,
            "files": {"trial.py": TRIAL, "helpers/__init__.py": "tag = \"it's <b> $HOME `x`\"\n"},
            "template": {"command": "python3 trial.py", "cpu": 1, "memoryMB": 256}}
    environ = {"NNI_EXP_ID": "abcd1234", "NNI_TRIAL_JOB_ID": "Trl01", "NNI_OUTPUT_DIR": str(platform_dir / "out"),
               "NNI_TRIAL_SEQ_ID": "0", "HOME": "/root"}
    doc = build_protocol(spec, environ)
    (command,) = doc["taskRoles"]["trial"]["commands"]
    work = tmp_path / "task"
    work.mkdir()
    os.chown(work, alice.uid, alice.gid)
    done = run_as(alice, command, str(work), {"PAI_WORK_DIR": str(work)})
    assert done.returncode == 0, done.stderr
    seen = (work / "nni-code" / "seen.txt").read_text()
    assert seen == f"it's <b> $HOME `x`|{work}/nni-output|{work}/nni-code"
    assert os.stat(work / "nni-code" / "trial.py").st_uid == alice.uid


def test_today_the_platform_code_dir_is_closed_to_the_owner(alice, tmp_path):
    """Why the files travel with the job: the same trial reading the platform's code dir is refused."""
    platform_dir = tmp_path / "experiments" / "abcd1234"
    (platform_dir / "code").mkdir(parents=True)
    os.chmod(platform_dir, 0o700)
    spec = {"experimentId": "abcd1234", "virtualCluster": "default", "binDir": "/usr/bin",
            "codeDir": str(platform_dir / "code"), "template": {"command": "true"}}
    doc = build_protocol(spec, {"NNI_EXP_ID": "abcd1234", "NNI_TRIAL_JOB_ID": "Trl02"})
    (command,) = doc["taskRoles"]["trial"]["commands"]
    done = run_as(alice, command, "/", {})
    assert done.returncode != 0 and "Permission denied" in done.stderr


def test_a_code_dir_of_the_users_own_is_used_as_is(alice, tmp_path):
    code = tmp_path / "mine"
    code.mkdir()
    (code / "trial.py").write_text("print('from my dir')\n")
    spec = {"experimentId": "abcd1234", "virtualCluster": "default", "binDir": "/usr/bin", "codeDir": str(code),
            "ownAccount": True, "codeInTask": False, "files": {}, "template": {"command": "python3 trial.py"}}
    doc = build_protocol(spec, {"NNI_EXP_ID": "abcd1234", "NNI_TRIAL_JOB_ID": "Trl03"})
    (command,) = doc["taskRoles"]["trial"]["commands"]
    work = tmp_path / "task"
    work.mkdir()
    os.chown(work, alice.uid, alice.gid)
    done = run_as(alice, command, str(work), {"PAI_WORK_DIR": str(work)})
    assert done.returncode == 0 and done.stdout.strip() == "from my dir", done.stderr
