"""Turn a placed task into the runtime's task spec (:class:`pai_runtime.spec.TaskSpec`)."""

from __future__ import annotations

from typing import Any

from pai_runtime.spec import TaskPeer, TaskRoleInfo, TaskSpec

from .records import JobRecord, TaskRecord


def build_task_spec(job: JobRecord, plan: Any, task: TaskRecord, tasks: list[TaskRecord]) -> dict[str, Any]:
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
    )
    return spec.to_json_dict()
