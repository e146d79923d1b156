"""The platform's own files are private (issue 16): a real ``pai server`` refuses a data directory
others can read or write, names each path with its mode and the fix, and creates everything it
writes readable by its own user only — the database, tokens, logs, task directories."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pai_runtime.accounts import unix_account_name
from pai_runtime.isolation import IsolationPolicy
from tests.requirements import require_tool
from tests.server import Server, job_yaml, wait_state

pytestmark = pytest.mark.slow


def start_refused(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``pai server`` on ``data_dir``; it must exit (not serve) — return what it said."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_")}
    try:
        return subprocess.run([sys.executable, "-m", "pai_hub.cli", *args, "server", "--ip", "127.0.0.1",
                               "--port", "1", "--isolation", "none", "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pai server on {data_dir} did not refuse to start within {timeout}s")


@pytest.fixture(scope="module")
def used_data_dir(tmp_path_factory) -> Path:
    """A data directory a server has run in (database, admin token, a finished job), then stopped."""
    srv = Server(tmp_path_factory.mktemp("platform-files") / "data", args=("--simulated-gpus", "1"))
    srv.data_dir.mkdir(mode=0o700)
    srv.start()
    try:
        with srv.client() as c:
            r = c.post("/api/v2/jobs", content=job_yaml("files", ["echo hello > out.txt", "echo to-the-log"]),
                       headers={"Content-Type": "text/yaml"})
            assert r.status_code == 202, r.text
            wait_state(c, "admin~files", {"SUCCEEDED"}, timeout=60)
    finally:
        srv.stop()
        srv.kill_tasks()
    return srv.data_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_fresh_start_creates_every_file_private(used_data_dir):
    """Walk everything the server, its launcher and a task wrote: nothing is readable, writable or
    enterable by group or others, and everything belongs to the server's uid (isolation none: the
    one user owns all). No exceptions in this mode."""
    loose = []
    for root, dirs, files in os.walk(used_data_dir):
        for name in [*dirs, *files]:
            path = Path(root) / name
            if path.is_symlink():
                continue
            st = path.lstat()
            if stat.S_IMODE(st.st_mode) & 0o077 or st.st_uid != os.geteuid():
                loose.append(f"{path} {stat.filemode(st.st_mode)} uid {st.st_uid}")
    assert _mode(used_data_dir) == 0o700
    assert not loose, "\n".join(loose)
    # the walk saw what matters: the database, the token, a task's logs and files
    assert (used_data_dir / "pai.sqlite").exists() and list((used_data_dir / "run" / "tasks").iterdir())


def test_the_admin_token_is_a_0600_file_of_the_servers_user(used_data_dir):
    token = used_data_dir / "admin-token"
    assert _mode(token) == 0o600 and token.stat().st_uid == os.geteuid()
    assert len(token.read_text().strip()) >= 32


@pytest.mark.parametrize("loosen", ["data-dir", "database", "admin-token", "pai_config", "owner"])
def test_a_data_directory_others_can_read_is_refused_naming_the_path_and_the_fix(used_data_dir, tmp_path, loosen):
    data = tmp_path / "data"
    subprocess.run(["cp", "-a", str(used_data_dir), str(data)], check=True)
    marker = tmp_path / "config-ran"
    (data / "pai_config.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    os.chmod(data / "pai_config.py", 0o600)
    target, change = {
        "data-dir": (data, lambda p: os.chmod(p, 0o755)),
        "database": (data / "pai.sqlite", lambda p: os.chmod(p, 0o644)),
        "admin-token": (data / "admin-token", lambda p: os.chmod(p, 0o640)),
        "pai_config": (data / "pai_config.py", lambda p: os.chmod(p, 0o666)),  # code the server would run
        "owner": (data / "alert-rules.yaml", lambda p: os.chown(p, 54321, 54321)),
    }[loosen]
    change(target)
    done = start_refused(data)
    assert done.returncode != 0, done.stdout + done.stderr
    message = done.stderr
    assert "refusing to start" in message and "not private" in message, message
    line = next((ln for ln in message.splitlines() if ln.strip().startswith(f"{target} (")), None)
    assert line is not None, f"{target} not named in:\n{message}"
    if loosen == "owner":
        assert "uid 54321" in line and f"fix: chown {os.geteuid()} {target}" in line, line
    else:
        assert f"{_mode(target):04o}" in line and f"fix: chmod go-rwx {target}" in line, line
    assert len([ln for ln in message.splitlines() if "fix:" in ln]) == 1, message  # only what is wrong
    assert not marker.exists(), "pai_config.py ran before the data directory was checked"
    assert "listening" not in done.stdout


def test_pai_user_add_refuses_a_readable_data_directory_too(used_data_dir, tmp_path):
    data = tmp_path / "data"
    subprocess.run(["cp", "-a", str(used_data_dir), str(data)], check=True)
    os.chmod(data / "pai.sqlite", 0o604)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_")}
    done = subprocess.run([sys.executable, "-m", "pai_hub.cli", "--data-dir", str(data), "user", "add", "carol",
                           "--password", "carol-password"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0 and f"{data / 'pai.sqlite'} (mode -rw----r-- 0604" in done.stderr, done.stderr


def test_an_empty_data_directory_made_with_the_default_umask_is_made_private(tmp_path):
    """``mkdir data`` (0755) before the first start exposes nothing yet: the server closes it and starts."""
    srv = Server(tmp_path / "data", args=("--simulated-gpus", "0"))
    srv.data_dir.mkdir()
    os.chmod(srv.data_dir, 0o755)
    srv.start()
    try:
        assert _mode(srv.data_dir) == 0o700
    finally:
        srv.stop()


def test_in_a_sandbox_only_listed_directories_are_traversable_and_only_the_tasks_own_files_are_the_users(tmp_path):
    """Isolation sandbox, a task of carol's has run: nothing is readable or writable by group or
    others anywhere; the execute bit (traversal) only on the data directory, ``run/``, ``run/tasks``
    and each task directory's root; owned by carol's account only what her task writes (its work
    directory, its ``runtime.log``, her jobs' checkpoint directories), everything else by the server's user."""
    require_tool("bwrap", "make install (apt-get install bubblewrap)")
    srv = Server(tmp_path / "data", args=("--simulated-gpus", "0"), isolation="sandbox")
    srv.start(timeout=60)
    try:
        with srv.client(srv.add_user("carol")) as c:
            r = c.post("/api/v2/jobs", content=job_yaml("files", ["echo hello > out.txt"]),
                       headers={"Content-Type": "text/yaml"})
            assert r.status_code == 202, r.text
            wait_state(c, "carol~files", {"SUCCEEDED"}, timeout=60)
    finally:
        srv.stop()
        srv.kill_tasks()
    data = srv.data_dir
    carol = pwd.getpwnam(unix_account_name(IsolationPolicy(mode="sandbox"), "carol")).pw_uid
    tasks = data / "run" / "tasks"
    traversed = {data, data / "run", tasks, *tasks.iterdir()}
    carols = [*tasks.glob("*/work"), *tasks.glob("*/runtime.log"), *data.glob("checkpoints/carol/*")]
    wrong = []
    for root, _dirs, files in os.walk(data):
        for path in [Path(root), *(Path(root) / f for f in files)]:
            st = path.lstat()
            allowed = 0o011 if path in traversed else 0
            owner = carol if any(path == c or c in path.parents for c in carols) else os.geteuid()
            if stat.S_IMODE(st.st_mode) & 0o077 & ~allowed or st.st_uid != owner:
                wrong.append(f"{path} {stat.filemode(st.st_mode)} uid {st.st_uid} (expected uid {owner})")
    assert not wrong, "\n".join(wrong)
    assert list(tasks.glob("*/work/out.txt")), "the task did not write its file"
    assert _mode(data) == 0o711


def test_with_users_own_accounts_tasks_may_only_traverse_the_data_directory(tmp_path):
    """Isolation on: the data directory and run/ are 0711 (tasks reach their own task directory,
    list nothing); every other file of the platform's stays private."""
    srv = Server(tmp_path / "data", args=("--simulated-gpus", "0"), isolation="users")
    srv.start()
    try:
        assert _mode(srv.data_dir) == 0o711 and _mode(srv.data_dir / "run") == 0o711
        for path in [*srv.data_dir.iterdir(), *(srv.data_dir / "run").iterdir()]:
            if path.name in ("run", "tasks"):
                continue
            assert _mode(path) & 0o077 == 0, f"{path}: {stat.filemode(path.lstat().st_mode)}"
    finally:
        srv.stop()
        srv.kill_tasks()
