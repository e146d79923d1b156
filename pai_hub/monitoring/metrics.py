"""The Prometheus metrics of one control plane, in its own :class:`CollectorRegistry`.

Counters and histograms are updated as things happen (each loop turn, each API request, each
poll); everything that is a state (GPU readings, nodes, tasks, VCs, jobs) is read from the
monitor's latest :class:`Snapshot` when Prometheus scrapes, so one scrape is one consistent view.
The list with meanings is in docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from .. import __version__
from .gpu import GpuReading

LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SCHEDULING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
MB = 2**20


@dataclass
class TaskSample:
    job_name: str  # the framework name, user~job
    username: str
    vc: str
    role: str
    index: int
    node: str
    gpus: tuple[int, ...]
    utilization: float | None  # mean over its GPUs with a reading
    memory_used_mb: float | None


@dataclass
class Snapshot:
    """What the monitor saw at one poll."""

    time: float = 0.0
    node: str | None = None  # the node whose GPUs are read
    gpu_source: str = "none"
    gpus: list[GpuReading] = field(default_factory=list)
    tasks: list[TaskSample] = field(default_factory=list)
    nodes: dict[str, Any] = field(default_factory=dict)  # scheduler cluster_status()["nodes"]
    vcs: dict[str, dict[str, Any]] = field(default_factory=dict)  # vc -> {skus, queue, oldest_wait, running}
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (vc, state) -> count
    alerts: dict[tuple[str, str], int] = field(default_factory=dict)  # (alertname, severity) -> firing


class Metrics:
    """The registry and every metric; ``snapshot`` is replaced by the monitor after each poll."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.snapshot = Snapshot()
        r = self.registry
        self.scheduling = Histogram("pai_scheduler_decision_seconds", "Time the scheduler spent deciding, per "
                                    "orchestrator turn.", buckets=SCHEDULING_BUCKETS, registry=r)
        self.preemptions = Counter("pai_scheduler_preemptions", "Jobs preempted for higher-priority jobs.",
                                   registry=r)
        self.turns = Counter("pai_orchestrator_turns", "Committed orchestrator turns.", registry=r)
        self.transitions = Counter("pai_orchestrator_transitions", "Job and task state transitions (events), by "
                                   "event reason.", ["reason"], registry=r)
        self.placements = Counter("pai_vc_placements", "Gangs placed from the queue of each virtual cluster.",
                                  ["vc"], registry=r)
        self.api = Histogram("pai_api_request_duration_seconds", "HTTP request latency, by handler class, method "
                             "and status.", ["handler", "method", "status"], buckets=API_BUCKETS, registry=r)
        self.loop_lag = Histogram("pai_event_loop_lag_seconds", "How late the event loop woke a timer: the time a "
                                  "handler or a turn held the loop (Monitoring.loop_lag_interval).",
                                  buckets=LOOP_LAG_BUCKETS, registry=r)
        self.loop_held = Histogram("pai_event_loop_held_seconds", "CPU time the event loop's thread spent between "
                                   "two looks beyond the interval: work that held the loop (not time the OS gave "
                                   "other processes).", buckets=LOOP_LAG_BUCKETS, registry=r)
        self.xid_events = Counter("pai_gpu_xid_events", "XID events reported by each GPU, by XID.",
                                  ["node", "gpu", "xid"], registry=r)
        self.node_marks = Counter("pai_gpu_health_node_marks", "Times GPU health marked a node bad or healthy "
                                  "in the scheduler.", ["node", "healthy"], registry=r)
        self.usage = Counter("pai_usage_gpu_seconds", "GPU-seconds allocated to running tasks, by virtual "
                             "cluster and user (sampled each poll).", ["vc", "username"], registry=r)
        self.notifications = Counter("pai_alert_notifications", "Alert webhook deliveries, by result.",
                                     ["result"], registry=r)
        self.poll_seconds = Gauge("pai_monitor_poll_seconds", "Duration of the monitor's last poll.", registry=r)
        self.rules_error = Gauge("pai_alert_rules_error", "1 while the alert rules file does not parse "
                                 "(the previous rules stay in force).", registry=r)
        info = Gauge("pai_build_info", "PAI Hub's version.", ["version"], registry=r)
        info.labels(__version__).set(1)
        r.register(_StateCollector(self))

    def observe_request(self, handler: str, method: str, status: int, seconds: float) -> None:
        self.api.labels(handler, method, str(status)).observe(seconds)


