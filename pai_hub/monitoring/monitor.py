"""The monitor: polls the GPUs, keeps node health, evaluates the alert rules, feeds the metrics.

It runs inside the control plane's event loop. Each poll (``Monitoring.interval``, default 10 s):
read the GPUs (NVML in a worker thread, or the simulated readings file); mark a node bad in the
scheduler when one of its GPUs turns unhealthy, and healthy again when it recovers (HiveD's
bad-node semantics: its free cells are not used, its running tasks keep running); take a
snapshot of tasks, nodes and VCs for /metrics; evaluate the alert rules on it and POST what fired
or resolved to the webhook. It also watches every committed orchestrator turn
(``Controller.observers``) for scheduling latency, preemptions and state transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from traitlets import Bool, Float, Int, List, Unicode
from traitlets.config import Configurable

from ..cluster_config import ClusterConfig
from ..orchestrator.loop import Controller
from . import alerts as alerting
from .gpu import APPLICATION_XIDS, SIMULATED_READINGS_FILE, GpuReading, open_source
from .metrics import Metrics, Snapshot, TaskSample

if TYPE_CHECKING:
    from ..orchestrator.effects import Effects

log = logging.getLogger("pai_hub.monitoring")


class Monitoring(Configurable):
    """Settings of pai_hub/monitoring: ``c.Monitoring.<name>`` in pai_config.py."""

    interval = Float(10.0, help="Seconds between polls of the GPUs, health checks and alert "
                     "evaluations.").tag(config=True)
    metrics_token = Unicode("", help="The bearer token Prometheus presents to scrape /metrics. Empty: one is "
                            "generated on first start into <data_dir>/metrics-token (mode 0600). Admins' API "
                            "tokens are accepted too; nothing else is.").tag(config=True)
    alert_rules_file = Unicode("", help="The alert rules (YAML). Empty: <data_dir>/alert-rules.yaml, written "
                               "with the default rules on first start. Re-read when it changes.").tag(config=True)
    webhook_url = Unicode("", help="Where fired and resolved alerts are POSTed (Alertmanager's webhook JSON, "
                          "version 4). Empty: no notifications.").tag(config=True)
    webhook_timeout = Float(5.0, help="Seconds per webhook attempt (three attempts).").tag(config=True)
    external_url = Unicode("", help="This server's URL as users reach it, for the webhook's externalURL and "
                           "generatorURL.").tag(config=True)
    simulated_gpu_readings = Unicode("", help="The simulated GPUs' readings and injected faults (JSON). Empty: "
                                     "<data_dir>/simulated-gpus.json. Used only for simulated GPUs; real GPUs "
                                     "are read through NVML.").tag(config=True)
    use_nvml = Bool(True, help="Read real GPUs through NVML (pynvml) when present.").tag(config=True)
    gpu_health = Bool(True, help="Mark a node bad in the scheduler while one of its GPUs is unhealthy (lost, "
                      "uncorrected ECC errors, a critical XID).").tag(config=True)
    ignored_xids = List(Int(), list(APPLICATION_XIDS), help="XIDs that report an application's fault and do not "
                        "make a GPU unhealthy.").tag(config=True)
    loop_lag_interval = Float(0.05, help="Seconds between two looks at the event loop (how late a timer fires: a "
                              "handler or a turn that holds the loop delays every other request); 0: not "
                              "measured. Exported as pai_event_loop_lag_seconds and "
                              "pai_event_loop_held_seconds.").tag(config=True)


class HealthTracker:
    """Which nodes GPU health marked bad, and which faults an admin has cleared by hand.

    A node is marked bad once, when a GPU fault appears. If the scheduler later shows the node
    healthy while the same fault persists, an admin cleared it (``PUT /cluster/nodes/{node}/health``):
    it is not marked again until the fault changes (more ECC errors, a new XID, lost again). When
    the fault is gone the node is marked healthy — unless it was bad for another reason (an
    admin's mark), which GPU health leaves alone.
    """

    def __init__(self) -> None:
        self.marked: dict[str, tuple] = {}  # node -> fault signature when marked bad
        self.cleared: dict[str, tuple] = {}  # node -> fault signature an admin cleared
        self.scheduler_id: dict[str, int] = {}

    def decide(self, node: str, readings: list[GpuReading], scheduler_healthy: bool,
               scheduler_id: int = 0) -> str | None:
        """``"bad"``, ``"healthy"``, ``"cleared"`` (an admin cleared a persisting fault) or None."""
        faults = tuple(r.fault_signature() for r in readings if not r.healthy)
        if faults:
            if node in self.marked:
                if not scheduler_healthy:
                    self.marked[node] = faults
                    return None
                if self.scheduler_id.get(node) != scheduler_id:  # a reload replaced the scheduler
                    self.marked[node] = faults
                    self.scheduler_id[node] = scheduler_id
                    return "bad"
                self.cleared[node] = self.marked.pop(node)  # the fault the admin saw when clearing
                if self.cleared[node] != faults:  # ... and it has changed since: a new fault
                    self.marked[node] = faults
                    return "bad"
                return "cleared"
            if self.cleared.get(node) == faults or not scheduler_healthy:
                return None
            self.cleared.pop(node, None)
            self.marked[node] = faults
            self.scheduler_id[node] = scheduler_id
            return "bad"
        self.cleared.pop(node, None)
        if node in self.marked:
            del self.marked[node]
            return "healthy" if not scheduler_healthy else None
        return None


def _read_or_create_token(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class Monitor:
    """Watches one control plane: its loop's turns (``controller.observers``), its GPUs and its cluster."""

    def __init__(self, controller: Controller, cluster: ClusterConfig, data_dir: Path, settings: Monitoring,
                 clock: Any = time.time) -> None:
        self.controller = controller
        self.cluster = cluster
        self.settings = settings
        self.clock = clock
        data = Path(data_dir)
        s = self.settings
        self.metrics = Metrics()
        self.metrics_token = s.metrics_token or _read_or_create_token(data / "metrics-token")
        self.rules = alerting.RulesFile(Path(s.alert_rules_file) if s.alert_rules_file else data / "alert-rules.yaml")
        self.engine = alerting.AlertEngine()
        self.health = HealthTracker()
        self.readings_file = Path(s.simulated_gpu_readings) if s.simulated_gpu_readings else data / SIMULATED_READINGS_FILE
        gpu_node = next((n for n in controller.nodes() if n.gpus), None)
        self.node = gpu_node.name if gpu_node is not None else None
        self.source = open_source(gpu_node.gpus if gpu_node else (), self.readings_file, s.use_nvml, s.ignored_xids)
        self._task: asyncio.Task | None = None
        self._lag_task: asyncio.Task | None = None
        self._sends: set[asyncio.Task] = set()
        self._last_poll: float | None = None
        self._http: httpx.AsyncClient | None = None
        self.placed: dict[str, int] = {}  # vc -> gangs placed from its queue (since start)
        self._placed_seen: dict[str, int] = {}  # ... as of the previous poll

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Monitor:
        self.controller.observers.append(self.observe)
        for vc in self.cluster.virtual_clusters:
            self.metrics.placements.labels(vc)  # every VC has the series from the start (for changes())
        self._task = asyncio.create_task(self._run(), name="pai-monitoring")
        if self.settings.loop_lag_interval > 0:
            self._lag_task = asyncio.create_task(self._watch_loop_lag(), name="pai-loop-lag")
        log.info("monitoring: GPU readings from %s%s, poll every %gs, alert rules %s", self.source_kind,
                 f" ({self.readings_file})" if self.source_kind == "simulated" else "", self.settings.interval,
                 self.rules.path)
        return self

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.controller.observers.remove(self.observe)
        for task in (self._task, self._lag_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for t in list(self._sends):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, self.settings.webhook_timeout * 3 + 5)
        if self._http is not None:
            await self._http.aclose()
        if self.source is not None:
            self.source.close()

    @property
    def source_kind(self) -> str:
        return self.source.kind if self.source is not None else "none"

    def scrape_allowed(self, authorization: str) -> bool:
        scheme, _, value = authorization.partition(" ")
        return scheme.lower() == "bearer" and bool(value.strip()) and hmac.compare_digest(
            value.strip().encode(), self.metrics_token.encode())

    # -- the orchestrator's turns ---------------------------------------------------------------
    def observe(self, fx: Effects, scheduling: float, now: float) -> None:
        m = self.metrics
        m.turns.inc()
        m.scheduling.observe(scheduling)
        # counted per reason first: a turn carries many events of few reasons, and each labelled
        # increment takes the metric's locks
        reasons: dict[str, int] = {}
        placed: dict[str, int] = {}
        for ev in fx.events:
            reason = ev.reason
            reasons[reason] = reasons.get(reason, 0) + 1
            if reason == "Placed":
                job = self.controller.job_by_id(ev.job_id)
                if job is not None:
                    placed[job.virtual_cluster] = placed.get(job.virtual_cluster, 0) + 1
        for vc, count in placed.items():
            m.placements.labels(vc).inc(count)
            self.placed[vc] = self.placed.get(vc, 0) + count
        for reason, count in reasons.items():
            m.transitions.labels(reason).inc(count)
        if "Preempted" in reasons:
            m.preemptions.inc(reasons["Preempted"])

    async def _watch_loop_lag(self) -> None:
        """Sleep ``loop_lag_interval`` again and again. How much later than asked each wake-up comes
        is the loop's lag, what every request waited extra (JupyterHub measures its loop the same
        way); on a busy machine it includes time the OS gave other processes. The CPU time the
        loop's own thread spent meanwhile, beyond the interval, is work that held the loop: what a
        handler that hashes a password or waits for the store on the loop shows up in."""
        interval = self.settings.loop_lag_interval
        loop = asyncio.get_running_loop()
        while True:
            asked, cpu = loop.time() + interval, time.thread_time()
            await asyncio.sleep(interval)
            self.metrics.loop_lag.observe(max(0.0, loop.time() - asked))
            self.metrics.loop_held.observe(max(0.0, time.thread_time() - cpu - interval))

    # -- polling --------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("monitoring poll failed")
            self.metrics.poll_seconds.set(time.monotonic() - started)
            await asyncio.sleep(max(0.0, self.settings.interval - (time.monotonic() - started)))

    async def poll(self) -> Snapshot:
        """One poll: read, check health, snapshot, evaluate alerts (and notify)."""
        readings: list[GpuReading] = []
        if self.source is not None:
            readings = await asyncio.get_running_loop().run_in_executor(None, self.source.read)
        now = self.clock()
        if self.node is not None:
            for r in readings:
                for xid in r.new_xids:
                    self.metrics.xid_events.labels(self.node, str(r.index), str(xid)).inc()
            if self.settings.gpu_health:
                await self._check_health(self.node, readings, now)
        snap = self.snapshot(readings, now)
        for vc, v in snap.vcs.items():  # did the queue move since the previous poll?
            v["moved"] = self.placed.get(vc, 0) != self._placed_seen.get(vc, 0)
            self._placed_seen[vc] = self.placed.get(vc, 0)
        self._account_usage(snap, now)
        rules = self.rules.reload()
        self.metrics.rules_error.set(1 if self.rules.error else 0)
        changed = self.engine.evaluate(now, rules, lambda rule: self.observations(rule, snap))
        snap.alerts = {}
        for a in self.engine.firing.values():
            key = (a.labels.get("alertname", ""), a.labels.get("severity", ""))
            snap.alerts[key] = snap.alerts.get(key, 0) + 1
        self.metrics.snapshot = snap
        if changed:
            for _rule, alert in changed:
                log.log(logging.WARNING if alert.ends_at is None else logging.INFO, "alert %s %s: %s",
                        alert.labels.get("alertname"), alert.state, alert.annotations.get("summary"))
            self._notify([a for _, a in changed])
        return snap

    async def _check_health(self, node: str, readings: list[GpuReading], now: float) -> None:
        status = self.controller.cluster_status()["nodes"].get(node, {"healthy": True})
        action = self.health.decide(node, readings, bool(status.get("healthy", True)),
                                    self.controller.scheduler_identity())
        if action in ("bad", "healthy"):
            healthy = action == "healthy"
            problems = "; ".join(f"GPU {r.index}: {', '.join(r.problems)}" for r in readings if not r.healthy)
            log.warning("GPU health: node %s marked %s%s", node, "healthy" if healthy else "bad",
                        f" ({problems})" if problems else "")
            await self.controller.call(lambda m, t: m.set_node_health(node, healthy, t))
            self.metrics.node_marks.labels(node, "true" if healthy else "false").inc()
        elif action == "cleared":
            log.warning("GPU health: an admin marked node %s healthy while its GPU fault persists; it stays "
                        "healthy until the fault changes", node)
            if self.source is not None:
                self.source.clear()

    def snapshot(self, readings: list[GpuReading], now: float) -> Snapshot:
        controller = self.controller
        by_index = {r.index: r for r in readings}
        tasks: list[TaskSample] = []
        vc_util: dict[str, list[float]] = {}
        all_jobs = controller.jobs()
        for job in all_jobs:
            if job.state != "RUNNING":
                continue
            for t in controller.tasks(job.id):
                if t.launch_state != "running" or not t.gpus:
                    continue
                rs = [by_index[g] for g in t.gpus if g in by_index] if t.node == self.node else []
                util = [r.utilization for r in rs if r.utilization is not None]
                mem = [r.memory_used_mb for r in rs if r.memory_used_mb is not None]
                sample = TaskSample(job.framework_name, job.username, job.virtual_cluster, t.role, t.task_index,
                                    t.node or "", tuple(t.gpus), sum(util) / len(util) if util else None,
                                    sum(mem) if mem else None)
                tasks.append(sample)
                vc_util.setdefault(job.virtual_cluster, []).extend(util)
        vcs: dict[str, dict[str, Any]] = {}
        for vc in self.cluster.virtual_clusters:
            self.metrics.placements.labels(vc)  # a VC added by a reload gets its series too
            try:
                st = controller.vc_status(vc)
            except KeyError:
                st = {}
            util = vc_util.get(vc)
            vcs[vc] = {"skus": {k: v for k, v in st.items() if k != "nodes"}, "queue": 0, "oldest_wait": 0.0,
                       "running": 0, "gpu_utilization": sum(util) / len(util) if util else None}
        jobs: dict[tuple[str, str], int] = {}
        for job in all_jobs:
            key = (job.virtual_cluster, job.state)
            jobs[key] = jobs.get(key, 0) + 1
            v = vcs.get(job.virtual_cluster)
            if v is None or job.state in ("SUCCEEDED", "FAILED", "STOPPED"):
                continue
            if job.state == "WAITING":
                v["queue"] += 1
                att = controller.attempt(job.id)
                since = att.created_at if att is not None else job.submitted_at
                v["oldest_wait"] = max(v["oldest_wait"], now - since)
            elif job.state == "RUNNING":
                v["running"] += 1
        try:
            nodes = controller.cluster_status()["nodes"]
        except Exception:
            nodes = {}
        return Snapshot(time=now, node=self.node, gpu_source=self.source_kind, gpus=readings, tasks=tasks,
                        nodes=nodes, vcs=vcs, jobs=jobs)

    def _account_usage(self, snap: Snapshot, now: float) -> None:
        last, self._last_poll = self._last_poll, now
        if last is None or now <= last:
            return
        for t in snap.tasks:
            self.metrics.usage.labels(t.vc, t.username).inc(len(t.gpus) * (now - last))

    # -- alert rules over the snapshot ----------------------------------------------------------
    def observations(self, rule: alerting.Rule, snap: Snapshot) -> list[alerting.Observation]:
        Obs = alerting.Observation
        if rule.kind == "gpu_unhealthy":
            return [Obs({"node": snap.node or "", "gpu": str(r.index)}, not r.healthy, 0.0 if not r.healthy else 1.0,
                        "; ".join(r.problems)) for r in snap.gpus]
        if rule.kind == "task_low_gpu_utilization":
            return [Obs({"job_name": t.job_name, "username": t.username, "vc": t.vc, "task_role": t.role,
                         "task_index": str(t.index), "node": t.node}, t.utilization < rule.threshold,
                        round(t.utilization, 2),
                        f"mean utilisation of GPUs {','.join(map(str, t.gpus))}: {t.utilization:.1f}%")
                    for t in snap.tasks if t.utilization is not None]
        if rule.kind == "vc_queue_stuck":
            return [Obs({"vc": vc}, v["queue"] > 0 and not v.get("moved", False), float(v["queue"]),
                        f"{v['queue']} job(s) waiting; the oldest for {v['oldest_wait'] / 60:.1f} minutes")
                    for vc, v in snap.vcs.items()]
        return []

    # -- notifications --------------------------------------------------------------------------
    def _notify(self, changed: list[alerting.Alert]) -> None:
        url = self.settings.webhook_url
        if not url or not changed:
            return
        payload = alerting.webhook_payload(changed, self.settings.external_url)
        task = asyncio.create_task(self._post(url, payload))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _post(self, url: str, payload: dict[str, Any]) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.webhook_timeout)
        for attempt in range(3):
            try:
                r = await self._http.post(url, json=payload)
                if r.status_code < 300:
                    self.metrics.notifications.labels("ok").inc()
                    return
                err = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                err = str(exc) or type(exc).__name__
            if attempt < 2:
                await asyncio.sleep(0.5 * 2**attempt)
        self.metrics.notifications.labels("failed").inc()
        log.error("alert webhook %s failed after 3 attempts: %s", url, err)
