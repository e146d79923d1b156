"""Storage faults fail clean (issue 17), each made for real under a real ``pai server``.

- A database locked by another process (``BEGIN EXCLUSIVE``) past the wait a caller is given.
- A full disk: the server's file-size limit (``RLIMIT_FSIZE``, as ``prlimit --fsize``) set to one
  byte, so every write to the database fails (Python ignores SIGXFSZ: the write fails with EFBIG
  instead of the signal killing the server).
- An immutable database file (``chattr +i``): root writes through any mode, not through this.
- An unwritable task directory (``chattr +i`` on ``<run_root>/tasks``).

Each must answer a clear 503 "storage unavailable, retry" naming the cause (never a 500, never a
caller left hanging), leave no phantom job (a refused job either exists once after recovery or not
at all, and then its name is free), recover by itself once the fault is gone, and fail a task that
cannot be started once with its cause rather than retrying it into the same wall.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from pai_hub.store.db import open_store, sqlite_url
from tests.requirements import require_tool
from tests.server import Server, job_yaml

YAML = {"Content-Type": "text/yaml"}
#: The server's own bound on a caller's wait for a stalled store (Controller.input_timeout) and a
#: reader's (settle_timeout), plus slack for this 2-core machine.
STALL_ANSWER_S = 10.0
SLACK_S = 8.0


class PipedServer(Server):
    """A server whose output is copied into its log by this process, through a pipe: a server whose
    own writes fail (a file-size limit) still gets its log lines written."""

    def start(self, timeout: float = 30) -> Server:
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("PAI_URL", None)
        env.pop("PAI_TOKEN", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pai_hub.cli", "server", "--ip", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir), *self.isolation_args(), *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        proc = self.proc

        def copy() -> None:
            assert proc.stdout is not None
            with open(self.log_path, "ab") as log:
                for line in proc.stdout:
                    log.write(line)
                    log.flush()

        threading.Thread(target=copy, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                time.sleep(0.2)  # let the copier write the last lines
                raise RuntimeError(f"server exited with {proc.returncode}: {self.log()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/v2/info", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start in time")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def db(self) -> Path:
        return self.data_dir / "pai.sqlite"


@contextmanager
def server(tmp_path: Path) -> Iterator[PipedServer]:
    srv = PipedServer(tmp_path / "data", args=("--simulated-gpus", "1", "--node-cpu", "4"))
    srv.data_dir.mkdir(parents=True, mode=0o700)
    try:
        yield srv.start()  # type: ignore[misc]
    finally:
        srv.stop()
        srv.kill_tasks()


def submit(srv: Server, name: str, commands: tuple[str, ...] = ("true",)) -> httpx.Response:
    """POST admin's job ``name`` on a client of its own (callers run in threads here)."""
    with srv.client() as c:
        return c.post("/api/v2/jobs", content=job_yaml(name, list(commands)), headers=YAML, timeout=60)


def get(srv: Server, path: str) -> httpx.Response:
    with srv.client() as c:
        return c.get(path, timeout=60)


def listed(srv: Server) -> list[str]:
    r = get(srv, "/api/v2/jobs")
    assert r.status_code == 200, r.text
    return sorted(j["name"] for j in r.json())


def wait_state(srv: Server, name: str, states: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = get(srv, f"/api/v2/jobs/admin~{name}")
        if r.status_code == 200 and r.json()["jobStatus"]["state"] in states:
            return r.json()
        assert time.monotonic() < deadline, f"{name}: {r.status_code} {r.text[:500]}"
        time.sleep(0.1)


def wait_serving(srv: Server, timeout: float = 30) -> None:
    """Until reads are answered again (the store took the commit it was retrying)."""
    deadline = time.monotonic() + timeout
    while get(srv, "/api/v2/jobs").status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.1)


def assert_unavailable(r: httpx.Response, cause: str) -> None:
    """A 503 UnavailableError saying to retry and naming ``cause``."""
    assert r.status_code == 503, (r.status_code, r.text)
    body = r.json()
    assert body["code"] == "UnavailableError", body
    assert "storage unavailable" in body["message"] and "retry" in body["message"], body
    assert cause in body["message"], body


