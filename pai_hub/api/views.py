"""OpenPAI's JSON shapes for jobs, tasks and events (notes/openpai.md §2.3), from our records."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime, timezone
from typing import Any

from ..orchestrator.records import (
    EXIT_STOP_REQUESTED,
    FAILED,
    TERMINAL,
    JobAttemptRecord,
    JobRecord,
    TaskRecord,
)


def ms(t: float | None) -> int | None:
    return int(t * 1000) if t is not None else None


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def fc_role_name(role: str) -> str:
    """FrameworkController's task-role name: lowercase alphanumerics (``ps_server`` → ``psserver``)."""
    return re.sub(r"[^a-z0-9]", "", role.lower())


def debug_id(framework_name: str) -> str:
    return hashlib.md5(framework_name.encode()).hexdigest()


def waiting_reason(job: JobRecord) -> str | None:
    """Why the job waits, while it can still wait: an ended job's last reason is stale."""
    return None if job.state in TERMINAL else job.waiting_reason


def job_summary(job: JobRecord) -> dict[str, Any]:
    return {
        "debugId": debug_id(job.framework_name),
        "name": job.name,
        "username": job.username,
        "state": job.state,
        "subState": job.sub_state,
        "executionType": job.execution_type,
        "tags": list(job.tags),
        "retries": job.retries,
        "retryDetails": {"user": job.retries_user, "platform": job.retries_platform, "resource": 0},
        "retryDelayTime": 0,
        "submissionTime": ms(job.submitted_at),
        "createdTime": ms(job.submitted_at),
        "launchedTime": ms(job.launched_at or job.completed_at),
        "completedTime": ms(job.completed_at),
        "appExitCode": job.exit_code,
        "virtualCluster": job.virtual_cluster,
        "totalGpuNumber": job.total_gpu,
        "totalTaskNumber": job.total_tasks,
        "totalTaskRoleNumber": job.total_task_roles,
        "jobPriority": job.job_priority,
        "waitingReason": waiting_reason(job),
    }


SPEC_FIELDS = ("exitCode", "phrase", "type", "behavior", "reaction", "reason", "solution")


