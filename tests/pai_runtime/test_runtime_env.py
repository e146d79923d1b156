"""PAI_* environment, hashed ports (OpenPAI golden vectors), secrets rendering, foreground runner."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from pai_runtime.env import build_env, convert_name
from pai_runtime.framework import env_from_framework, format_exports
from pai_runtime.ports import hashed_ports
from pai_runtime.render import render_command
from pai_runtime.spec import TaskPeer, TaskRoleInfo, TaskSpec
from tests.server import REFERENCE

FRAMEWORK = REFERENCE / "openpai/runtime-test-data/framework.json"
GOLDEN = [
    "export PAI_PORT_LIST_taskrole_0_tcp='29877,22353,29076'",
    "export PAI_CONTAINER_HOST_PORT_LIST='tcp:29877,22353,29076;udp:31903,33486,35953;ssh:39080;http:30643;'",
    "export PAI_taskrole1_0_mpi_PORT='20966,21891'",
    "export PAI_CONTAINER_HOST_http_PORT_LIST='30643'",
    "export PAI_PORT_LIST_taskrole_0_udp='31903,33486,35953'",
    "export PAI_CONTAINER_SSH_PORT='39080'",
]


def test_golden_exports_from_openpai_framework() -> None:
    lines = format_exports(env_from_framework(FRAMEWORK.read_text(), "taskrole", 0)).splitlines()
    for expected in GOLDEN:
        assert expected in lines


def test_hashed_ports_formula() -> None:
    uid = "f1020521-9bda-11ea-830b-000d3ab25bb6"
    assert hashed_ports(uid, "tcp", 3, 20000, 40000) == [29877, 22353, 29076]
    assert all(15000 <= p < 40000 for p in hashed_ports(uid, "x", 50))


def spec(**kw) -> TaskSpec:
    base = dict(
        task_id="t", task_uid="uid-1", framework_name="bob~exp", username="bob", job_name="exp",
        virtual_cluster="vc1", task_role="ps_server", task_index=1, job_attempt_id=2, task_attempt_id=3,
        command="true", gpus=[], work_dir="/w", log_dir="/l",
        task_roles={
            "ps_server": TaskRoleInfo(instances=2, cpu=2, memory_mb=100, gpu=0, shm_mb=64,
                                      min_failed=1, min_succeeded=-1),
            "worker": TaskRoleInfo(instances=1, cpu=4, memory_mb=200, gpu=2),
        },
        peers=[
            TaskPeer("ps_server", 0, "10.0.0.1", {"http": [1000], "ssh": [1001]}),
            TaskPeer("ps_server", 1, "10.0.0.2", {"http": [2000], "ssh": [2001, 2002]}),
            TaskPeer("worker", 0, "10.0.0.3", {"http": [3000]}),
        ],
    )
    base.update(kw)
    return TaskSpec(**base)


def test_build_env() -> None:
    env = build_env(spec(checkpoint_dir="/ckpt"))
    assert convert_name("ps_Server-1") == "psserver1"
    expected = {
        "PAI_FRAMEWORK_NAME": "bob~exp", "PAI_JOB_NAME": "bob~exp", "PAI_USER_NAME": "bob",
        "PAI_USERNAME": "bob", "PAI_DEFAULT_FS_URI": "", "PAI_VIRTUAL_CLUSTER": "vc1",
        "PAI_TASK_ROLE_COUNT": "2", "PAI_TASK_ROLES_NUM": "2", "PAI_JOB_TASK_ROLE_COUNT": "2",
        "PAI_TASK_ROLE_LIST": "ps_server,worker", "PAI_JOB_TASK_ROLE_LIST": "ps_server,worker",
        "PAI_TASKS_NUM": "3", "PAI_JOB_TASK_COUNT": "3",
        "PAI_TASK_ROLE_TASK_COUNT_ps_server": "2", "PAI_RESOURCE_ps_server": "0,2,100,64",
        "PAI_RESOURCE_worker": "2,4,200,0", "PAI_MIN_FAILED_TASK_COUNT_ps_server": "1",
        "PAI_MIN_SUCCEEDED_TASK_COUNT_ps_server": "-1",
        "PAI_CURRENT_TASK_ROLE_NAME": "ps_server", "PAI_CURRENT_TASK_ROLE_CURRENT_TASK_INDEX": "1",
        "PAI_TASK_INDEX": "1",
        "PAI_HOST_IP_psserver_0": "10.0.0.1", "PAI_HOST_IP_worker_0": "10.0.0.3",
        "PAI_PORT_LIST_psserver_1_ssh": "2001,2002", "PAI_psserver_1_ssh_PORT": "2001,2002",
        "PAI_TASK_ROLE_psserver_HOST_LIST": "10.0.0.1:1000,10.0.0.2:2000",
        "PAI_TASK_ROLE_worker_HOST_LIST": "10.0.0.3:3000",
        "PAI_TASK_ROLE_INSTANCES": "psserver:0,psserver:1,worker:0",
        "PAI_CURRENT_CONTAINER_IP": "10.0.0.2", "PAI_CONTAINER_HOST_IP": "10.0.0.2",
        "PAI_CURRENT_CONTAINER_PORT": "2000", "PAI_CONTAINER_HOST_PORT": "2000",
        "PAI_CONTAINER_SSH_PORT": "2001", "PAI_CONTAINER_HOST_ssh_PORT_LIST": "2001,2002",
        "PAI_CONTAINER_HOST_PORT_LIST": "http:2000;ssh:2001,2002;", "PAI_WORK_DIR": "/w",
        "FC_TASKROLE_NAME": "psserver", "FC_TASK_INDEX": "1", "FC_FRAMEWORK_ATTEMPT_ID": "2",
        "FC_TASK_ATTEMPT_ID": "3", "FC_POD_UID": "uid-1", "PAI_CHECKPOINT_DIR": "/ckpt",
        "NVIDIA_VISIBLE_DEVICES": "none", "CUDA_VISIBLE_DEVICES": "",
    }
    for key, value in expected.items():
        assert env[key] == value, key
    fc = hashlib.md5(b"bob~exp").hexdigest()
    assert env["FC_FRAMEWORK_NAME"] == fc and env["FC_FRAMEWORK_NAMESPACE"] == "default"
    assert env["FC_CONFIGMAP_NAME"] == f"{fc}-attempt" and env["FC_POD_NAME"] == f"{fc}-psserver-1"
    assert env["FC_TASK_ATTEMPT_INSTANCE_UID"] == "3_uid-1"
    assert env["FC_FRAMEWORK_ATTEMPT_INSTANCE_UID"] == f"2_{env['FC_CONFIGMAP_UID']}"
    assert env["RUNTIME_LOG_PIPE"] == "/l/runtime.log"
    # every variable of notes §4.4 that applies outside Kubernetes' init container
    for name in ("PAI_FRAMEWORK_NAME", "PAI_JOB_NAME", "PAI_USER_NAME", "PAI_USERNAME", "PAI_DEFAULT_FS_URI",
                 "PAI_VIRTUAL_CLUSTER", "PAI_TASK_ROLE_COUNT", "PAI_TASK_ROLES_NUM", "PAI_JOB_TASK_ROLE_COUNT",
                 "PAI_TASK_ROLE_LIST", "PAI_JOB_TASK_ROLE_LIST", "PAI_TASKS_NUM", "PAI_JOB_TASK_COUNT",
                 "PAI_CURRENT_TASK_ROLE_NAME", "PAI_CURRENT_TASK_ROLE_CURRENT_TASK_INDEX", "PAI_TASK_INDEX",
                 "FC_FRAMEWORK_NAMESPACE", "FC_FRAMEWORK_NAME", "FC_TASKROLE_NAME", "FC_TASK_INDEX",
                 "FC_CONFIGMAP_NAME", "FC_POD_NAME", "FC_FRAMEWORK_ATTEMPT_ID", "FC_FRAMEWORK_ATTEMPT_INSTANCE_UID",
                 "FC_CONFIGMAP_UID", "FC_TASK_ATTEMPT_ID", "FC_POD_UID", "FC_TASK_ATTEMPT_INSTANCE_UID",
                 "PAI_TASK_ROLE_INSTANCES", "PAI_CURRENT_CONTAINER_IP", "PAI_CONTAINER_HOST_IP",
                 "PAI_CURRENT_CONTAINER_PORT", "PAI_CONTAINER_HOST_PORT", "PAI_CONTAINER_SSH_PORT",
                 "PAI_CONTAINER_HOST_PORT_LIST", "PAI_WORK_DIR", "RUNTIME_LOG_PIPE"):
        assert name in env, name
    gpu_env = build_env(spec(task_role="worker", task_index=0, gpus=[1, 3]))
    assert gpu_env["CUDA_VISIBLE_DEVICES"] == "1,3"
    assert "NVIDIA_VISIBLE_DEVICES" not in gpu_env


def test_own_ports_hashed_when_missing() -> None:
    s = spec(task_role="worker", task_index=0, peers=[TaskPeer("worker", 0, "1.2.3.4")])
    s.task_roles["worker"].ports = {"http": 1, "ssh": 2}
    env = build_env(s)
    assert env["PAI_CONTAINER_SSH_PORT"] == str(hashed_ports("uid-1", "ssh", 2)[0])
    assert env["PAI_CONTAINER_HOST_PORT_LIST"].startswith("http:")


def test_render_command() -> None:
    secrets = {"time": 10, "list": [10, 20], "nested": {"date": {"days": [1, 2]}}}
    assert render_command("sleep <% $secrets.time %>", secrets) == "sleep 10"
    assert render_command("<% $secrets.list[1] %>-<%$secrets.list.0%>", secrets) == "20-10"
    assert render_command("<% $secrets.nested.date.days.1 %>", secrets) == "2"
    assert render_command("echo [<% $secrets.missing %>]", secrets) == "echo []"  # as OpenPAI's runtime
    assert render_command("echo [<% $secrets.missing %>]", None) == "echo []"


def test_foreground_runner(tmp_path: Path) -> None:
    task_dir = tmp_path / "task-1"
    task_dir.mkdir()
    s = spec(command="echo $PAI_TASK_INDEX <% $secrets.word %>; exit 4", secrets={"word": "hi"},
             work_dir="", log_dir="")
    (task_dir / "spec.json").write_text(json.dumps(s.to_json_dict()))
    proc = subprocess.run([sys.executable, "-m", "pai_runtime", str(task_dir)], timeout=30)
    assert proc.returncode == 4
    record = json.loads((task_dir / "exit.json").read_text())
    assert record["exitCode"] == 4 and record["startedAt"] <= record["finishedAt"]
    assert (task_dir / "logs" / "stdout").read_text() == "1 hi\n"
    pids = json.loads((task_dir / "pid.json").read_text())
    assert pids["pgid"] == pids["taskPid"]


def test_runtime_failure_is_recorded(tmp_path: Path) -> None:
    task_dir = tmp_path / "bad"
    task_dir.mkdir()
    (task_dir / "spec.json").write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "pai_runtime", str(task_dir)], timeout=30)
    assert proc.returncode == 255
    record = json.loads((task_dir / "exit.json").read_text())
    assert record["exitCode"] == 256 and "error" in record
