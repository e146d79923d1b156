"""pai_hub/monitoring without a server: GPU sources (NVML absent, a fake NVML, simulated readings),
the exposition, alert rules and their evaluation, GPU health decisions, usage arithmetic."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pai_hub.backends.base import GpuInfo
from pai_hub.monitoring import alerts as al
from pai_hub.monitoring import usage
from pai_hub.monitoring.gpu import GpuReading, NvmlSource, SimulatedSource, open_source
from pai_hub.monitoring.metrics import Metrics, Snapshot, TaskSample
from pai_hub.monitoring.monitor import HealthTracker


def families(metrics: Metrics) -> dict[str, list]:
    text = generate_latest(metrics.registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


# -- GPU sources -----------------------------------------------------------------------------------
def test_nvml_absent_means_no_gpu_series_and_no_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    assert NvmlSource.open() is None
    real = [GpuInfo(0, "GPU-x", "A100", 40000)]
    assert open_source(real, tmp_path / "simulated-gpus.json") is None
    assert open_source([], tmp_path / "simulated-gpus.json") is None
    m = Metrics()
    m.snapshot = Snapshot(time=1.0, node="n1", gpu_source="none",
                          nodes={"n1": {"healthy": True, "skus": {"cpu": {"capacity": 4, "used": 1, "free": 3}}}})
    fams = families(m)
    assert not [name for name in fams if name.startswith("pai_gpu_") and name != "pai_gpu_source_info"
                and fams[name]]
    assert fams["pai_gpu_source_info"][0].labels == {"source": "none"}
    assert fams["pai_node_capacity"][0].value == 4


class _NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


def fake_nvml(events: list[tuple[int, int]]) -> types.SimpleNamespace:
    """Three GPUs: 0 fine, 1 without temperature support, 2 lost. XID events on the queue."""
    ns = types.SimpleNamespace(
        NVMLError=_NVMLError, NVML_ERROR_NOT_SUPPORTED=3, NVML_ERROR_NO_PERMISSION=4, NVML_ERROR_TIMEOUT=10,
        NVML_ERROR_GPU_IS_LOST=15, NVML_TEMPERATURE_GPU=0, NVML_MEMORY_ERROR_TYPE_UNCORRECTED=1,
        NVML_VOLATILE_ECC=0, nvmlEventTypeXidCriticalError=8, shut=False, registered=[],
    )
    queue = list(events)

    def handle(i):
        if i == 2:
            raise _NVMLError(15)
        return f"h{i}"

    def temperature(h, sensor):
        if h == "h1":
            raise _NVMLError(3)
        return 40 + int(h[1:])

    def wait(event_set, timeout):
        if not queue:
            raise _NVMLError(10)
        dev, xid = queue.pop(0)
        return types.SimpleNamespace(device=f"h{dev}", eventType=8, eventData=xid)

    ns.nvmlInit = lambda: None
    ns.nvmlShutdown = lambda: setattr(ns, "shut", True)
    ns.nvmlDeviceGetCount = lambda: 3
    ns.nvmlDeviceGetHandleByIndex = handle
    ns.nvmlDeviceGetUUID = lambda h: f"GPU-{h}".encode()
    ns.nvmlDeviceGetName = lambda h: b"Fake H100"
    ns.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=70, memory=10)
    ns.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=2 * 2**30, total=80 * 2**30, free=0)
    ns.nvmlDeviceGetTemperature = temperature
    ns.nvmlDeviceGetPowerUsage = lambda h: 250_000
    ns.nvmlDeviceGetTotalEccErrors = lambda h, kind, counter: 0
    ns.nvmlEventSetCreate = lambda: "set"
    ns.nvmlEventSetFree = lambda s: None
    ns.nvmlDeviceGetSupportedEventTypes = lambda h: 8 | 16
    ns.nvmlDeviceRegisterEvents = lambda h, mask, s: ns.registered.append(h)
    ns.nvmlEventSetWait_v2 = wait
    ns.nvmlDeviceGetIndex = lambda h: int(h[1:])
    return ns


def test_nvml_source_reads_each_value_on_its_own_and_holds_critical_xids(monkeypatch):
    nvml = fake_nvml([(0, 79), (0, 13), (1, 13)])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    src = NvmlSource.open()
    assert src is not None and src.kind == "nvml" and nvml.registered == ["h0", "h1"]
    r0, r1, r2 = src.read()
    assert (r0.utilization, r0.memory_used_mb, r0.memory_total_mb, r0.temperature_c, r0.power_w) == (
        70.0, 2048.0, 81920.0, 40.0, 250.0)
    assert r0.uuid == "GPU-h0" and r0.model == "Fake H100"
    assert r0.new_xids == (79, 13) and r0.xids == (79,) and not r0.healthy  # 13 is an application's XID
    assert r1.temperature_c is None and r1.utilization == 70.0  # not supported: only that value is missing
    assert r1.new_xids == (13,) and r1.healthy
    assert r2.lost and not r2.healthy and r2.utilization is None
    again = src.read()
    assert again[0].xids == (79,) and again[0].new_xids == ()  # held until cleared
    src.clear()
    assert src.read()[0].healthy
    src.close()
    assert nvml.shut


def test_simulated_readings_file(tmp_path):
    path = tmp_path / "simulated-gpus.json"
    gpus = [GpuInfo(i, f"SIM-GPU-{i}", "simulated", 16384, simulated=True) for i in range(2)]
    src = open_source(gpus, path)
    assert isinstance(src, SimulatedSource)
    r = src.read()
    assert [x.utilization for x in r] == [None, None] and all(x.healthy for x in r)
    assert r[0].memory_total_mb == 16384
    path.write_text(json.dumps({"0": {"utilization": 85, "memory_used_mb": 4096, "temperature": 61, "power_w": 180},
                                "1": {"ecc_errors": 2, "xid": [31, 48]}}))
    r0, r1 = src.read()
    assert (r0.utilization, r0.memory_used_mb, r0.temperature_c, r0.power_w) == (85, 4096, 61, 180)
    assert r1.ecc_errors == 2 and r1.xids == (48,) and r1.new_xids == (31, 48) and not r1.healthy
    assert src.read()[1].new_xids == ()
    path.write_text("{not json")
    assert src.read()[1].ecc_errors == 2  # a broken edit keeps the previous readings
    path.write_text(json.dumps({"1": {"lost": True}}))
    assert src.read()[1].problems == ["lost (does not answer NVML)"]


def test_exposition_with_simulated_readings_parses():
    m = Metrics()
    m.snapshot = Snapshot(
        time=1.0, node="n1", gpu_source="simulated",
        gpus=[GpuReading(0, "SIM-GPU-0", "simulated", True, 85.0, 4096.0, 16384.0, 61.0, 180.0, 0),
              GpuReading(1, "SIM-GPU-1", "simulated", True, None, None, 16384.0, None, None, 3)],
        tasks=[TaskSample("alice~train", "alice", "default", "worker", 0, "n1", (0,), 85.0, 4096.0)],
        vcs={"default": {"skus": {"simulated": {"capacity": 2, "used": 1, "free": 1, "bad": 0}}, "queue": 3,
                         "oldest_wait": 12.5, "running": 1, "gpu_utilization": 85.0}},
        jobs={("default", "RUNNING"): 1, ("default", "WAITING"): 3},
    )
    m.scheduling.observe(0.002)
    m.transitions.labels("TaskStarted").inc()
    m.observe_request("JobsHandler", "GET", 200, 0.004)
    fams = families(m)
    util = {s.labels["gpu"]: s.value for s in fams["pai_gpu_utilization_percent"]}
    assert util == {"0": 85.0}
    assert {s.labels["gpu"]: s.value for s in fams["pai_gpu_healthy"]} == {"0": 1.0, "1": 0.0}
    assert fams["pai_gpu_memory_used_bytes"][0].value == 4096 * 2**20
    task = fams["pai_task_gpu_utilization_percent"][0]
    assert task.labels == {"job_name": "alice~train", "username": "alice", "vc": "default", "task_role": "worker",
                           "task_index": "0", "node": "n1"} and task.value == 85.0
    assert fams["pai_vc_queue_length"][0].value == 3
    assert fams["pai_vc_queue_oldest_wait_seconds"][0].value == 12.5
    assert any(s.name == "pai_scheduler_decision_seconds_count" and s.value == 1
               for s in fams["pai_scheduler_decision_seconds"])
    assert any(s.labels.get("handler") == "JobsHandler" for s in fams["pai_api_request_duration_seconds"])
    assert any(s.labels.get("reason") == "TaskStarted" for s in fams["pai_orchestrator_transitions"])


# -- alert rules -----------------------------------------------------------------------------------
def test_default_rules_and_their_prometheus_export():
    rules = al.default_rules()
    assert [(r.alert, r.kind, r.for_seconds) for r in rules] == [
        ("GpuUnhealthy", "gpu_unhealthy", 0), ("JobLowGpuUtilization", "task_low_gpu_utilization", 1800),
        ("VcQueueStuck", "vc_queue_stuck", 1800)]
    text = al.prometheus_rules(rules)
    import yaml

    doc = yaml.safe_load(text)
    exported = {r["alert"]: r for r in doc["groups"][0]["rules"]}
    assert exported["JobLowGpuUtilization"]["expr"] == "pai_task_gpu_utilization_percent < 10"
    assert exported["JobLowGpuUtilization"]["for"] == "30m"
    assert "{{ $labels.job_name }}" in exported["JobLowGpuUtilization"]["annotations"]["summary"]


@pytest.mark.parametrize("text, error", [
    ("rules: [{alert: X, kind: nope}]", "kind"),
    ("rules: [{alert: X, kind: gpu_unhealthy, for: soon}]", "for"),
    ("rules: [{alert: 'a b', kind: gpu_unhealthy}]", "alert"),
    ("rules: [{alert: X, kind: gpu_unhealthy}, {alert: X, kind: vc_queue_stuck}]", "twice"),
    ("rules: [{alert: X, kind: gpu_unhealthy, colour: red}]", "unknown"),
    ("rules: [", "YAML"),
])
def test_rule_errors_name_the_key(text, error):
    with pytest.raises(al.RuleError, match=error):
        al.parse_rules(text)


@pytest.mark.parametrize("text, message", [
    ("rules: [{alert: X, kind: nope}]",
     "rules[0].kind: must be one of 'gpu_unhealthy', 'task_low_gpu_utilization' or 'vc_queue_stuck', got 'nope'"),
    ("rules: [{alert: X, kind: gpu_unhealthy}, {alert: Y, kind: gpu_unhealthy, threshold: high}]",
     "rules[1].threshold: must be a number, got 'high' (percent of GPU utilisation)"),
    ("rules: [{alert: '1x', kind: gpu_unhealthy}]", "rules[0].alert: must be the alert's name: letters, digits and _"),
    ("rules: [{kind: gpu_unhealthy}]", "rules[0].alert: is required"),
    ("rules: [{alert: X, kind: gpu_unhealthy, colour: red}]",
     "rules[0].colour: unknown key 'colour'; a rule has: alert, kind, for, severity"),
    ("rules: [{alert: X, kind: gpu_unhealthy, labels: [a]}]", "rules[0].labels: must be a mapping, got list"),
])
def test_rule_errors_give_the_full_path_and_the_fix(text, message):
    with pytest.raises(al.RuleError) as err:
        al.parse_rules(text)
    assert message in str(err.value)


def test_every_wrong_rule_key_is_reported_at_once():
    with pytest.raises(al.RuleError) as err:
        al.parse_rules("rules: [{alert: X, kind: nope, for: soon}]")
    assert "rules[0].kind:" in str(err.value) and "rules[0].for: must be a duration such as 30s" in str(err.value)


def test_rules_file_keeps_previous_rules_on_a_broken_edit(tmp_path):
    path = tmp_path / "alert-rules.yaml"
    rf = al.RulesFile(path)
    assert path.read_text() == al.DEFAULT_RULES_TEXT and len(rf.rules) == 3 and rf.error is None
    path.write_text("rules: [{alert: Only, kind: gpu_unhealthy}]")
    assert [r.alert for r in rf.reload()] == ["Only"]
    path.write_text("rules: [{alert: Bad, kind: nope}]")
    assert [r.alert for r in rf.reload()] == ["Only"] and "kind" in (rf.error or "")


def test_engine_for_semantics_resolution_and_webhook_payload():
    rule = al.parse_rules("rules: [{alert: Low, kind: task_low_gpu_utilization, threshold: 10, for: 60s, "
                          "summary: 'job {job_name} at {value}%'}]")[0]
    engine = al.AlertEngine()
    labels = {"job_name": "alice~a", "username": "alice"}

    def obs(util):
        return lambda r: [al.Observation(labels, util < r.threshold, util)]

    assert engine.evaluate(0, [rule], obs(3)) == []
    assert engine.evaluate(59, [rule], obs(4)) == []
    changed = engine.evaluate(60, [rule], obs(5))
    assert len(changed) == 1 and changed[0][1].state == "firing"
    alert = changed[0][1]
    assert alert.labels == {"alertname": "Low", "severity": "warning", **labels}
    assert alert.annotations["summary"] == "job alice~a at 5%" and alert.active_at == 0 and alert.starts_at == 60
    assert engine.evaluate(61, [rule], obs(2)) == []  # still firing: no new notification
    body = al.webhook_payload([alert])
    assert body["version"] == "4" and body["status"] == "firing" and body["alerts"][0]["labels"]["job_name"] == "alice~a"
    changed = engine.evaluate(62, [rule], obs(50))
    assert changed[0][1].state == "resolved" and changed[0][1].ends_at == 62
    assert al.webhook_payload([changed[0][1]])["status"] == "resolved"
    assert engine.alerts("firing") == [] and len(engine.alerts("all")) == 1
    assert engine.evaluate(63, [rule], obs(1)) == []  # pending again from 63


# -- GPU health --------------------------------------------------------------------------------------
def test_health_tracker_marks_clears_and_respects_an_admin():
    h = HealthTracker()
    ok = [GpuReading(0), GpuReading(1)]
    ecc1 = [GpuReading(0), GpuReading(1, ecc_errors=1)]
    ecc2 = [GpuReading(0), GpuReading(1, ecc_errors=2)]
    assert h.decide("n", ok, True) is None
    assert h.decide("n", ecc1, True) == "bad"
    assert h.decide("n", ecc1, False) is None  # marked, waiting for recovery
    assert h.decide("n", ok, False) == "healthy"
    assert h.decide("n", ecc1, True) == "bad"
    assert h.decide("n", ecc1, True) == "cleared"  # the scheduler shows it healthy: an admin cleared it
    assert h.decide("n", ecc1, True) is None  # same fault: stays cleared
    assert h.decide("n", ecc2, True) == "bad"  # a new fault
    assert h.decide("n", ecc2, True, scheduler_id=1) == "bad"  # the scheduler was replaced (reload): mark again
    assert h.decide("n", ok, False) == "healthy"
    assert h.decide("n", ecc1, True) == "bad"
    assert h.decide("n", ecc2, True) == "bad"  # cleared by an admin, but the fault changed meanwhile
    assert h.decide("n", ok, False) == "healthy"
    assert h.decide("m", ok, False) is None  # bad for another reason: left alone


# -- usage -------------------------------------------------------------------------------------------
def test_usage_clips_to_the_window_and_counts_running_tasks_to_now():
    rows = [
        {"task_id": "1.0.w.0.0", "job_id": 1, "node": "n", "gpus": [0, 1], "launched_at": 100.0, "completed_at": 3700.0,
         "username": "alice", "virtual_cluster": "a", "framework_name": "alice~x"},
        {"task_id": "2.0.w.0.0", "job_id": 2, "node": "n", "gpus": [2], "launched_at": 0.0, "completed_at": None,
         "username": "bob", "virtual_cluster": "b", "framework_name": "bob~y"},
        {"task_id": "3.0.w.0.0", "job_id": 3, "node": "n", "gpus": [], "launched_at": 0.0, "completed_at": 10.0,
         "username": "bob", "virtual_cluster": "b", "framework_name": "bob~cpu"},
    ]
    rep = usage.report(rows, since=1900.0, until=10_000.0, by="user", now=5500.0, sku_of={"n": "V100"}.get)
    got = {r["key"]: r["gpuHours"] for r in rep["rows"]}
    assert got == pytest.approx({"alice": 2 * 1800 / 3600, "bob": 1 * 3600 / 3600})
    assert rep["totalGpuHours"] == pytest.approx(2.0)
    assert usage.report(rows, 0, 10_000, "sku", now=5500.0, sku_of={"n": "V100"}.get)["rows"][0]["key"] == "V100"
    assert usage.to_csv(rep).splitlines()[0] == "user,gpu_hours,tasks,jobs,since,until"
    assert usage.parse_time("2024-05-01", 0) == 1714521600
    assert usage.parse_time("1714521600000", 0) == 1714521600
    with pytest.raises(ValueError):
        usage.parse_time("yesterday", 0)


def test_log_function_records_latency_by_handler_class():
    from pai_hub.monitoring import log_function

    m = Metrics()

    class JobHandler:
        application = types.SimpleNamespace(settings={"services": types.SimpleNamespace(
            monitor=types.SimpleNamespace(metrics=m))})
        request = types.SimpleNamespace(method="GET", uri="/api/v2/jobs/a~b", remote_ip="127.0.0.1",
                                        request_time=lambda: 0.012)

        def get_status(self):
            return 200

    log_function(JobHandler())
    samples = families(m)["pai_api_request_duration_seconds"]
    count = next(s for s in samples if s.name.endswith("_count"))
    assert count.labels == {"handler": "JobHandler", "method": "GET", "status": "200"} and count.value == 1


def test_monitoring_routes_are_served_under_both_prefixes():
    from pai_hub.app import routes

    paths = {p.removesuffix("/?") for p, _ in routes()}  # every route also takes a trailing slash
    for p in ("/metrics", "/api/v2/alerts", "/api/v2/usage", "/api/v2/cluster/timeline",
              "/rest-server/api/v2/alerts", "/api/v2/jobs/([^/]+~[^/]+)/timeline"):
        assert p in paths, p
    assert Path(__file__).parent.joinpath("__init__.py").exists()
