"""kill -9 of the control plane while 20 jobs run, then restart: every job ends right, exactly once."""

from __future__ import annotations

import time

import pytest

from tests.server import Server, job_yaml, wait_state


@pytest.fixture()
def crashable(tmp_path):
    srv = Server(tmp_path / "data", args=("--simulated-gpus", "4", "--node-cpu", "64"))
    srv.data_dir.mkdir()
    yield srv
    srv.stop()
    srv.kill_tasks()


def test_kill_9_while_20_jobs_run_then_restart(crashable, tmp_path):
    srv = crashable.start()
    marks = tmp_path / "marks"
    marks.mkdir()
    expected = {}
    with srv.client() as c:
        for i in range(20):
            code = 0 if i % 3 else 7
            expected[f"admin~crash-{i}"] = ("SUCCEEDED", 0) if code == 0 else ("FAILED", code)
            # short jobs end while the server is down, longer ones after it is back
            cmds = [f"sleep {0.5 + (i % 4) * 0.7}", f"echo $PAI_JOB_NAME >> {marks}/$PAI_JOB_NAME", f"exit {code}"]
            r = c.post("/api/v2/jobs", content=job_yaml(f"crash-{i}", cmds, gpu=1 if i < 4 else 0))
            assert r.status_code == 202, r.text
        for name in list(expected)[:4]:
            wait_state(c, name, {"RUNNING"})
    srv.kill()  # SIGKILL: no cleanup, no goodbye
    time.sleep(1.5)  # the workload: the short jobs end while the server is down
    srv.start()
    with srv.client() as c:
        for name, (state, code) in expected.items():
            detail = wait_state(c, name, {"SUCCEEDED", "FAILED", "STOPPED"}, timeout=60)
            assert (detail["jobStatus"]["state"], detail["jobStatus"]["appExitCode"]) == (state, code), name
            assert detail["jobStatus"]["retries"] == 0, name
            finals = [e for e in c.get(f"/api/v2/jobs/{name}/events").json()["data"]
                      if e["reason"] in ("JobSucceeded", "JobFailed")]
            assert len(finals) == 1, (name, finals)
    for name in expected:
        assert (marks / name).read_text().splitlines() == [name], f"{name} ran more than once"
    # GPUs were given back: a job needing all 4 runs now
    with srv.client() as c:
        assert c.post("/api/v2/jobs", content=job_yaml("after", ["true"], gpu=4)).status_code == 202
        assert wait_state(c, "admin~after", {"SUCCEEDED", "FAILED"})["jobStatus"]["state"] == "SUCCEEDED"
