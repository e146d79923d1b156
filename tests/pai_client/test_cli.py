"""The ``pai`` command line as a user runs it (``python -m pai_client.cli``, what the ``pai``
script runs), against a real server; the server's commands are handed to ``python -m pai_hub.cli``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pai_client.cli.dispatch import is_server_command
from tests.server import REPO, job_yaml


def pai(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pai_client.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=input, timeout=120)


@pytest.mark.parametrize(("argv", "server"), [
    (["server", "--port", "1"], True), (["--data-dir", "d", "user", "add", "x"], True),
    (["--url=http://x", "token", "create", "x"], True), (["simulate", "t.csv"], True),
    (["alerts", "export-rules", "-o", "f"], True), (["alerts", "--state", "all"], False),
    (["--data-dir", "server", "job", "list"], False), (["job", "logs", "server"], False), ([], False),
])
def test_which_commands_are_the_servers(argv, server):
    assert is_server_command(argv) is server


def test_server_commands_run_server_side_with_the_same_arguments():
    r = pai("alerts", "export-rules")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (REPO / "deploy/prometheus/pai-hub-alerts.yml").read_text()
    r = pai("server", "--help")
    assert r.returncode == 0 and "--simulated-gpus" in r.stdout


def test_validate_prints_ok_or_each_error_and_exits_1(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(job_yaml("ok-job", ["true"]))
    r = pai("job", "validate", str(good))
    assert (r.returncode, r.stdout.strip()) == (0, "ok")
    assert "dockerImage is applied only by backends that run containers" in r.stderr  # said once
    assert r.stderr.count("dockerImage") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(job_yaml("bad-job", ["true"]).replace("gpu: 0", "gpu: -1").replace("type: job", "type: jobz"))
    r = pai("job", "validate", str(bad))
    assert r.returncode == 1
    assert "type" in r.stderr
    assert "Traceback" not in r.stderr


def test_user_token_submit_list_status_logs_stop(server, tmp_path):
    r = pai("--data-dir", str(server.data_dir), "user", "add", "erin")
    assert r.returncode == 0, r.stderr
    r = pai("--data-dir", str(server.data_dir), "token", "create", "erin")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert len(token.split()) == 1 and len(token) > 20
    env = {"PAI_URL": server.url, "PAI_TOKEN": token}
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("cli-job", ["echo epochs=<% $parameters.epochs %>"]).replace(
        "type: job", "type: job\nparameters:\n  epochs: 1"))
    r = pai("job", "submit", str(job), "--dry-run", env=env)
    assert r.returncode == 0 and "valid: cli-job (1 tasks, 0 GPUs in default); not submitted" in r.stdout, r
    assert "cli-job" not in pai("job", "list", env=env).stdout
    r = pai("job", "submit", str(job), "--param", "epochs=5", "--wait", env=env)
    assert r.returncode == 0, r.stderr
    assert "submitted erin~cli-job" in r.stdout and "SUCCEEDED" in r.stdout
    r = pai("job", "list", env=env)
    assert "cli-job" in r.stdout and "SUCCEEDED" in r.stdout
    r = pai("job", "status", "cli-job", env=env)
    assert "erin~cli-job: SUCCEEDED" in r.stdout and "worker/0: SUCCEEDED" in r.stdout
    r = pai("job", "logs", "cli-job", "--task", "worker/0", env=env)
    assert r.stdout == "epochs=5\n"
    job.write_text(job_yaml("cli-long", ["echo started", "sleep 60"]))
    assert pai("job", "submit", str(job), env=env).returncode == 0
    follow = subprocess.Popen([sys.executable, "-m", "pai_client.cli", "job", "logs", "cli-long", "-f"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
    assert follow.stdout is not None
    assert follow.stdout.readline() == "started\n"
    r = pai("job", "stop", "cli-long", env=env)
    assert r.returncode == 0 and "stopping erin~cli-long" in r.stdout
    assert follow.wait(timeout=30) == 0
    r = pai("job", "status", "nope", env=env)
    assert r.returncode == 1 and r.stderr.startswith("pai: NoJobError")
    r = pai("job", "list", env={"PAI_URL": server.url, "PAI_TOKEN": "wrong"})
    assert r.returncode == 1 and "UnauthorizedUserError" in r.stderr
