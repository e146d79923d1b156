"""The replay: a virtual clock and an event queue driving the real orchestrator machine.

The simulator is one more driver of the pure core (ARCHITECTURE.md §2.1): it submits each trace
job to :class:`~pai_hub.orchestrator.machine.Machine` at its submission time, calls
``machine.schedule(now)`` after every batch of events, and plays the backend — every
``TaskLaunch`` the machine emits starts at once and exits (code 0) ``duration`` seconds later; every
stop the machine asks for (completion policy, preemption) exits at once with code 143. Job
outcomes are read back from the machine's records.

Preemption: the scheduler names victim gangs in ``Decisions.preemptions``; the machine stops
their attempts (``EXIT_PREEMPTED``) and requeues the jobs as platform retries. The simulator counts
the victims and, until each is gone, tells the guarantee monitor that preemption is under way.
A requeued job runs its full duration again (no checkpoints).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from pai_runtime.exitcodes import EXIT_STOPPED  # SIGTERM: what a stopped task reports

from ..orchestrator.effects import Effects
from ..orchestrator.machine import Machine
from ..orchestrator.records import TERMINAL, WAITING, JobRecord
from ..orchestrator.states import LaunchState
from ..protocol.render import RenderedJob, RenderedTaskRole
from ..scheduler.base import ClusterStatus, Decisions, GangRequest, Placement, PodRequest, Scheduler, VcStatus
from ..scheduler.hived import load_config
from ..scheduler.requests import ClusterFacts
from .cluster import ClusterModel
from .metrics import GuaranteeMonitor
from .workload import SimJob, priority_class

__all__ = ["EXIT_STOPPED", "JobOutcome", "RecordingScheduler", "SimResult", "Simulation", "plan_for"]

_STARTED = frozenset({LaunchState.LAUNCHING, LaunchState.RUNNING})
_EXIT, _SUBMIT = 0, 1  # event order within one instant: exits free cells before submissions queue


class RecordingScheduler(Scheduler):
    """Passes every call to ``inner``; collects the preemptions its ``schedule`` calls decide."""

    def __init__(self, inner: Scheduler) -> None:
        self.inner = inner
        self.calls = 0
        self.preemptions: list[str] = []  # victims not yet handled by the simulator
        self.lazy_preempted = 0

    def submit(self, gang: GangRequest) -> None:
        self.inner.submit(gang)

    def cancel(self, gang_id: str) -> None:
        self.inner.cancel(gang_id)

    def schedule(self, now: float) -> Decisions:
        d = self.inner.schedule(now)
        self.calls += 1
        self.preemptions.extend(d.preemptions)
        self.lazy_preempted += len(d.lazy_preempted)
        return d

    def release(self, gang_id: str) -> None:
        self.inner.release(gang_id)

    def bind(self, placement: Placement, gang: GangRequest | None = None) -> None:
        self.inner.bind(placement, gang)

    def set_health(self, node: str, healthy: bool) -> None:
        self.inner.set_health(node, healthy)

    def snapshot(self) -> dict[str, Any]:
        return self.inner.snapshot()

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.inner.restore(snapshot)

    def waiting_reason(self, gang_id: str) -> str | None:
        return self.inner.waiting_reason(gang_id)

    def validate(self, gang: GangRequest) -> str | None:
        return self.inner.validate(gang)

    def leaf_cells(self, gang: GangRequest, pod: PodRequest) -> int:
        return self.inner.leaf_cells(gang, pod)

    def vc_status(self, vc: str) -> VcStatus:
        return self.inner.vc_status(vc)

    def cluster_status(self) -> ClusterStatus:
        return self.inner.cluster_status()


@dataclass(frozen=True)
class _Protocol:
    """The part of a validated protocol the machine reads to build gangs: ``extras``."""

    extras: dict[str, Any]


def plan_for(job: SimJob) -> RenderedJob:
    """The rendered plan of a trace job, built directly (no YAML): one role, one gang; priority
    class and SKU in ``extras.hivedScheduler`` as a protocol YAML would give them."""
    hived: dict[str, Any] = {"jobPriorityClass": priority_class(job.priority)}
    if job.leaf_cell_type:
        hived["taskRoles"] = {"worker": {"skuType": job.leaf_cell_type}}
    role = RenderedTaskRole(
        name="worker", instances=job.instances, cpu=job.cpu, memory_mb=job.memory_mb, gpu=job.gpus,
        shm_mb=0, ports={}, min_failed=1, min_succeeded=job.instances, task_retry_count=0,
        entrypoint="", prerequisites=[], docker_image=None,
    )
    return RenderedJob(
        name=job.name, username=job.user, framework_name=f"{job.user}~{job.name}", virtual_cluster=job.vc,
        job_retry_count=0, gang_allocation=True, priority_class=None, task_roles={"worker": role}, secrets={},
        protocol=_Protocol({"hivedScheduler": hived}),  # type: ignore[arg-type]
    )


def _no_spec(job: Any, plan: Any, task: Any, tasks: Any) -> dict[str, Any]:
    return {}


def _no_ports(task_uid: str, label: str, n: int) -> list[int]:
    return []


def _machine(scheduler: Scheduler, cluster: ClusterModel) -> Machine:
    """The real machine, given the cluster's facts (SKUs per VC) as the service does."""
    facts = ClusterFacts.from_config(load_config(cluster.config))
    return Machine(scheduler, cluster.node_infos(), _no_spec, _no_ports, cluster_facts=facts)


