"""The full runtime through the real server: prerequisites and callbacks, failure analysis driving
retries, checkpoints, debug reservation with a shell in the failed task."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

import pytest

from tests.server import Server, job_yaml, make_private, wait_state
from tests.terminal import shell_session


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("rt")
    rules = base / "exit-spec.yaml"
    rules.write_text(subprocess.run([sys.executable, "-m", "pai_runtime.exitspec", "dump"], check=True,
                                    capture_output=True, text=True).stdout)
    server = Server(base / "data", args=("--simulated-gpus", "2", "--node-cpu", "16"))
    server.data_dir.mkdir()
    (server.data_dir / "pai_config.py").write_text(f"c.PaiHub.exit_spec_file = {str(rules)!r}\n")
    make_private(server.data_dir)  # the server refuses a data directory others can read
    server.start()
    server.rules = rules
    yield server
    server.stop()
    server.kill_tasks()


def callbacks_job(name: str, marks: str, command: str) -> str:
    return f"""protocolVersion: 2
name: {name}
type: job
prerequisites:
  - {{name: image, type: dockerimage, uri: "python:3.11"}}
  - name: base
    type: script
    plugin: com.microsoft.pai.runtimeplugin.cmd
    callbacks:
      - {{event: containerStart, commands: ["echo base-start >> {marks}"]}}
      - {{event: containerExit, commands: ["echo base-exit >> {marks}"]}}
  - name: data
    type: data
    plugin: com.microsoft.pai.runtimeplugin.cmd
    require: [base]
    callbacks:
      - {{event: containerStart, commands: ["echo data-start >> {marks}"]}}
      - {{event: containerExit, commands: ["echo data-exit >> {marks}"]}}
taskRoles:
  main:
    instances: 1
    dockerImage: image
    prerequisites: [data]
    resourcePerInstance: {{cpu: 1, memoryMB: 256, gpu: 0}}
    commands: ["echo command >> {marks}", {json.dumps(command)}]
