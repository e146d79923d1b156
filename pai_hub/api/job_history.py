"""Job attempts as OpenPAI's job-history service served them (REST v2 #26–#28, deprecated there).

``GET /jobs/{fw}/job-attempts`` lists every attempt of a job, the latest first, then the earlier
ones oldest first (OpenPAI's order); ``/job-attempts/{attemptIndex}`` is one of them;
``/job-attempts/healthz`` answers ``ok`` (the history is always kept here: the store has every
attempt and task attempt). Each attempt carries its tasks as the job detail does.
"""

from __future__ import annotations

from typing import Any

from ..orchestrator.records import JobAttemptRecord, JobRecord, TaskRecord
from ..store import jobs as job_store
from . import views
from .base import parse_int
from .errors import ApiError
from .jobs import JobAccess

EXIT_TYPES = {"SUCCEEDED": "Succeeded", "FAILED": "Failed", "STOPPED": "Failed"}


def attempt_view(job: JobRecord, attempt: JobAttemptRecord, tasks: list[TaskRecord], latest: bool) -> dict[str, Any]:
    """One attempt in the shape of OpenPAI's ``JobAttempt``. The job's own exit fields describe its
    latest attempt; an earlier one is described by its first failed task (the trigger)."""
    trigger = next((t for t in sorted(tasks, key=lambda t: t.completed_at or 0)
                    if t.exit_code not in (None, 0)), None)
    if latest:
        info, diagnostics, exit_code = job.exit_info, job.exit_diagnostics, job.exit_code
        role, index = (job.exit_trigger or {}).get("taskRole"), (job.exit_trigger or {}).get("taskIndex")
    else:
        info = trigger.exit_info if trigger else None
        diagnostics = trigger.exit_diagnostics if trigger else None
        exit_code = attempt.exit_code
        role, index = (trigger.role, trigger.task_index) if trigger else (None, None)
    spec = views.exit_spec(info)
    roles: dict[str, Any] = {}
    for task in sorted(tasks, key=lambda t: (t.role, t.task_index)):
        entry = roles.setdefault(views.fc_role_name(task.role), {"taskRoleStatus": {"name": task.role},
                                                                 "taskStatuses": []})
        entry["taskStatuses"].append(views.task_status(job, task))
    state = str(attempt.state)
    return {
        "jobName": job.name,
        "frameworkName": job.framework_name,
        "uid": f"{views.debug_id(job.framework_name)}-{attempt.attempt_id}",
        "userName": job.username,
        "state": state,
        "originState": job.sub_state if latest else "AttemptCompleted",
        "attemptIndex": attempt.attempt_id,
        "jobStartedTime": views.ms(job.submitted_at),
        "attemptStartedTime": views.ms(attempt.launched_at or attempt.created_at),
        "attemptCompletedTime": views.ms(attempt.completed_at),
        "exitCode": exit_code,
        "exitPhrase": spec["phrase"] if spec else None,
        "exitType": EXIT_TYPES.get(state),
        "exitDiagnostics": {"diagnosticsSummary": diagnostics or "", "runtime": None,
                            "launcher": diagnostics or ""} if exit_code is not None else None,
        "appExitTriggerMessage": diagnostics,
        "appExitTriggerTaskRoleName": role,
        "appExitTriggerTaskIndex": index,
        "appExitSpec": spec,
        "appExitDiagnostics": diagnostics,
        "appExitMessages": {"container": None, "runtime": None, "launcher": diagnostics} if exit_code is not None
        else None,
        "totalGpuNumber": job.total_gpu,
        "totalTaskNumber": job.total_tasks,
        "totalTaskRoleNumber": job.total_task_roles,
        "taskRoles": roles,
        "isLatest": latest,
    }


class JobAttemptsAccess(JobAccess):
    async def attempts(self, job: JobRecord) -> list[dict[str, Any]]:
        """Every attempt of ``job``, the latest first, then the others oldest first."""
        current, current_tasks = await self.status(job)
        stored = await self.blocking(job_store.job_attempts, self.services.store, job.id)
        history = await self.history(job)
        by_attempt: dict[int, list[TaskRecord]] = {}
        for task in history:
            by_attempt.setdefault(task.job_attempt_id, []).append(task)
        views_: list[dict[str, Any]] = []
        for attempt in stored:
            if attempt.attempt_id == job.attempt_id:
                continue
            tasks = _latest_per_task(by_attempt.get(attempt.attempt_id, []))
            views_.append(attempt_view(job, attempt, tasks, latest=False))
        latest = current or next((a for a in stored if a.attempt_id == job.attempt_id), None)
        if latest is not None:
            views_.insert(0, attempt_view(job, latest, current_tasks, latest=True))
        return views_


def _latest_per_task(tasks: list[TaskRecord]) -> list[TaskRecord]:
    best: dict[tuple[str, int], TaskRecord] = {}
    for t in tasks:
        key = (t.role, t.task_index)
        if key not in best or t.attempt_id > best[key].attempt_id:
            best[key] = t
    return list(best.values())


class JobAttemptsHandler(JobAttemptsAccess):
    async def get(self, framework_name: str) -> None:
        job = await self.find_job(framework_name)
        self.send(await self.attempts(job))


class JobAttemptHandler(JobAttemptsAccess):
    async def get(self, framework_name: str, index: str) -> None:
        wanted = parse_int(index, "attemptIndex")
        job = await self.find_job(framework_name)
        found = next((a for a in await self.attempts(job) if a["attemptIndex"] == wanted), None)
        if found is None:
            raise ApiError(404, "NoJobError", f"JobAttemptId {wanted} is not found in {framework_name}.")
        self.send(found)


class HealthzHandler(JobAccess):
    async def get(self, framework_name: str) -> None:
        await self.find_job(framework_name)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish("ok")