@contextmanager
def database_lock(db: Path) -> Iterator[None]:
    """Another process holds ``BEGIN EXCLUSIVE`` on ``db`` until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         f"db = sqlite3.connect({str(db)!r}, isolation_level=None, timeout=30)\n"
         "db.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\nsys.stdin.readline()\n"
         "db.execute('ROLLBACK')\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # end of file: it rolls back and exits
        holder.wait(timeout=10)


@contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i`` on each path for the block (root writes through any mode, not through this)."""
    chattr = require_tool("chattr", "apt-get install e2fsprogs")
    done: list[Path] = []
    try:
        for path in paths:
            r = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True)
            if r.returncode != 0:
                pytest.fail(f"chattr +i {path} failed ({r.stderr.strip()}): these tests need a file system with "
                            "the immutable flag (ext4, xfs, btrfs) and CAP_LINUX_IMMUTABLE", pytrace=False)
            done.append(path)
        yield
    finally:
        for path in done:
            subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_locked_database_answers_503_naming_the_lock_and_leaves_no_phantom_job(tmp_path):
    with server(tmp_path) as srv:
        assert submit(srv, "before").status_code == 202
        wait_state(srv, "before", {"SUCCEEDED"})
        with database_lock(srv.db), ThreadPoolExecutor(3) as pool:
            started = time.monotonic()
            kept = pool.submit(submit, srv, "kept")  # its turn's commit waits on the lock
            time.sleep(1.0)
            withdrawn = pool.submit(submit, srv, "withdrawn")  # queued behind that commit
            read = pool.submit(get, srv, "/api/v2/jobs")
            answers = [kept.result(), withdrawn.result(), read.result()]
            waited = time.monotonic() - started
        assert waited < 1.0 + STALL_ANSWER_S + SLACK_S, f"callers waited {waited:.1f} s"
        for r in answers:
            assert_unavailable(r, "database is locked")
        assert "nothing was changed" in answers[1].json()["message"]
        assert "look before sending it again" in answers[0].json()["message"]

        wait_serving(srv)
        # the job in the retried commit exists once; the queued one never happened: its name is free
        assert listed(srv).count("kept") == 1
        wait_state(srv, "kept", {"SUCCEEDED"})
        assert get(srv, "/api/v2/jobs/admin~withdrawn").status_code == 404
        assert submit(srv, "withdrawn").status_code == 202
        assert submit(srv, "kept").status_code == 409  # taken, and visible
        wait_state(srv, "withdrawn", {"SUCCEEDED"})
        before_restart = listed(srv)
        assert before_restart == ["before", "kept", "withdrawn"]
        srv.stop()
        srv.start()
        assert listed(srv) == before_restart
        log = srv.log()
        assert "store commit failed (OperationalError: database is locked" in log, log[-3000:]
        assert "INSERT INTO" not in log  # the cause is logged, not the statement with users' data


def test_a_direct_store_write_under_a_lock_is_a_503_with_the_cause_and_one_log_line(tmp_path):
    """Logins write a token straight to the store (not through the loop): a locked database is a 503
    naming the lock, never a 500, and the log says so in one line, without a traceback."""
    with server(tmp_path) as srv:
        srv.add_user("erin")
        with database_lock(srv.db):
            r = httpx.post(srv.url + "/api/v2/authn/basic/login", json={"username": "erin", "password": "secret-pw"},
                           timeout=60)
        assert_unavailable(r, "database is locked")
        r = httpx.post(srv.url + "/api/v2/authn/basic/login", json={"username": "erin", "password": "secret-pw"})
        assert r.status_code == 200, r.text
        log = srv.log()
        assert "503 POST /api/v2/authn/basic/login" in log, log[-3000:]
        assert "Traceback" not in log and "INSERT INTO" not in log, log[-3000:]