def _g(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class _StateCollector:
    """Gauges read from the latest snapshot at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # the families vary with what is present (no GPUs: no GPU series)

    def collect(self) -> Iterator[Metric]:
        s = self.metrics.snapshot
        source = _g("pai_gpu_source_info", "Where GPU readings come from (nvml, simulated or none).", ["source"])
        source.add_metric([s.gpu_source], 1)
        yield source
        yield from self._gpus(s)
        yield from self._nodes(s)
        yield from self._tasks(s)
        yield from self._vcs(s)
        jobs = _g("pai_jobs", "Live jobs (waiting, running, stopping, kept for debugging) by virtual cluster and "
                  "state; ended jobs are counted by pai_orchestrator_transitions.", ["vc", "state"])
        for (vc, state), n in sorted(s.jobs.items()):
            jobs.add_metric([vc, state], n)
        yield jobs
        alerts = _g("pai_alerts_firing", "Alerts firing, by rule and severity.", ["alertname", "severity"])
        for (name, sev), n in sorted(s.alerts.items()):
            alerts.add_metric([name, sev], n)
        yield alerts

    def _gpus(self, s: Snapshot) -> Iterator[Metric]:
        if not s.gpus:
            return
        labels = ["node", "gpu", "uuid", "model"]
        fams = {
            "util": _g("pai_gpu_utilization_percent", "GPU utilisation (percent of time a kernel ran).", labels),
            "mem_used": _g("pai_gpu_memory_used_bytes", "GPU memory in use.", labels),
            "mem_total": _g("pai_gpu_memory_total_bytes", "GPU memory in all.", labels),
            "temp": _g("pai_gpu_temperature_celsius", "GPU temperature.", labels),
            "power": _g("pai_gpu_power_watts", "GPU power draw.", labels),
            "ecc": _g("pai_gpu_ecc_uncorrected_errors", "Uncorrected ECC errors since the driver loaded or the GPU "
                      "was reset (volatile).", labels),
            "healthy": _g("pai_gpu_healthy", "1 if the GPU is healthy; 0 if lost, with uncorrected ECC errors or a "
                          "critical XID.", labels),
            "lost": _g("pai_gpu_lost", "1 if the GPU no longer answers.", labels),
        }
        for r in s.gpus:
            lv = [s.node or "", str(r.index), r.uuid, r.model]
            for key, value in (("util", r.utilization), ("temp", r.temperature_c), ("power", r.power_w),
                               ("ecc", r.ecc_errors)):
                if value is not None:
                    fams[key].add_metric(lv, float(value))
            if r.memory_used_mb is not None:
                fams["mem_used"].add_metric(lv, r.memory_used_mb * MB)
            if r.memory_total_mb is not None:
                fams["mem_total"].add_metric(lv, r.memory_total_mb * MB)
            fams["healthy"].add_metric(lv, 1.0 if r.healthy else 0.0)
            fams["lost"].add_metric(lv, 1.0 if r.lost else 0.0)
        yield from fams.values()

    def _nodes(self, s: Snapshot) -> Iterator[Metric]:
        healthy = _g("pai_node_healthy", "1 if the scheduler considers the node healthy.", ["node"])
        cap = _g("pai_node_capacity", "Leaf cells (GPUs, or CPU slots) of the node, by SKU.", ["node", "sku"])
        used = _g("pai_node_used", "Leaf cells in use, by SKU.", ["node", "sku"])
        free = _g("pai_node_free", "Leaf cells free, by SKU.", ["node", "sku"])
        for name, n in sorted(s.nodes.items()):
            healthy.add_metric([name], 1.0 if n.get("healthy", True) else 0.0)
            for sku, e in sorted(n.get("skus", {}).items()):
                cap.add_metric([name, sku], e.get("capacity", 0))
                used.add_metric([name, sku], e.get("used", 0))
                free.add_metric([name, sku], e.get("free", 0))
        yield from (healthy, cap, used, free)
        if s.gpus:
            util = [r.utilization for r in s.gpus if r.utilization is not None]
            if util:
                g = _g("pai_node_gpu_utilization_percent", "Mean utilisation of the node's GPUs.", ["node"])
                g.add_metric([s.node or ""], sum(util) / len(util))
                yield g

    def _tasks(self, s: Snapshot) -> Iterator[Metric]:
        labels = ["job_name", "username", "vc", "task_role", "task_index", "node"]
        util = _g("pai_task_gpu_utilization_percent", "Mean utilisation of a running task's GPUs.", labels)
        mem = _g("pai_task_gpu_memory_used_bytes", "GPU memory a running task's GPUs use.", labels)
        gpus = _g("pai_task_gpus", "GPUs allocated to a running task.", labels)
        for t in s.tasks:
            lv = [t.job_name, t.username, t.vc, t.role, str(t.index), t.node]
            gpus.add_metric(lv, len(t.gpus))
            if t.utilization is not None:
                util.add_metric(lv, t.utilization)
            if t.memory_used_mb is not None:
                mem.add_metric(lv, t.memory_used_mb * MB)
        yield from (gpus, util, mem)

    def _vcs(self, s: Snapshot) -> Iterator[Metric]:
        cap = _g("pai_vc_capacity", "Leaf cells the virtual cluster is guaranteed, by SKU.", ["vc", "sku"])
        used = _g("pai_vc_used", "Leaf cells its guaranteed jobs use, by SKU.", ["vc", "sku"])
        free = _g("pai_vc_free", "Leaf cells free in its quota, by SKU.", ["vc", "sku"])
        bad = _g("pai_vc_bad", "Leaf cells of its quota on unhealthy hardware, by SKU.", ["vc", "sku"])
        queue = _g("pai_vc_queue_length", "Jobs waiting in the virtual cluster.", ["vc"])
        wait = _g("pai_vc_queue_oldest_wait_seconds", "How long the longest-waiting job has waited.", ["vc"])
        running = _g("pai_vc_running_jobs", "Jobs running in the virtual cluster.", ["vc"])
        util = _g("pai_vc_gpu_utilization_percent", "Mean utilisation of the GPUs its running tasks hold.", ["vc"])
        for vc, v in sorted(s.vcs.items()):
            for sku, e in sorted(v.get("skus", {}).items()):
                cap.add_metric([vc, sku], e.get("capacity", 0))
                used.add_metric([vc, sku], e.get("used", 0))
                free.add_metric([vc, sku], e.get("free", 0))
                bad.add_metric([vc, sku], e.get("bad", 0))
            queue.add_metric([vc], v.get("queue", 0))
            wait.add_metric([vc], v.get("oldest_wait", 0.0))
            running.add_metric([vc], v.get("running", 0))
            if v.get("gpu_utilization") is not None:
                util.add_metric([vc], v["gpu_utilization"])
        yield from (cap, used, free, bad, queue, wait, running, util)