@dataclass
class JobOutcome:
    """What happened to one trace job."""

    job: SimJob
    job_id: int
    state: str = WAITING
    first_start: float | None = None
    completed: float | None = None
    queueing: float = 0.0  # summed over attempts: first task start - attempt creation
    attempts: int = 0
    preempted: int = 0
    gpu_seconds: float = 0.0
    waiting_since: float | None = None

    @property
    def jct(self) -> float | None:
        return None if self.completed is None else self.completed - self.job.submit_time


@dataclass
class SimResult:
    outcomes: list[JobOutcome]
    cluster: ClusterModel
    monitor: GuaranteeMonitor
    scheduler: str
    start: float
    end: float
    preemptions: dict[str, int] = field(default_factory=dict)  # VC of the victim -> victim gangs
    lazy_preemptions: int = 0
    wall_s: float = 0.0
    decision_points: int = 0
    schedule_calls: int = 0


class Simulation:
    """Replay ``jobs`` on ``cluster`` with ``scheduler`` (any :class:`Scheduler`)."""

    def __init__(self, jobs: Iterable[SimJob], scheduler: Scheduler, cluster: ClusterModel,
                 scheduler_name: str | None = None) -> None:
        self.jobs = sorted(jobs, key=lambda j: j.submit_time)  # stable: trace order within an instant
        self.cluster = cluster
        self.scheduler = RecordingScheduler(scheduler)
        self.scheduler_name = scheduler_name or type(scheduler).__name__
        self.machine = _machine(self.scheduler, cluster)
        self.monitor = GuaranteeMonitor(cluster.vc_bins,
                                        {n.name: (n.chain, n.gpus, n.leaf_type) for n in cluster.nodes})
        self.outcomes: dict[int, JobOutcome] = {}
        self.running: dict[str, tuple[float, int, str, int]] = {}  # task -> (start, GPUs, node, job id)
        self.attempts_seen: set[tuple[int, int]] = set()
        self.victims: dict[str, int] = {}  # victim gang -> job id, until its attempt ends
        self.victims_seen: set[str] = set()
        self.preemptions: dict[str, int] = {}
        self._events: list[tuple[float, int, int, str, Any]] = []
        self._seq = 0
        self.now = 0.0
        self.decision_points = 0

    def _push(self, t: float, kind: int, what: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, kind, self._seq, what, payload))

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> SimResult:
        wall = time.perf_counter()
        for job in self.jobs:
            self._push(job.submit_time, _SUBMIT, "submit", job)
        start = self.jobs[0].submit_time if self.jobs else 0.0
        events = self._events
        while events:
            self.now = now = events[0][0]
            while events and events[0][0] <= now:
                while events and events[0][0] <= now:
                    _t, _k, _s, what, payload = heapq.heappop(events)
                    if what == "submit":
                        self._submit(payload, now)
                    else:
                        self._exit(payload[0], payload[1], now)
                self._turn(now)
            self.monitor.settle(now, preempting=bool(self.victims))
            self.decision_points += 1
        self.monitor.finish(self.now)
        end = max((o.completed for o in self.outcomes.values() if o.completed is not None), default=self.now)
        return SimResult(
            outcomes=[self.outcomes[k] for k in sorted(self.outcomes)], cluster=self.cluster, monitor=self.monitor,
            scheduler=self.scheduler_name, start=start, end=max(end, start), preemptions=dict(self.preemptions),
            lazy_preemptions=self.scheduler.lazy_preempted,
            wall_s=time.perf_counter() - wall, decision_points=self.decision_points,
            schedule_calls=self.scheduler.calls,
        )

    def _submit(self, job: SimJob, now: float) -> None:
        record = JobRecord(
            id=0, framework_name=f"{job.user}~{job.name}", username=job.user, name=job.name, virtual_cluster=job.vc,
            state=WAITING, config_yaml="", protocol={}, secrets={}, submitted_at=now, priority=job.priority,
            total_gpu=job.total_gpus, total_tasks=job.instances, total_task_roles=1,
        )
        self.machine.submit(record, plan_for(job), now)
        self.outcomes[record.id] = JobOutcome(job, record.id)
        self._apply(self.machine.take_effects(), now)

    def _exit(self, task_id: str, code: int, now: float) -> None:
        entry = self.running.pop(task_id, None)
        if entry is None:
            return  # stopped earlier: its natural exit is stale
        started, gpus, node, job_id = entry
        outcome = self.outcomes[job_id]
        outcome.gpu_seconds += gpus * (now - started)
        self.monitor.task_ended(outcome.job.vc, outcome.job.priority, node, gpus)
        self.machine.task_exited(task_id, code, started, now, now)
        self._apply(self.machine.take_effects(), now)

    def _turn(self, now: float) -> None:
        self.machine.schedule(now)
        self._apply(self.machine.take_effects(), now)
        victims, self.scheduler.preemptions = self.scheduler.preemptions, []
        for gang_id in victims:
            self._preempt(gang_id, now)

    def _preempt(self, gang_id: str, now: float) -> None:
        job_id, attempt = (int(x) for x in gang_id.split(".")[:2])
        outcome = self.outcomes.get(job_id)
        if outcome is None:
            return
        if gang_id not in self.victims_seen:
            self.victims_seen.add(gang_id)
            self.preemptions[outcome.job.vc] = self.preemptions.get(outcome.job.vc, 0) + 1
            outcome.preempted += 1
        job = self.machine.jobs.get(job_id)
        live = [t for t in self.machine.tasks.get(job_id, []) if t.launch_state in _STARTED]
        if job is not None and job.attempt_id == attempt and live:
            self.victims[gang_id] = job_id  # the machine is stopping it

    # -- effects ------------------------------------------------------------------------------------
    def _apply(self, fx: Effects | None, now: float) -> None:
        machine = self.machine
        while fx:
            for (job_id, attempt_id), att in fx.attempts.items():
                if (job_id, attempt_id) in self.attempts_seen:
                    continue
                self.attempts_seen.add((job_id, attempt_id))
                outcome = self.outcomes[job_id]
                outcome.attempts += 1
                outcome.waiting_since = att.created_at
                j = outcome.job
                self.monitor.gang_waiting(job_id, j.vc, j.priority, j.submit_time, (j.gpus,) * j.instances,
                                          j.leaf_cell_type)
            for launch in fx.starts:
                task_id = launch.task_id
                job_id = int(task_id.split(".", 1)[0])
                outcome = self.outcomes[job_id]
                if outcome.waiting_since is not None:
                    outcome.queueing += now - outcome.waiting_since
                    outcome.waiting_since = None
                    self.monitor.gang_placed(job_id)
                if outcome.first_start is None:
                    outcome.first_start = now
                j, gpus = outcome.job, len(launch.gpus)
                self.running[task_id] = (now, gpus, launch.node, job_id)
                self.monitor.task_started(j.vc, j.priority, launch.node, gpus)
                machine.task_running(task_id, now, now)
                self._push(now + j.duration, _EXIT, "exit", (task_id, 0))
            for task_id, _grace in fx.stops:
                self._push(now, _EXIT, "exit", (task_id, EXIT_STOPPED))
            for job in chain(fx.new_jobs, fx.jobs.values()):
                if job.state in TERMINAL and job.id in self.outcomes:
                    outcome = self.outcomes[job.id]
                    outcome.state, outcome.completed = job.state, job.completed_at
                    self.monitor.gang_placed(job.id)
            if self.victims:
                for gang_id, job_id in list(self.victims.items()):
                    if self._victim_gone(gang_id, job_id):
                        del self.victims[gang_id]
            # what handling these effects caused; an empty Effects is not taken (a job that ended
            # always leaves effects, so none waits to be dropped from the machine)
            fx = machine.take_effects() if machine.fx else None

    def _victim_gone(self, gang_id: str, job_id: int) -> bool:
        job = self.machine.jobs.get(job_id)  # an ended job leaves the machine after its turn
        if job is None or job.state in TERMINAL or job.attempt_id != int(gang_id.split(".")[1]):
            return True
        return all(t.launch_state == LaunchState.ENDED for t in self.machine.tasks.get(job_id, []))