def test_a_full_disk_answers_503_with_the_cause_and_the_server_lives_on(tmp_path):
    with server(tmp_path) as srv:
        assert srv.proc is not None
        pid = srv.proc.pid
        assert submit(srv, "before").status_code == 202
        wait_state(srv, "before", {"SUCCEEDED"})
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        # as `prlimit --pid PID --fsize=1:`: every write the server makes past its first byte fails
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))
        try:
            started = time.monotonic()
            r = submit(srv, "full")
            assert time.monotonic() - started < STALL_ANSWER_S + SLACK_S
            assert_unavailable(r, "no space")
            assert srv.proc.poll() is None, "the server died of its file-size limit (SIGXFSZ)"
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
        wait_serving(srv)
        assert listed(srv).count("full") == 1  # it was in the commit being retried: stored once
        wait_state(srv, "full", {"SUCCEEDED"})
        assert submit(srv, "after").status_code == 202
        wait_state(srv, "after", {"SUCCEEDED"})
        assert srv.proc.poll() is None
        log = srv.log()
        assert "store commit failed" in log and "no space" in log, log[-3000:]
        assert "store commit succeeded after" in log


def test_an_immutable_database_answers_503_and_refuses_to_start_with_a_clear_line(tmp_path):
    with server(tmp_path) as srv:
        assert submit(srv, "before").status_code == 202
        wait_state(srv, "before", {"SUCCEEDED"})
        files = [p for p in (srv.db, srv.db.with_name("pai.sqlite-wal")) if p.exists()]
        with immutable(*files):
            assert_unavailable(submit(srv, "refused"), "immutable")
            srv.stop()
            earlier = len(srv.log())
            with pytest.raises(RuntimeError, match="exited with 1"):
                srv.start()
            said = srv.log()[earlier:]  # what the refused start-up printed: one line, no traceback
            assert f"pai: the database {srv.db} cannot be written" in said, said
            assert "immutable" in said and "Traceback" not in said, said
        srv.start()
        # the refused job was never stored (the server stopped before the store took it): its name is free
        assert listed(srv) == ["before"]
        assert submit(srv, "refused").status_code == 202
        wait_state(srv, "refused", {"SUCCEEDED"})


def test_a_task_directory_that_cannot_be_made_fails_the_job_once_with_the_cause(tmp_path):
    with server(tmp_path) as srv:
        # a task already running when the fault starts: its launcher must live through the fault
        assert submit(srv, "running", ("sleep 3",)).status_code == 202
        wait_state(srv, "running", {"RUNNING"})
        tasks = srv.data_dir / "run" / "tasks"
        with immutable(tasks):
            started = time.monotonic()
            assert submit(srv, "nodir").status_code == 202
            detail = wait_state(srv, "nodir", {"FAILED", "SUCCEEDED"}, timeout=20)
            assert time.monotonic() - started < 10
        status = detail["jobStatus"]
        assert status["state"] == "FAILED", detail
        assert status["retries"] == 0, status  # failed once, not retried into the same wall
        assert status["appExitCode"] == -200, status
        assert "cannot create task directory" in status["appExitDiagnostics"], status
        assert "Operation not permitted" in status["appExitDiagnostics"], status
        [task] = detail["taskRoles"]["worker"]["taskStatuses"]
        assert "cannot create task directory" in task["containerExitDiagnostics"], task
        assert wait_state(srv, "running", {"SUCCEEDED", "FAILED"})["jobStatus"]["state"] == "SUCCEEDED"
        assert submit(srv, "after").status_code == 202  # the same launcher starts tasks again
        wait_state(srv, "after", {"SUCCEEDED"})


def test_the_store_maps_no_memory_and_the_server_ignores_sigxfsz(tmp_path):
    """A full disk must fail writes with an error, not kill the server: no mmap I/O (a SIGBUS) and
    SIGXFSZ ignored (Python's default, which the full-disk test above relies on)."""
    store = open_store(sqlite_url(tmp_path))
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == 0
    finally:
        store.close()
    code = "import signal; print(signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "True"
