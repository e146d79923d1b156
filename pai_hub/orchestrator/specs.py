"""Turn a placed task into the runtime's task spec (:class:`pai_runtime.spec.TaskSpec`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pai_runtime.spec import TaskPeer, TaskRoleInfo, TaskSpec

from ..protocol.prerequisites import plugin_invocations
from .records import JobRecord, TaskRecord


def checkpoint_dir(root: Path, job: JobRecord) -> Path:
    """A job's persistent directory: the same for every attempt of every task, so a retry can resume."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", job.name)
    if safe.startswith(".") or not safe:  # never "..", "." or a hidden name: the user's directory it stays
        safe = "_" + safe[1:]
    return root / job.username / safe


@dataclass(frozen=True)
class SpecBuilder:
    """Builds specs with what the cluster configures: where checkpoints live, which rules file
    classifies failures (None: the runtime's built-in OpenPAI exit spec)."""

    checkpoint_root: Path | None = None
    exit_spec: str | None = None

    def __call__(self, job: JobRecord, plan: Any, task: TaskRecord, tasks: list[TaskRecord]) -> dict[str, Any]:
        return build_task_spec(job, plan, task, tasks, self.checkpoint_root, self.exit_spec)


def build_task_spec(job: JobRecord, plan: Any, task: TaskRecord, tasks: list[TaskRecord],
                    checkpoint_root: Path | None = None, exit_spec: str | None = None) -> dict[str, Any]:
    """Everything the runtime needs, including every peer's address for the PAI_* environment."""
    role = plan.task_roles[task.role]
    spec = TaskSpec(
        task_id=task.task_id,
        task_uid=task.task_uid,
        framework_name=job.framework_name,
        username=job.username,
        job_name=job.name,
        virtual_cluster=job.virtual_cluster,
        task_role=task.role,
        task_index=task.task_index,
        job_attempt_id=task.job_attempt_id,
        task_attempt_id=task.attempt_id,
        command=role.entrypoint,
        gpus=list(task.gpus),
        work_dir="",
        log_dir="",
        task_roles={
            r.name: TaskRoleInfo(
                instances=r.instances, cpu=r.cpu, memory_mb=r.memory_mb, gpu=r.gpu, shm_mb=r.shm_mb,
                ports=dict(r.ports), min_failed=r.min_failed, min_succeeded=r.min_succeeded,
            )
            for r in plan.task_roles.values()
        },
        peers=[TaskPeer(t.role, t.task_index, t.ip, {k: list(v) for k, v in t.ports.items()}) for t in tasks],
        secrets=dict(job.secrets or {}),
        checkpoint_dir=str(checkpoint_dir(checkpoint_root, job)) if checkpoint_root else None,
        plugins=plugin_invocations(plan.protocol, task.role),
        exit_spec=exit_spec,
    )
    return spec.to_json_dict()