def exit_spec(info: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenPAI's ``*ExitSpec`` object from the runtime's failure analysis (``code`` is the spec's)."""
    if not info:
        return None
    spec = {k: info.get(k) for k in SPEC_FIELDS}
    spec["code"] = spec.pop("exitCode")
    return spec


def log_uri(job: JobRecord, task: TaskRecord, prefix: str = "/api/v2") -> str:
    return (f"{prefix}/jobs/{job.framework_name}/attempts/{task.job_attempt_id}/taskRoles/{task.role}"
            f"/taskIndex/{task.task_index}/attempts/{task.attempt_id}/logs")


def task_attempt_view(job: JobRecord, task: TaskRecord) -> dict[str, Any]:
    return {
        "attemptId": task.attempt_id,
        "attemptState": task.state,
        "currentAttemptCreatedTime": ms(task.created_at),
        "currentAttemptLaunchedTime": ms(task.launched_at),
        "currentAttemptCompletedTime": ms(task.completed_at),
        "containerId": task.task_uid,
        "containerIp": task.ip,
        "containerNodeName": task.node,
        "containerPorts": {k: ",".join(map(str, v)) for k, v in task.ports.items()},
        "containerGpus": ",".join(map(str, task.gpus)) if task.gpus else None,
        "containerLog": log_uri(job, task),
        "containerExitCode": task.exit_code,
        "containerExitSpec": exit_spec(task.exit_info),
        "containerExitDiagnostics": task.exit_diagnostics,
    }


def task_status(job: JobRecord, task: TaskRecord, now: float | None = None) -> dict[str, Any]:
    debugging = task.debug_until is not None and task.debug_until > (now or time.time())
    return {
        "subState": "DEBUGGING" if debugging else None,
        "debugUntil": ms(task.debug_until) if debugging else None,
        "taskIndex": task.task_index,
        "taskUid": task.task_uid,
        "taskState": task.state,
        "retries": task.retries,
        "accountableRetries": task.accountable_retries,
        "createdTime": ms(task.created_at),
        "launchedTime": ms(task.launched_at or task.completed_at),
        "completedTime": ms(task.completed_at),
        **task_attempt_view(job, task),
    }


def job_detail(job: JobRecord, attempt: JobAttemptRecord | None, tasks: list[TaskRecord]) -> dict[str, Any]:
    roles: dict[str, Any] = {}
    order = list(job.protocol.get("taskRoles", {}))
    for task in sorted(tasks, key=lambda t: (order.index(t.role) if t.role in order else 0, t.task_index)):
        entry = roles.setdefault(fc_role_name(task.role), {"taskRoleStatus": {"name": task.role},
                                                           "taskStatuses": []})
        entry["taskStatuses"].append(task_status(job, task))
    trigger = job.exit_trigger or {}
    exit_type = None
    if job.state == "SUCCEEDED":
        exit_type = "Succeeded"
    elif job.state in (FAILED, "STOPPED"):
        exit_type = "Failed"
    status = {
        "username": job.username,
        "state": job.state,
        "subState": job.sub_state,
        "executionType": job.execution_type,
        "retries": job.retries,
        "retryDetails": {"user": job.retries_user, "platform": job.retries_platform, "resource": 0},
        "retryDelayTime": 0,
        "createdTime": ms(job.submitted_at),
        "launchedTime": ms(job.launched_at or job.completed_at),
        "completedTime": ms(job.completed_at),
        "submissionTime": ms(job.submitted_at),
        "attemptId": job.attempt_id,
        "attemptState": attempt.state if attempt else job.state,
        "appId": f"{debug_id(job.framework_name)}-{job.attempt_id}",
        "appProgress": 1 if job.completed_at else 0,
        "appTrackingUrl": "",
        "appCreatedTime": ms(attempt.created_at) if attempt else None,
        "appLaunchedTime": ms(attempt.launched_at) if attempt else None,
        "appCompletedTime": ms(attempt.completed_at) if attempt else None,
        "appExitCode": job.exit_code,
        "appExitSpec": exit_spec(job.exit_info),
        "appExitDiagnostics": job.exit_diagnostics,
        "appExitMessages": {"container": None, "runtime": job.exit_info, "launcher": None} if job.exit_info else None,
        "appExitTriggerMessage": "stop requested" if job.exit_code == EXIT_STOP_REQUESTED else None,
        "appExitTriggerTaskRoleName": trigger.get("taskRole"),
        "appExitTriggerTaskIndex": trigger.get("taskIndex"),
        "appExitType": exit_type,
        "virtualCluster": job.virtual_cluster,
        "waitingReason": waiting_reason(job),
        "debugReservation": debug_view(tasks),
    }
    detail = {"debugId": debug_id(job.framework_name), "name": job.name, "tags": list(job.tags),
              "jobStatus": status, "taskRoles": roles}
    tensorboard = tensorboard_view(job, tasks)
    if tensorboard is not None:
        detail["tensorBoard"] = tensorboard
    detail["jobPriority"] = job.job_priority  # null: the job asked for none (OpenPAI's "default")
    return detail


def tensorboard_view(job: JobRecord, tasks: list[TaskRecord]) -> dict[str, Any] | None:
    """Where the ``tensorboard`` runtime plugin serves, if the job uses it: task 0 of the first
    role, on the plugin's ``port``, else the task's ``tensorboard`` port, else its ``http`` port."""
    extras = job.protocol.get("extras") or {}
    plugins = [p for p in extras.get("com.microsoft.pai.runtimeplugin") or [] if isinstance(p, dict)
               and p.get("plugin") == "tensorboard"]
    plugins += [p for p in job.protocol.get("prerequisites") or []
                if isinstance(p, dict) and str(p.get("plugin", "")).endswith("runtimeplugin.tensorboard")]
    if not plugins:
        return None
    first = next(iter(job.protocol.get("taskRoles") or {}), None)
    task = next((t for t in tasks if t.role == first and t.task_index == 0), None)
    if task is None or not task.ip:
        return {"url": None}
    params = plugins[0].get("parameters") or {}
    port = params.get("port") or (task.ports.get("tensorboard") or task.ports.get("http") or [None])[0]
    return {"url": f"http://{task.ip}:{port}" if port else None, "taskRole": first, "taskIndex": 0}


def debug_view(tasks: list[TaskRecord], now: float | None = None) -> dict[str, Any] | None:
    """The tasks kept for debugging and until when, or None."""
    now = now or time.time()
    kept = [t for t in tasks if t.debug_until is not None and t.debug_until > now]
    if not kept:
        return None
    return {"until": ms(max(t.debug_until or 0 for t in kept)),
            "tasks": [{"taskRole": t.role, "taskIndex": t.task_index, "node": t.node,
                       "gpus": list(t.gpus), "until": ms(t.debug_until)} for t in kept]}


def event_view(job: JobRecord, ev: dict[str, Any], roles: dict[str, str]) -> dict[str, Any]:
    """One event in OpenPAI's shape; ``roles`` maps task ids to their ``role/index``. ``podUid`` is the
    task attempt's id (what a pod's uid was in OpenPAI; "" for the job's own events) and ``sourceHost``
    stays null: the platform, not a node's kubelet, reports every event."""
    task = roles.get(ev.get("task_id") or "", "")
    role, _, index = task.partition("/")
    return {
        "uid": str(ev["id"]),
        "frameworkName": job.framework_name,
        "podUid": ev.get("task_id") or "",
        "taskroleName": role or None,
        "taskName": ev.get("task_id"),
        "taskIndex": int(index) if index else None,
        "type": ev["type"],
        "reason": ev["reason"],
        "message": ev["message"],
        "firstTimestamp": iso(ev["timestamp"]),
        "lastTimestamp": iso(ev["timestamp"]),
        "count": 1,
        "sourceComponent": "pai-hub",
        "sourceHost": None,
    }
