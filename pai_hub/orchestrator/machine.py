"""The job state machine: OpenPAI's states, attempts, completion and retry policies, as pure code.

No I/O and no clock: every method takes ``now`` and records what must happen in :class:`Effects`
(rows to write, events to append, tasks to start or stop). The loop (:mod:`.loop`) commits the
effects to the store first and only then starts and stops tasks — so a crash at any point leaves
the store describing a state the loop can resume from (ARCHITECTURE.md §2.2).

Semantics follow FrameworkController as OpenPAI used it (notes/openpai.md §3.1–3.2):
- an attempt fails as soon as a role's failed tasks reach ``minFailedInstances`` (unless -1) and
  succeeds as soon as a role's succeeded tasks reach ``minSucceededInstances`` (unless -1); if
  neither triggers before every task ends, it succeeds. Tasks still running are then stopped.
- a failed attempt is retried: always when the failure is transient (not counted against the
  user), never when permanent, otherwise while ``retries_user < jobRetryCount``.
- with ``extras.gangAllocation: false`` tasks are placed one by one and a failed task is retried
  in place up to ``taskRetryCount`` times before it counts towards the completion policy.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..core import NodeInfo, TaskLaunch
from ..scheduler.base import GangRequest, Placement, PodPlacement, Scheduler
from ..scheduler.requests import ClusterFacts, build_gangs
from .effects import Effects
from .records import (
    EXIT_ATTEMPT_COMPLETED,
    EXIT_PREEMPTED,
    EXIT_START_FAILED,
    EXIT_STOP_REQUESTED,
    EXIT_TASK_LOST,
    EventRecord,
    JobAttemptRecord,
    JobRecord,
    TaskRecord,
)
from .states import TERMINAL_JOB_STATES, AttemptState, JobState, LaunchState, TaskState, transition

#: Launch states of a task a backend was asked to start and that has not ended.
_STARTED = frozenset({LaunchState.LAUNCHING, LaunchState.RUNNING})
#: A platform retry (a lost task, a transient failure; not a preemption) waits before its attempt
#: asks for cells: this long the first time, twice as long each time after, at most the maximum.
#: Retrying at once into the same fault spends every retry in seconds.
PLATFORM_RETRY_FIRST = 1.0
PLATFORM_RETRY_MAX = 60.0
#: The most of a task's diagnostics repeated in its job's exit diagnostics.
_DIAGNOSTICS_MAX = 1000


def platform_retry_delay(retries: int, first: float = PLATFORM_RETRY_FIRST, most: float = PLATFORM_RETRY_MAX,
                         ) -> float:
    """Seconds before platform retry number ``retries`` (1, 2, ...) asks for cells again."""
    return min(most, first * 2.0 ** min(max(retries - 1, 0), 30))


def classify_exit(code: int, info: dict[str, Any] | None = None) -> str:
    """transient | permanent | unknown, from the platform's own codes, else the runtime's failure
    analysis (OpenPAI's exit spec: ``behavior``), as FrameworkController's retry policy reads it."""
    if code in (EXIT_TASK_LOST, EXIT_PREEMPTED):
        return "transient"
    if code in (EXIT_STOP_REQUESTED, EXIT_ATTEMPT_COMPLETED, EXIT_START_FAILED):
        return "permanent"
    behavior = (info or {}).get("behavior")
    if behavior in ("TRANSIENT", "TRANSIENT_CONFLICT"):
        return "transient"
    if behavior == "PERMANENT" or (info or {}).get("retryable") is False:
        return "permanent"
    return "unknown"


@dataclass
class Completion:
    """An attempt whose outcome is decided, waiting for its remaining tasks to end."""

    state: JobState
    exit_code: int
    trigger: TaskRecord | None = None

    @property
    def kind(self) -> str:
        return classify_exit(self.exit_code, self.trigger.exit_info if self.trigger else None)


SpecBuilder = Callable[[JobRecord, Any, TaskRecord, list[TaskRecord]], dict[str, Any]]


class NameIndex:
    """Every framework name ever taken (names are unique per user, forever: a second is a 409).

    Live jobs' names map to their ids; finished jobs, which leave memory, keep only the 64-bit hash
    of their name in a set — about 76 bytes a name (measured; the names themselves would take 125),
    so a million finished jobs cost ~76 MB and no store query in the submit path. Hashes are rebuilt at each start
    (:meth:`retire_all`), so the per-process ``hash`` is enough; two names sharing one 64-bit hash,
    the only way a free name could be refused, is a 1-in-10^13 chance per submission with a
    million names taken."""

    def __init__(self) -> None:
        self.live: dict[str, int] = {}
        self._finished: set[int] = set()

    def __contains__(self, name: object) -> bool:
        return name in self.live or hash(name) in self._finished

    def __getitem__(self, name: str) -> int:
        return self.live[name]

    def __setitem__(self, name: str, job_id: int) -> None:
        self.live[name] = job_id

    def get(self, name: str, default: int | None = None) -> int | None:
        """The id of the live job of this name."""
        return self.live.get(name, default)

    def retire(self, name: str) -> None:
        """The job left memory: its name stays taken."""
        self.live.pop(name, None)
        self._finished.add(hash(name))

    def retire_all(self, names: Iterable[str]) -> None:
        """Names of jobs that finished before this start (streamed from the store)."""
        self._finished.update(map(hash, names))

    def __len__(self) -> int:
        return len(self.live) + len(self._finished)


class Machine:
    """All jobs and the tasks of their current attempt, and the rules that move them."""

    def __init__(
        self,
        scheduler: Scheduler,
        nodes: list[NodeInfo],
        build_spec: SpecBuilder,
        port_allocator: Callable[[str, str, int], list[int]],
        stop_grace: float = 10.0,
        cluster_facts: ClusterFacts | None = None,
        debug_default_minutes: float = 0.0,
        debug_max_minutes: float = 120.0,
        max_platform_retries: int = 10,
        platform_retry_backoff: tuple[float, float] = (PLATFORM_RETRY_FIRST, PLATFORM_RETRY_MAX),
    ) -> None:
        self.debug_default_minutes = debug_default_minutes
        self.debug_max_minutes = debug_max_minutes
        self.max_platform_retries = max_platform_retries
        self.platform_retry_backoff = platform_retry_backoff
        # job id -> when its retried attempt may ask for cells (platform retries back off); its
        # gangs reach the scheduler only then. A restart does not keep this: they ask at once.
        self.held: dict[int, float] = {}
        # task id -> when a task retried in place after a platform failure is started (the same
        # backoff); it keeps its cells meanwhile. A restart starts it at once (a launching task
        # the backend never saw is started).
        self.delayed: dict[str, float] = {}
        self.debugging: dict[int, float] = {}  # job id -> when its debug reservation ends
        self.scheduler = scheduler
        self.cluster_facts = cluster_facts
        self.nodes = {n.name: n for n in nodes}
        self.build_spec = build_spec
        self.port_allocator = port_allocator
        self.stop_grace = stop_grace
        # Live jobs only: a job that ended, with nothing more to happen to it (no debug reservation),
        # is dropped after its turn (:meth:`take_effects`); the store holds it, and its name stays
        # taken in :attr:`names`.
        self.jobs: dict[int, JobRecord] = {}
        self.names = NameIndex()
        self._ended: list[int] = []  # jobs that ended this turn, dropped once its effects are taken
        self.plans: dict[int, Any] = {}  # job id -> protocol.RenderedJob, for active jobs
        # job id -> (attempt id, cluster facts, every gang of that attempt): see _all_gangs
        self._attempt_gangs: dict[int, tuple[int, ClusterFacts | None, list[GangRequest]]] = {}
        self.tasks: dict[int, list[TaskRecord]] = {}  # job id -> tasks of the current attempt
        self.live: dict[str, TaskRecord] = {}  # task id -> task not yet ended
        self.attempts: dict[int, JobAttemptRecord] = {}
        self.completing: dict[int, Completion] = {}
        self.next_job_id = 1
        self.next_event_id = 0
        self.fx = Effects(new_attempts=set())

    # -- turn handling --------------------------------------------------------------------------
    def take_effects(self) -> Effects:
        """This turn's effects; jobs that ended in it leave memory (the effects still hold them)."""
        fx, self.fx = self.fx, Effects(new_attempts=set())
        if self._ended:
            self._drop_ended()
        return fx

    def _drop_ended(self) -> None:
        ended, self._ended = self._ended, []
        for job_id in ended:
            job = self.jobs.get(job_id)
            if job is None or job.state not in TERMINAL_JOB_STATES or job_id in self.debugging:
                continue
            del self.jobs[job_id]
            self.held.pop(job_id, None)
            self.names.retire(job.framework_name)
            for task in self.tasks.pop(job_id, ()):
                self.live.pop(task.task_id, None)
                self.delayed.pop(task.task_id, None)
            self.attempts.pop(job_id, None)
            self.plans.pop(job_id, None)
            self.completing.pop(job_id, None)
            self._attempt_gangs.pop(job_id, None)

    def _job(self, job: JobRecord) -> None:
        # a job created this turn is inserted whole; this turn's new jobs have the ids from the first
        # one's on (ids only grow), so this costs O(1), not a scan of new_jobs (O(n²) for a batch)
        if not self.fx.new_jobs or job.id < self.fx.new_jobs[0].id:
            self.fx.jobs[job.id] = job

    def _task(self, task: TaskRecord) -> None:
        if task.task_id not in self.fx.new_tasks:
            self.fx.tasks[task.task_id] = task

    def _attempt(self, att: JobAttemptRecord) -> None:
        self.fx.attempts[(att.job_id, att.attempt_id)] = att

    def _event(self, job: JobRecord, reason: str, message: str, now: float, task: TaskRecord | None = None,
               type: str = "Normal") -> None:
        self.next_event_id += 1
        self.fx.events.append(EventRecord(job.id, reason, message, now, task.task_id if task else None, type,
                                          self.next_event_id))

    # -- inputs ---------------------------------------------------------------------------------
    def submit(self, job: JobRecord, plan: Any, now: float) -> None:
        """Accept a validated, rendered job: it waits for placement."""
        job.id = self.next_job_id
        self.next_job_id += 1
        self.jobs[job.id] = job
        self.names[job.framework_name] = job.id
        self.plans[job.id] = plan
        self.fx.new_jobs.append(job)
        self._event(job, "JobSubmitted", f"job {job.framework_name} submitted", now)
        self._start_attempt(job, plan, now)

    def stop(self, job_id: int, now: float) -> None:
        """The user asked to stop the job (executionType STOP)."""
        job = self.jobs.get(job_id)
        if job is None or job.state in TERMINAL_JOB_STATES or job.execution_type == "STOP":
            return  # over (a job no longer in memory has ended)
        job.execution_type = "STOP"
        self._job(job)
        self._event(job, "StopRequested", "stop requested", now)
        self.completing[job.id] = Completion(JobState.STOPPED, EXIT_STOP_REQUESTED)
        self._wind_down(job, now)
        if job.state not in TERMINAL_JOB_STATES:
            transition(job, JobState.STOPPING)
            job.sub_state = "AttemptDeletionRequested"

    def task_running(self, task_id: str, started_at: float | None, now: float) -> None:
        task = self.live.get(task_id)
        if task is None or task.launch_state != LaunchState.LAUNCHING:
            return
        transition(task, LaunchState.RUNNING)
        transition(task, TaskState.RUNNING)
        task.launched_at = started_at or now
        self._task(task)
        job = self.jobs[task.job_id]
        self._event(job, "TaskStarted", f"task {task.role}[{task.task_index}] started on {task.node}", now, task)
        if job.state == JobState.WAITING:
            transition(job, JobState.RUNNING)
            job.sub_state = "AttemptRunning"
            job.launched_at = job.launched_at or task.launched_at
            self._job(job)
            att = self.attempts[job.id]
            transition(att, AttemptState.RUNNING)
            att.launched_at = task.launched_at
            self._attempt(att)

    def task_exited(self, task_id: str, exit_code: int, started_at: float | None, finished_at: float,
                    now: float, diagnostics: str | None = None, exit_info: dict[str, Any] | None = None) -> None:
        task = self.live.get(task_id)
        if task is None or task.launch_state == LaunchState.ENDED:
            return
        job = self.jobs[task.job_id]
        if exit_code == EXIT_TASK_LOST and task.launch_state == LaunchState.LAUNCHING:
            # Decided and committed, but the backend never started it: start it now. Only once:
            # if it is lost again, that is a real loss (the backend refuses to start a task twice).
            transition(task, LaunchState.RUNNING)
            self._task(task)
            self.fx.starts.append(self._launch(job, task))
            return
        del self.live[task_id]
        transition(task, LaunchState.ENDED)
        task.exit_code = exit_code
        task.exit_info = exit_info
        task.exit_diagnostics = diagnostics or (exit_info or {}).get("reason")
        task.launched_at = task.launched_at or started_at
        task.completed_at = finished_at
        completion = self.completing.get(job.id)
        if exit_code == 0:
            transition(task, TaskState.SUCCEEDED)
        elif completion is not None:
            transition(task, TaskState.STOPPED)
        else:
            transition(task, TaskState.FAILED)
        self._task(task)
        self._event(job, f"Task{task.state.capitalize()}",
                    f"task {task.role}[{task.task_index}] exited with code {exit_code}", now, task,
                    "Normal" if task.state != TaskState.FAILED else "Warning")
        if completion is None:
            if task.state == TaskState.FAILED and self._retry_task(job, task, now):
                return
            self._apply_completion_policy(job, task, now)
        self._maybe_finish_attempt(job, now)

    def schedule(self, now: float) -> None:
        self._release_held(now)
        decisions = self.scheduler.schedule(now)
        for gang_id in decisions.preemptions:
            self._preempt(gang_id, now)
        for gang_id in decisions.lazy_preempted:
            job = self._job_of_gang(gang_id)
            if job is not None:
                self._event(job, "LazyPreempted", "downgraded to opportunistic: it keeps running but may be "
                            "preempted by any job", now, type="Warning")
        for placement in decisions.placements:
            self._placed(placement, now)
        for gang_id, reason in decisions.waiting_reasons.items():
            job = self._job_of_gang(gang_id)
            if job is not None and job.state == JobState.WAITING and job.waiting_reason != reason:
                job.waiting_reason = reason
                self._job(job)
                self._event(job, "Waiting", reason, now)

    def _job_of_gang(self, gang_id: str) -> JobRecord | None:
        """Gang ids start with the job id (:func:`pai_hub.scheduler.requests.build_gangs`)."""
        return self.jobs.get(int(gang_id.split(".", 1)[0]))

    def _preempt(self, gang_id: str, now: float) -> None:
        """Stop a job whose cells a higher-priority job needs; it is retried (not the user's fault)."""
        job = self._job_of_gang(gang_id)
        if job is None or job.state in TERMINAL_JOB_STATES or job.id in self.completing:
            return
        self.completing[job.id] = Completion(JobState.FAILED, EXIT_PREEMPTED)
        job.exit_diagnostics = "preempted to make room for a higher-priority job"
        self._job(job)
        self._event(job, "Preempted", "preempted to make room for a higher-priority job; it will be requeued",
                    now, type="Warning")
        self._wind_down(job, now)

    def _release_held(self, now: float) -> None:
        """Hand the scheduler the gangs of retried attempts whose backoff is over, and start the
        tasks retried in place whose backoff is over."""
        for task_id, when in list(self.delayed.items()):
            if when > now:
                continue
            del self.delayed[task_id]
            task = self.live.get(task_id)
            if task is not None and task.launch_state == LaunchState.LAUNCHING:
                self.fx.starts.append(self._launch(self.jobs[task.job_id], task))
        for job_id, until in list(self.held.items()):
            if until > now:
                continue
            del self.held[job_id]
            job = self.jobs.get(job_id)
            if job is None or job_id not in self.plans or job.state != JobState.WAITING:
                continue
            job.waiting_reason = None
            self._job(job)
            for gang in self._gangs(job, self.plans[job_id], self.tasks[job_id]):
                self.scheduler.submit(gang)

    # -- attempts -------------------------------------------------------------------------------
    def _start_attempt(self, job: JobRecord, plan: Any, now: float, hold: float = 0.0) -> None:
        """A new attempt: its tasks wait for cells, asked for now or, with ``hold``, that many
        seconds from now (a platform retry backing off)."""
        transition(job, JobState.WAITING)
        job.sub_state = "AttemptCreationPending"
        job.waiting_reason = None
        self._job(job)
        att = JobAttemptRecord(job.id, job.attempt_id, AttemptState.WAITING, now)
        self.attempts[job.id] = att
        self._attempt(att)
        self.fx.new_attempts.add((job.id, job.attempt_id))  # type: ignore[union-attr]  # the store inserts it
        tasks = []
        for role in plan.task_roles.values():
            for index in range(role.instances):
                task = self._new_task(job, role.name, index, 0, now)
                tasks.append(task)
        self.tasks[job.id] = tasks
        if hold > 0:
            self.held[job.id] = now + hold
            job.waiting_reason = f"retrying after a platform failure: waits {hold:g} s before asking for cells"
            return
        for gang in self._all_gangs(job):  # every task of a new attempt is pending
            self.scheduler.submit(gang)

    def _new_task(self, job: JobRecord, role: str, index: int, attempt: int, now: float) -> TaskRecord:
        task = TaskRecord(
            task_id=f"{job.id}.{job.attempt_id}.{role}.{index}.{attempt}",
            job_id=job.id, job_attempt_id=job.attempt_id, role=role, task_index=index,
            attempt_id=attempt, task_uid=uuid.uuid4().hex, state=TaskState.WAITING, created_at=now,
        )
        self.live[task.task_id] = task
        self.fx.new_tasks[task.task_id] = task
        return task

    def _gangs(self, job: JobRecord, plan: Any, tasks: list[TaskRecord], pending_only: bool = True,
               ) -> list[GangRequest]:
        """The job's affinity groups for the scheduler (see :mod:`pai_hub.scheduler.requests`)."""
        keys = [(t.role, t.task_index) for t in tasks if not pending_only or t.launch_state == LaunchState.PENDING]
        return build_gangs(job.id, job.attempt_id, plan, keys, self.cluster_facts, job.submitted_at,
                           job.virtual_cluster)

    def _all_gangs(self, job: JobRecord) -> list[GangRequest]:
        """Every gang of the job's current attempt, built once per attempt (it is asked for at the
        attempt's start, wind-down and end): within an attempt the plan, the tasks' roles and
        indices, the VC and the submission time stay as they are; new cluster facts rebuild it."""
        cached = self._attempt_gangs.get(job.id)
        if cached is None or cached[0] != job.attempt_id or cached[1] is not self.cluster_facts:
            gangs = self._gangs(job, self.plans[job.id], self.tasks[job.id], pending_only=False)
            cached = self._attempt_gangs[job.id] = (job.attempt_id, self.cluster_facts, gangs)
        return cached[2]

    def _gang_ids(self, job: JobRecord) -> list[str]:
        return [g.gang_id for g in self._all_gangs(job)]

    def _placed(self, placement: Placement, now: float) -> None:
        job = self._job_of_gang(placement.gang_id)
        if job is None:
            raise KeyError(f"placement of {placement.gang_id}: no such job")
        by_key = {(t.role, t.task_index): t for t in self.tasks[job.id]}
        placed = []
        for pod in placement.pods:
            task = by_key[(pod.role, pod.index)]
            self._assign(job, task, pod)
            placed.append(task)
        job.sub_state = "AttemptPreparing"
        job.waiting_reason = None
        self._job(job)
        nodes = ", ".join(sorted({t.node or "" for t in placed}))
        self._event(job, "Placed", f"{len(placed)} task(s) placed on {nodes}", now)
        for task in placed:
            self.fx.starts.append(self._launch(job, task))

    def _assign(self, job: JobRecord, task: TaskRecord, pod: PodPlacement) -> None:
        role = self.plans[job.id].task_roles[task.role]
        node = self.nodes[pod.node]
        # the scheduler's leaf cells are GPU indices only for GPU tasks (CPU tasks hold CPU slots)
        task.node, task.ip, task.gpus = node.name, node.ip, list(pod.gpus) if role.gpu > 0 else []
        task.ports = {label: self.port_allocator(task.task_uid, label, n) for label, n in role.ports.items()}
        transition(task, LaunchState.LAUNCHING)
        self._task(task)

    def _launch(self, job: JobRecord, task: TaskRecord) -> TaskLaunch:
        spec = self.build_spec(job, self.plans[job.id], task, self.tasks[job.id])
        return TaskLaunch(task.task_id, task.node or "", tuple(task.gpus), spec)

    def _retry_task(self, job: JobRecord, task: TaskRecord, now: float) -> bool:
        """Non-gang jobs retry a failed task in place, as FrameworkController's task retry policy."""
        plan = self.plans[job.id]
        if plan.gang_allocation or job.execution_type == "STOP":
            return False
        kind = classify_exit(task.exit_code or 0, task.exit_info)
        limit = plan.task_roles[task.role].task_retry_count
        if kind == "permanent" or (kind == "unknown" and task.accountable_retries >= limit):
            return False
        hold = 0.0
        if kind == "transient" and task.exit_code != EXIT_PREEMPTED:
            if job.retries_platform >= self.max_platform_retries:
                self._event(job, "RetryLimit", f"task {task.role}[{task.task_index}] not retried: "
                            f"{job.retries_platform} platform retries already", now, task, type="Warning")
                return False
            job.retries_platform += 1
            self._job(job)
            hold = platform_retry_delay(job.retries_platform, *self.platform_retry_backoff)
        retry = self._new_task(job, task.role, task.task_index, task.attempt_id + 1, now)
        retry.retries = task.retries + 1
        retry.accountable_retries = task.accountable_retries + (kind == "unknown")
        retry.node, retry.ip, retry.gpus = task.node, task.ip, list(task.gpus)
        role = plan.task_roles[task.role]
        retry.ports = {label: self.port_allocator(retry.task_uid, label, n) for label, n in role.ports.items()}
        transition(retry, LaunchState.LAUNCHING)
        tasks = self.tasks[job.id]
        tasks[tasks.index(task)] = retry
        later = f" in {hold:g} s (platform failure)" if hold else ""
        self._event(job, "TaskRetried", f"task {task.role}[{task.task_index}] retry {retry.retries}{later}", now,
                    retry)
        if hold:
            self.delayed[retry.task_id] = now + hold
        else:
            self.fx.starts.append(self._launch(job, retry))
        return True

    def _apply_completion_policy(self, job: JobRecord, task: TaskRecord, now: float) -> None:
        completion = self._decide_completion(job, task)
        if completion is not None:
            self.completing[job.id] = completion
            self._wind_down(job, now)

    def _decide_completion(self, job: JobRecord, task: TaskRecord) -> Completion | None:
        role = self.plans[job.id].task_roles[task.role]
        same_role = [t for t in self.tasks[job.id] if t.role == task.role]
        failed = sum(t.state == TaskState.FAILED for t in same_role)
        succeeded = sum(t.state == TaskState.SUCCEEDED for t in same_role)
        if role.min_failed != -1 and failed >= role.min_failed:
            return Completion(JobState.FAILED, task.exit_code or 1, task)
        if role.min_succeeded != -1 and succeeded >= role.min_succeeded:
            return Completion(JobState.SUCCEEDED, 0, task)
        if all(t.launch_state == LaunchState.ENDED for t in self.tasks[job.id]):
            return Completion(JobState.SUCCEEDED, 0, task)
        return None

    def _wind_down(self, job: JobRecord, now: float) -> None:
        """Stop what still runs of an attempt whose outcome is decided; finish it if nothing does."""
        grace = self.stop_grace
        for task in self.tasks.get(job.id, []):
            if task.launch_state in _STARTED and self.delayed.pop(task.task_id, None) is None:
                self.fx.stops.append((task.task_id, grace))
            elif task.launch_state != LaunchState.ENDED:  # waiting for cells, or for its retry: never started
                transition(task, LaunchState.ENDED)
                transition(task, TaskState.STOPPED)
                task.completed_at = now
                self.live.pop(task.task_id, None)
                self._task(task)
        if job.id in self.plans and self.held.pop(job.id, None) is None:  # held gangs were never submitted
            placed = {(t.role, t.task_index) for t in self.tasks[job.id] if t.node is not None}
            for gang in self._all_gangs(job):
                if not any((p.role, p.index) in placed for p in gang.pods):
                    self.scheduler.cancel(gang.gang_id)
        self._maybe_finish_attempt(job, now)

    def _maybe_finish_attempt(self, job: JobRecord, now: float) -> None:
        completion = self.completing.get(job.id)
        if completion is None or any(t.launch_state != LaunchState.ENDED for t in self.tasks[job.id]):
            return
        del self.completing[job.id]
        old_gangs = self._gang_ids(job)
        att = self.attempts[job.id]
        transition(att, AttemptState(completion.state))
        att.completed_at, att.exit_code = now, completion.exit_code
        self._attempt(att)
        trigger = completion.trigger
        if trigger is not None:
            job.exit_trigger = {"taskRole": trigger.role, "taskIndex": trigger.task_index,
                                "exitCode": trigger.exit_code}
            job.exit_info = trigger.exit_info
        failed = completion.state == JobState.FAILED and job.execution_type != "STOP"
        if failed and self._retry_job(job, completion, now, release=old_gangs):
            return
        # the job ends here: keep its cells for debugging, or give them back
        minutes = self._debug_minutes(job) if failed and trigger is not None else 0
        if not minutes:
            for gang_id in old_gangs:
                self.scheduler.release(gang_id)
        transition(job, completion.state)
        job.sub_state = "Completed"
        job.exit_code = completion.exit_code
        job.completed_at = now
        if completion.state == JobState.FAILED and trigger is not None:
            job.exit_diagnostics = (
                f"task {trigger.role}[{trigger.task_index}] failed with exit code {trigger.exit_code}"
            )
            if trigger.exit_diagnostics and trigger.exit_code in (EXIT_START_FAILED, EXIT_TASK_LOST):
                # the platform's own failure: its cause belongs in the job's status, not only the task's
                job.exit_diagnostics += f": {trigger.exit_diagnostics[:_DIAGNOSTICS_MAX]}"
        self._job(job)
        self._event(job, f"Job{job.state.capitalize()}", f"job {job.state.lower()} (exit code {job.exit_code})",
                    now, type="Normal" if job.state != JobState.FAILED else "Warning")
        if minutes:
            self._reserve_for_debugging(job, now + 60 * minutes, now)
        else:
            self.plans.pop(job.id, None)
            self._ended.append(job.id)

    def _retry_job(self, job: JobRecord, completion: Completion, now: float, release: list[str]) -> bool:
        kind = completion.kind
        plan = self.plans[job.id]
        if kind == "permanent" or (kind == "unknown" and job.retries_user >= plan.job_retry_count):
            return False
        if kind == "transient" and job.retries_platform >= self.max_platform_retries:
            self._event(job, "RetryLimit", f"not retried: {job.retries_platform} platform retries already "
                        "(a job killed again and again is not the platform's fault)", now, type="Warning")
            return False
        hold = 0.0
        if kind == "transient":
            job.retries_platform += 1
            if completion.exit_code != EXIT_PREEMPTED:  # a preempted job is not failing: it queues at once
                hold = platform_retry_delay(job.retries_platform, *self.platform_retry_backoff)
        else:
            job.retries_user += 1
        for gang_id in release:  # the failed attempt's cells, before the next attempt asks again
            self.scheduler.release(gang_id)
        job.attempt_id += 1
        later = f" in {hold:g} s" if hold else ""
        self._event(job, "JobRetried", f"attempt {job.attempt_id - 1} failed (exit code "
                    f"{completion.exit_code}, {kind}); starting attempt {job.attempt_id}{later}", now, type="Warning")
        self._start_attempt(job, plan, now, hold)
        return True

    # -- debug reservation ----------------------------------------------------------------------
    def _debug_minutes(self, job: JobRecord) -> float:
        """extras.debugReservation.minutes, else the cluster default; at most the cluster maximum."""
        asked = ((self.plans[job.id].protocol.extras or {}).get("debugReservation") or {}).get("minutes")
        minutes = self.debug_default_minutes if asked is None else asked
        try:
            return max(0.0, min(float(minutes), self.debug_max_minutes))
        except (TypeError, ValueError):
            return 0.0

    def _reserve_for_debugging(self, job: JobRecord, until: float, now: float) -> None:
        """Keep the failed tasks' cells (and so their GPUs) and directories until ``until``."""
        self.debugging[job.id] = until
        failed = [t for t in self.tasks[job.id] if t.state == TaskState.FAILED]
        for task in failed:
            task.debug_until = until
            self._task(task)
        names = ", ".join(f"{t.role}[{t.task_index}]" for t in failed)
        self._event(job, "DebugReservation", f"{names} kept for debugging for {(until - now) / 60:g} minutes; "
                    "its GPUs stay allocated to the job until then or until released", now)

    def release_debug(self, job_id: int, now: float, reason: str = "released") -> bool:
        if self.debugging.pop(job_id, None) is None:
            return False
        job = self.jobs[job_id]
        for gang_id in self._gang_ids(job):
            self.scheduler.release(gang_id)
        for task in self.tasks[job_id]:
            if task.debug_until is not None:
                task.debug_until = None
                self._task(task)
                # a backend may hold the task's environment (e.g. a Slurm allocation): let it go
                self.fx.stops.append((task.task_id, self.stop_grace))
        self.plans.pop(job_id, None)
        self._ended.append(job_id)
        self._event(job, "DebugReservationEnded", f"debug reservation {reason}; its GPUs are free", now)
        return True

    def expire_debug(self, now: float) -> None:
        for job_id, until in list(self.debugging.items()):
            if until <= now:
                self.release_debug(job_id, now, "expired")

    def next_deadline(self) -> float | None:
        """When the loop must turn even if nothing happens (a debug reservation ending)."""
        return min([*self.debugging.values(), *self.held.values(), *self.delayed.values()], default=None)

    def replace_scheduler(self, scheduler: Scheduler, facts: ClusterFacts | None) -> None:
        """A new cluster config: hand every active job's placements and waiting gangs to the new scheduler."""
        self.scheduler = scheduler
        self.cluster_facts = facts
        for job_id, plan in self.plans.items():
            self._rebind(self.jobs[job_id], plan, self.tasks[job_id])
        self.held.clear()  # _rebind handed their waiting gangs to the new scheduler already

    def set_node_health(self, node: str, healthy: bool, now: float) -> None:
        self.scheduler.set_health(node, healthy)
        for job in self.jobs.values():
            if job.id in self.plans and any(t.node == node for t in self.tasks.get(job.id, [])):
                self._event(job, "NodeHealth", f"node {node} marked {'healthy' if healthy else 'bad'}", now,
                            type="Normal" if healthy else "Warning")

    # -- restart --------------------------------------------------------------------------------
    def restore(self, jobs: list[JobRecord], attempts: list[JobAttemptRecord], tasks: list[TaskRecord],
                plan_of: Callable[[JobRecord], Any], now: float, last_event_id: int = 0,
                last_job_id: int = 0) -> list[str]:
        """Rebuild from the store after a restart: the live jobs, and the finished ones still holding a
        debug reservation (a finished job without one is only named, see :attr:`names`). Returns the
        task ids to ask the backend about."""
        self.next_event_id = max(self.next_event_id, last_event_id)
        self.next_job_id = max(self.next_job_id, last_job_id + 1)
        latest = {(a.job_id, a.attempt_id): a for a in attempts}
        by_job: dict[int, list[TaskRecord]] = {}
        for t in tasks:
            by_job.setdefault(t.job_id, []).append(t)
        to_adopt: list[str] = []
        for job in jobs:
            self.next_job_id = max(self.next_job_id, job.id + 1)
            current = [t for t in by_job.get(job.id, []) if t.job_attempt_id == job.attempt_id]
            current = self._latest_task_attempts(current)
            if job.state in TERMINAL_JOB_STATES and not any(t.debug_until for t in current):
                self.names.retire(job.framework_name)  # history: the store serves it
                continue
            self.jobs[job.id] = job
            self.names[job.framework_name] = job.id
            self.tasks[job.id] = current
            if (job.id, job.attempt_id) in latest:
                self.attempts[job.id] = latest[(job.id, job.attempt_id)]
            if job.state in TERMINAL_JOB_STATES:
                until = max((t.debug_until or 0 for t in current), default=0)
                if until:  # a debug reservation outlives a restart: its cells stay held
                    self.plans[job.id] = plan_of(job)
                    self.debugging[job.id] = until
                    self._rebind(job, self.plans[job.id], current)
                continue
            plan = plan_of(job)
            self.plans[job.id] = plan
            for t in current:
                if t.launch_state != LaunchState.ENDED:
                    self.live[t.task_id] = t
                if t.launch_state in _STARTED:
                    to_adopt.append(t.task_id)
            self._rebind(job, plan, current)
            if job.execution_type == "STOP":
                self.completing[job.id] = Completion(JobState.STOPPED, EXIT_STOP_REQUESTED)
            else:
                for t in current:
                    if t.launch_state == LaunchState.ENDED and job.id not in self.completing:
                        completion = self._decide_completion(job, t)
                        if completion is not None:
                            self.completing[job.id] = completion
            if job.id in self.completing:
                self._wind_down(job, now)
        return to_adopt

    @staticmethod
    def _latest_task_attempts(tasks: list[TaskRecord]) -> list[TaskRecord]:
        best: dict[tuple[str, int], TaskRecord] = {}
        for t in tasks:
            key = (t.role, t.task_index)
            if key not in best or t.attempt_id > best[key].attempt_id:
                best[key] = t
        return sorted(best.values(), key=lambda t: (t.role, t.task_index))

    def _rebind(self, job: JobRecord, plan: Any, tasks: list[TaskRecord]) -> None:
        """Give the scheduler back what the store says this attempt holds or waits for."""
        by_key = {(t.role, t.task_index): t for t in tasks}
        for gang in self._gangs(job, plan, tasks, pending_only=False):
            members = [by_key[(p.role, p.index)] for p in gang.pods]
            if all(t.node is None for t in members):
                if any(t.launch_state == LaunchState.PENDING for t in members):
                    self.scheduler.submit(gang)
                continue
            self.scheduler.bind(Placement(gang.gang_id, tuple(
                PodPlacement(t.role, t.task_index, t.node or "", tuple(t.gpus)) for t in members)), gang)
