"""The job directory when the supervisor itself already runs as the task's account (Slurm with
isolation: ``sbatch --uid`` starts ``python -m pai_runtime`` as the account, which cannot write the
root-owned run root). The backend makes ``<run_root>/jobs/<md5>`` for the account first
(``ensure_job_dir``, as root); the account's supervisor finds it, and the ssh plugin's job key pair is
shared there by the job's tasks. Real account, real supervisor processes started with setpriv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pai_runtime.accounts import Account
from pai_runtime.supervisor import ensure_job_dir, found_job_dir
from tests.accounts import isolated_account
from tests.backends.test_local import make_spec
from tests.requirements import require_tool

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
SSH = {"plugin": "ssh", "name": "ssh", "failurePolicy": "fail", "parameters": {"jobssh": True}}


@pytest.fixture(scope="module")
def account() -> Iterator[tuple[Account, Path]]:
    """A real Unix account and a base directory it may traverse (tests/accounts.py)."""
    require_tool("ssh-keygen", "apt-get install openssh-client")
    with isolated_account("jobdir", "this test starts supervisors as another account") as found:
        yield found


def _python() -> str:
    """An interpreter the account can reach (this one may live under root's closed home)."""
    for candidate in ("/usr/bin/python3", shutil.which("python3") or ""):
        if candidate and os.path.exists(candidate) and not os.path.realpath(candidate).startswith("/root/"):
            return candidate
    pytest.fail("no python3 outside /root for the account to run: apt-get install -y python3", pytrace=False)


def _run_as(acc: Account, task_dir: Path) -> None:
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from pai_runtime.supervisor import run_task; " \
           f"sys.exit(run_task({str(task_dir)!r}))"
    done = subprocess.run(["setpriv", f"--reuid={acc.uid}", f"--regid={acc.gid}", "--clear-groups", "--",
                           _python(), "-S", "-E", "-c", code], cwd="/", capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": acc.home})
    logs = task_dir / "logs" / "all"
    assert done.returncode == 0, done.stderr + (logs.read_text() if logs.exists() else "")


def test_the_accounts_own_supervisor_shares_the_key_pair_in_the_job_dir_the_backend_made(
        account: tuple[Account, Path]) -> None:
    acc, base = account
    run_root = base / "run"
    (run_root / "tasks").mkdir(parents=True)
    run_root.chmod(0o711)
    (run_root / "tasks").chmod(0o711)
    keys = []
    for index in (0, 1):
        task_dir = run_root / "tasks" / f"s-{index}"
        task_dir.mkdir(mode=0o700)
        spec = make_spec(f"s-{index}", 'cat "$PAI_SSH_DIR/id_job.pub"', plugins=[SSH])
        spec.update(framework_name="alice~job", task_index=index)
        (task_dir / "spec.json").write_text(json.dumps(spec))
        os.chown(task_dir / "spec.json", acc.uid, acc.gid)
        os.chown(task_dir, acc.uid, acc.gid)
        job_dir = ensure_job_dir(str(task_dir), "alice~job", acc)  # what the backend does, as root
        assert found_job_dir(str(task_dir), "alice~job") == ""  # root does not take the account's
        _run_as(acc, task_dir)
        keys.append((task_dir / "logs" / "stdout").read_text().strip())
    assert keys[0].startswith("ssh-ed25519 ") and keys[0] == keys[1], keys
    assert (Path(job_dir) / "ssh-key" / "id_job.pub").read_text().strip() == keys[0]
    st = Path(job_dir).stat()
    assert (st.st_uid, st.st_mode & 0o777) == (acc.uid, 0o700)


def test_a_namesakes_job_dir_is_replaced_never_followed(account: tuple[Account, Path], tmp_path: Path) -> None:
    acc, base = account
    task_dir = base / "run2" / "tasks" / "t"
    task_dir.mkdir(parents=True)
    path = Path(ensure_job_dir(str(task_dir), "bob~job", acc))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    os.chown(path, 0, 0)  # another account's (a removed user's namesake)
    (path / "link").symlink_to(outside)
    again = Path(ensure_job_dir(str(task_dir), "bob~job", acc))
    assert again == path and again.stat().st_uid == acc.uid and list(again.iterdir()) == []
    assert (outside / "keep").read_text() == "keep"
    path.rmdir()
    path.symlink_to(outside)  # a link where the directory goes
    again = Path(ensure_job_dir(str(task_dir), "bob~job", acc))
    assert not again.is_symlink() and again.stat().st_uid == acc.uid
    assert (outside / "keep").read_text() == "keep"