"""


@pytest.mark.parametrize(("case", "command", "final"), [
    ("ok", "true", "SUCCEEDED"), ("fail", "exit 4", "FAILED"), ("stop", "sleep 60", "STOPPED")])
def test_callbacks_run_in_require_order_on_success_failure_and_stop(srv, tmp_path, case, command, final):
    marks = tmp_path / "marks"
    with srv.client() as c:
        r = c.post("/api/v2/jobs", content=callbacks_job(f"cb-{case}", str(marks), command))
        assert r.status_code == 202, r.text
        if case == "stop":
            wait_state(c, f"admin~cb-{case}", {"RUNNING"})
            deadline = time.monotonic() + 10
            while "command" not in (marks.read_text() if marks.exists() else "") and time.monotonic() < deadline:
                time.sleep(0.05)
            c.put(f"/api/v2/jobs/admin~cb-{case}/executionType", json={"value": "STOP"})
        assert wait_state(c, f"admin~cb-{case}", {"SUCCEEDED", "FAILED", "STOPPED"})["jobStatus"]["state"] == final
    assert marks.read_text().split() == ["base-start", "data-start", "command", "data-exit", "base-exit"]


def test_require_cycle_is_rejected_with_its_path(srv):
    text = callbacks_job("cyclic", "/dev/null", "true").replace(
        "    type: script\n    plugin", "    type: script\n    require: [data]\n    plugin")
    with srv.client() as c:
        r = c.post("/api/v2/jobs", content=text)
    assert r.status_code == 400 and "cycle" in r.json()["message"]
    assert "base -> data -> base" in r.json()["message"] or "data -> base -> data" in r.json()["message"]


def test_syntax_error_is_never_retried_and_is_explained(srv):
    extra = "jobRetryCount: 3\nextras:\n  gangAllocation: false"
    text = job_yaml("syntax", ["python3 -c 'print(1'"], extra=extra).replace(
        "    dockerImage: image", "    dockerImage: image\n    taskRetryCount: 5")
    with srv.client() as c:
        assert c.post("/api/v2/jobs", content=text).status_code == 202
        status = wait_state(c, "admin~syntax", {"FAILED", "SUCCEEDED"})["jobStatus"]
    assert status["state"] == "FAILED" and status["retries"] == 0
    assert status["appExitSpec"]["phrase"] == "ContainerSyntaxError"
    assert status["appExitSpec"]["behavior"] == "PERMANENT" and status["appExitSpec"]["type"] == "USER_FAILURE"
    assert status["appExitMessages"]["runtime"]["originUserExitCode"] == 1
    r = subprocess.run([sys.executable, "-m", "pai_hub.cli", "--url", srv.url, f"--token={srv.admin_token}",
                        "job", "status", "syntax"], capture_output=True, text=True)
    assert "failure: ContainerSyntaxError" in r.stdout and "fix:" in r.stdout


def test_transient_platform_failure_is_retried_and_the_retry_finds_its_checkpoint(srv):
    cmds = ['if [ ! -f "$PAI_CHECKPOINT_DIR/step" ]; then echo 41 > "$PAI_CHECKPOINT_DIR/step"; kill -9 $$; fi',
            'test "$(cat "$PAI_CHECKPOINT_DIR/step")" = 41']
    with srv.client() as c:
        assert c.post("/api/v2/jobs", content=job_yaml("resume", cmds)).status_code == 202
        status = wait_state(c, "admin~resume", {"FAILED", "SUCCEEDED"}, timeout=60)["jobStatus"]
        assert status["state"] == "SUCCEEDED", status
        assert status["retryDetails"] == {"user": 0, "platform": 1, "resource": 0}
        first = c.get("/api/v2/jobs/admin~resume/attempts/0").json()
        spec = first["taskRoles"]["worker"]["taskStatuses"][0]["containerExitSpec"]
        assert spec["phrase"] == "ContainerSigKillReceived" and spec["behavior"] == "TRANSIENT"


def test_a_rule_edit_applies_to_the_next_failure_without_restart(srv):
    with srv.client() as c:
        assert c.post("/api/v2/jobs", content=job_yaml("meltdown-1", ["echo FLUX CAPACITOR MELTDOWN", "exit 3"])
                      ).status_code == 202
        before = wait_state(c, "admin~meltdown-1", {"FAILED"})["jobStatus"]["appExitSpec"]
        assert before["code"] == 255  # nothing matches: PAIRuntimeUnknownFailed
        text = srv.rules.read_text()
        marker = "    runtimeContainerPatterns:\n"
        i = text.index("phrase: ContainerCudaVersionMismatch")
        j = text.index(marker, i) + len(marker)
        srv.rules.write_text(text[:j] + "    - userLogRegex: 'FLUX CAPACITOR MELTDOWN'\n" + text[j:])
        assert c.post("/api/v2/jobs", content=job_yaml("meltdown-2", ["echo FLUX CAPACITOR MELTDOWN", "exit 3"])
                      ).status_code == 202
        after = wait_state(c, "admin~meltdown-2", {"FAILED"})["jobStatus"]["appExitSpec"]
        assert after["phrase"] == "ContainerCudaVersionMismatch"


def test_debug_reservation_keeps_the_gpu_and_gives_a_shell_in_the_failed_task(srv):
    host = socket.gethostname()
    extra = "extras:\n  debugReservation: {minutes: 10}"
    with srv.client() as c:
        text = job_yaml("broken", ["echo working in $PWD", "exit 2"], gpu=1, extra=extra)
        assert c.post("/api/v2/jobs", content=text).status_code == 202
        detail = wait_state(c, "admin~broken", {"FAILED"})
        task = detail["taskRoles"]["worker"]["taskStatuses"][0]
        assert task["subState"] == "DEBUGGING" and task["debugUntil"] > time.time() * 1000
        gpu = task["containerGpus"]
        assert detail["jobStatus"]["debugReservation"]["tasks"][0]["taskRole"] == "worker"
        # the GPU is still the job's: a job needing both GPUs waits
        assert c.post("/api/v2/jobs", content=job_yaml("both", ["true"], gpu=2)).status_code == 202
        nodes = c.get("/api/v2/cluster/nodes").json()
        assert [g["job"] for g in nodes[0]["gpus"] if g["used"]] == ["admin~broken"]
        # the shell sees the task's GPUs, environment and working directory
        url = srv.url.replace("http", "ws", 1) + "/api/v2/jobs/admin~broken/tasks/worker/0/terminal"
        out = asyncio.run(shell_session(url, {"Authorization": f"Bearer {srv.admin_token}"},
                                 "echo GPUS=$CUDA_VISIBLE_DEVICES ROLE=$PAI_CURRENT_TASK_ROLE_NAME; pwd; exit\n"))
        assert f"GPUS={gpu} ROLE=worker" in out
        log = c.get(task["containerLog"] + "/stdout").text
        assert log.split("working in ")[1].strip() in out
        # another user may not open it
        other = srv.add_user("mallory")
        r = subprocess.run([sys.executable, "-m", "pai_hub.cli", "--url", srv.url, f"--token={other}",
                            "job", "debug", "admin~broken"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert r.returncode == 1 and "NoJobError" in r.stderr
        # release: the GPU is free and the waiting job runs
        r = subprocess.run([sys.executable, "-m", "pai_hub.cli", "--url", srv.url, f"--token={srv.admin_token}",
                            "job", "release", "broken"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert wait_state(c, "admin~both", {"SUCCEEDED", "FAILED"})["jobStatus"]["state"] == "SUCCEEDED"
        assert c.get("/api/v2/jobs/admin~broken/debug").status_code == 404
        del host


def test_debug_reservation_expires_and_frees_the_gpu(srv):
    extra = "extras:\n  debugReservation: {minutes: 0.03}"
    with srv.client() as c:
        assert c.post("/api/v2/jobs", content=job_yaml("brief", ["exit 2"], gpu=2, extra=extra)).status_code == 202
        wait_state(c, "admin~brief", {"FAILED"})
        assert c.get("/api/v2/jobs/admin~brief/debug").status_code == 200
        assert c.post("/api/v2/jobs", content=job_yaml("next", ["true"], gpu=2)).status_code == 202
        assert wait_state(c, "admin~next", {"SUCCEEDED"}, timeout=30)
        events = [e["reason"] for e in c.get("/api/v2/jobs/admin~brief/events").json()["data"]]
        assert "DebugReservationEnded" in events


def test_tensorboard_plugin_is_linked_from_job_detail(srv):
    extra = ('extras:\n  com.microsoft.pai.runtimeplugin:\n    - plugin: tensorboard\n'
             '      parameters: {logdir: {path: /tmp}}')
    with srv.client() as c:
        assert c.post("/api/v2/jobs", content=job_yaml("tb", ["sleep 30"], extra=extra)).status_code == 202
        detail = wait_state(c, "admin~tb", {"RUNNING"})
        task = detail["taskRoles"]["worker"]["taskStatuses"][0]
        assert detail["tensorBoard"] == {"url": f"http://127.0.0.1:{task['containerPorts']['http']}",
                                         "taskRole": "worker", "taskIndex": 0}
        c.put("/api/v2/jobs/admin~tb/executionType", json={"value": "STOP"})
        wait_state(c, "admin~tb", {"STOPPED"})
