"""Shared fixtures: a realistic TaskSpec dict, as the orchestrator's SpecBuilder produces it."""

from __future__ import annotations

from typing import Any

import pytest

from pai_runtime.spec import TaskPeer, TaskRoleInfo, TaskSpec


def make_spec(task_role: str = "worker", task_index: int = 0, command: str = "echo hi",
              framework: str = "alice~mnist_v2", gpu: int = 2) -> dict[str, Any]:
    spec = TaskSpec(
        task_id=f"7.0.{task_role}.{task_index}.0", task_uid="0f" * 16, framework_name=framework,
        username="alice", job_name="mnist_v2", virtual_cluster="default", task_role=task_role,
        task_index=task_index, job_attempt_id=0, task_attempt_id=0, command=command, gpus=[4, 5],
        work_dir="", log_dir="",
        task_roles={"worker": TaskRoleInfo(instances=2, cpu=4, memory_mb=8192, gpu=gpu, shm_mb=512,
                                           ports={"ssh": 1, "http": 2}),
                    "ps_server": TaskRoleInfo(instances=1, cpu=2, memory_mb=4096, gpu=0)},
        peers=[TaskPeer("worker", 0, "10.0.0.1", {"ssh": [15001], "http": [15002, 15003]}),
               TaskPeer("worker", 1, "10.0.0.2", {"ssh": [16001], "http": [16002, 16003]}),
               TaskPeer("ps_server", 0, "10.0.0.1", {})],
        secrets={"token": "s3cret"}, env={"FOO": "bar"},
        checkpoint_dir="/var/lib/pai-hub/checkpoints/alice/mnist_v2",
    )
    return spec.to_json_dict()


@pytest.fixture
def spec() -> dict[str, Any]:
    return make_spec()
