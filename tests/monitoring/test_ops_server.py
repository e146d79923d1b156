"""Monitoring on a real `pai server` (4 simulated GPUs, polls every 0.2 s): /metrics and its auth,
a real Prometheus scraping it, the low-utilisation alert (API and webhook), usage reports that add
up to the jobs that ran, and job timelines (API, CSV and CLI)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pai_hub.monitoring import deploy
from pai_hub.monitoring.alerts import parse_rules, prometheus_rules
from tests.monitoring.ops import Prometheus, WebhookReceiver, ops_server, until
from tests.server import REPO, job_yaml, wait_state

RULES = """
rules:
  - alert: GpuUnhealthy
    kind: gpu_unhealthy
    for: 0s
    severity: critical
    summary: "GPU {gpu} of node {node} is unhealthy"
  - alert: JobLowGpuUtilization
    kind: task_low_gpu_utilization
    threshold: 10
    for: 1s
    summary: "task {task_role}/{task_index} of {job_name} used under 10% of its GPUs"
"""
IDLE = {str(i): {"utilization": 3, "memory_used_mb": 100, "temperature": 40, "power_w": 60} for i in range(4)}


@pytest.fixture(scope="module")
def hook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, hook):
    server = ops_server(tmp_path_factory.mktemp("ops"), rules=RULES, webhook=hook.url, readings=IDLE)
    yield server
    server.stop()
    server.kill_tasks()


@pytest.fixture(scope="module")
def users(srv):
    return {name: srv.add_user(name) for name in ("alice", "bob", "carol", "dave")}


def metrics(srv, token: str) -> dict[str, list]:
    r = httpx.get(srv.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def test_metrics_need_the_scrape_token_or_an_admin(srv, users):
    assert httpx.get(srv.url + "/metrics").status_code == 401
    assert httpx.get(srv.url + "/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = httpx.get(srv.url + "/metrics", headers={"Authorization": f"Bearer {users['bob']}"})
    assert r.status_code == 403 and r.json()["code"] == "ForbiddenUserError"
    scrape = (srv.data_dir / "metrics-token").read_text().strip()
    assert oct((srv.data_dir / "metrics-token").stat().st_mode & 0o777) == "0o600"
    fams = metrics(srv, scrape)
    assert metrics(srv, srv.admin_token)  # an admin's API token works too
    until(lambda: metrics(srv, scrape)["pai_gpu_utilization_percent"], what="GPU readings")
    fams = metrics(srv, scrape)
    assert {s.labels["gpu"]: s.value for s in fams["pai_gpu_utilization_percent"]} == {str(i): 3.0 for i in range(4)}
    assert fams["pai_gpu_source_info"][0].labels["source"] == "simulated"
    assert {s.labels["sku"] for s in fams["pai_vc_capacity"]} >= {"simulated"}
    assert "pai_scheduler_decision_seconds" in fams and "pai_orchestrator_transitions" in fams
    handlers = {s.labels.get("handler") for s in fams["pai_api_request_duration_seconds"]}
    assert {"MetricsHandler", "LoginHandler"} <= handlers


def test_low_utilisation_alert_is_listed_for_its_owner_and_posted(srv, users, hook):
    alice = srv.client(users["alice"])
    r = alice.post("/api/v2/jobs", content=job_yaml("idle", ["sleep 60"], gpu=1))
    assert r.status_code == 202, r.text
    wait_state(alice, "alice~idle", {"RUNNING"})

    def mine():
        return [a for a in alice.get("/api/v2/alerts").json() if a["labels"]["alertname"] == "JobLowGpuUtilization"]

    (alert,) = until(mine, what="the low-utilisation alert")
    assert alert["labels"]["job_name"] == "alice~idle" and alert["labels"]["username"] == "alice"
    assert alert["labels"]["task_role"] == "worker" and alert["status"]["state"] == "active"
    assert "alice~idle" in alert["annotations"]["summary"]
    assert srv.client(users["bob"]).get("/api/v2/alerts").json() == []  # not bob's job
    assert any(a["fingerprint"] == alert["fingerprint"] for a in srv.client().get("/api/v2/alerts").json())
    fams = metrics(srv, srv.admin_token)
    (task,) = [s for s in fams["pai_task_gpu_utilization_percent"] if s.labels["job_name"] == "alice~idle"]
    assert task.value == 3.0
    assert any(s.labels == {"alertname": "JobLowGpuUtilization", "severity": "warning"}
               for s in fams["pai_alerts_firing"])

    def posted(status):
        return [p for p in hook.payloads if p["status"] == status
                and any(a["labels"].get("job_name") == "alice~idle" for a in p["alerts"])]

    (body,) = until(lambda: posted("firing"), what="the webhook")
    assert body["version"] == "4" and body["groupLabels"] == {"alertname": "JobLowGpuUtilization"}
    assert alice.put("/api/v2/jobs/alice~idle/executionType", json={"value": "STOP"}).status_code == 202
    wait_state(alice, "alice~idle", {"STOPPED"})
    until(lambda: posted("resolved"), what="the resolution on the webhook")
    resolved = alice.get("/api/v2/alerts", params={"state": "resolved"}).json()
    assert [a["state"] for a in resolved if a["fingerprint"] == alert["fingerprint"]] == ["resolved"]
    assert alice.get("/api/v2/alerts", params={"state": "later"}).json()["code"] == "InvalidParametersError"


def _expected_gpu_hours(detail: dict) -> float:
    total = 0.0
    for role in detail["taskRoles"].values():
        for t in role["taskStatuses"]:
            gpus = len(t["containerGpus"].split(",")) if t["containerGpus"] else 0
            total += gpus * (t["completedTime"] - t["launchedTime"]) / 3_600_000
    return total


def test_usage_report_adds_up_to_the_jobs_that_ran(srv, users):
    since = time.time() - 1
    carol, dave = srv.client(users["carol"]), srv.client(users["dave"])
    jobs = [(carol, "u1", 1, 1), (carol, "u2", 2, 1), (dave, "u3", 1, 2)]
    for c, name, gpu, instances in jobs:
        r = c.post("/api/v2/jobs", content=job_yaml(name, ["sleep 0.3"], gpu=gpu, instances=instances))
        assert r.status_code == 202, r.text
    expected: dict[str, float] = {}
    per_job: dict[str, float] = {}
    for c, name, _, _ in jobs:
        user = "carol" if c is carol else "dave"
        detail = wait_state(c, f"{user}~{name}", {"SUCCEEDED", "FAILED"})
        assert detail["jobStatus"]["state"] == "SUCCEEDED", detail
        hours = _expected_gpu_hours(detail)
        assert hours > 0
        expected[user] = expected.get(user, 0) + hours
        per_job[f"{user}~{name}"] = hours
    now = time.time()  # a fixed end: a task still running elsewhere must not move the totals between queries
    admin = srv.client()
    rep = admin.get("/api/v2/usage", params={"since": since, "until": now, "by": "user"}).json()
    got = {r["key"]: r["gpuHours"] for r in rep["rows"] if r["key"] in expected}
    assert got == pytest.approx(expected, abs=1e-5)
    assert {r["key"]: r["tasks"] for r in rep["rows"]}["dave"] == 2
    by_job = {r["key"]: r["gpuHours"] for r in admin.get("/api/v2/usage", params={"since": since, "until": now, "by": "job"})
              .json()["rows"]}
    assert {k: by_job[k] for k in per_job} == pytest.approx(per_job, abs=1e-5)
    by_sku = admin.get("/api/v2/usage", params={"since": since, "until": now, "by": "sku"}).json()
    assert [r["key"] for r in by_sku["rows"]] == ["simulated"]
    by_vc = admin.get("/api/v2/usage", params={"since": since, "until": now, "by": "vc"}).json()
    assert by_vc["totalGpuHours"] == pytest.approx(by_sku["totalGpuHours"], abs=1e-9)
    # a user sees only their own usage, also when asking for someone else's
    own = carol.get("/api/v2/usage", params={"since": since, "username": "dave"}).json()
    assert [r["key"] for r in own["rows"]] == ["carol"] and own["username"] == "carol"
    text = carol.get("/api/v2/usage", params={"since": since, "format": "csv"})
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert float(rows[0]["gpu_hours"]) == pytest.approx(expected["carol"], abs=1e-5)
    bad = admin.get("/api/v2/usage", params={"by": "colour"})
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParametersError"
    assert admin.get("/api/v2/usage", params={"since": "soon"}).status_code == 400
    # the CLI
    out = _pai(srv, users["carol"], "usage", "--since", str(since), "--csv")
    assert out.splitlines()[0] == "user,gpu_hours,tasks,jobs,since,until" and "carol" in out


def _pai(srv, token: str, *args: str) -> str:
    env = {**os.environ, "PAI_URL": srv.url, "PAI_TOKEN": token}
    r = subprocess.run([sys.executable, "-m", "pai_hub.cli", *args], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_job_timeline(srv, users):
    carol = srv.client(users["carol"])
    r = carol.post("/api/v2/jobs", content=job_yaml("tl", ["sleep 0.2"], gpu=1, instances=2))
    assert r.status_code == 202
    detail = wait_state(carol, "carol~tl", {"SUCCEEDED"})
    data = carol.get("/api/v2/jobs/carol~tl/timeline").json()
    reasons = [e["reason"] for e in data["events"]]
    assert reasons[0] == "JobSubmitted" and reasons[-1] == "JobSucceeded"
    assert reasons.index("Placed") < reasons.index("TaskStarted") < reasons.index("TaskSucceeded")
    assert {e["task"] for e in data["events"] if e["reason"] == "TaskStarted"} == {"worker/0", "worker/1"}
    assert [e["timestamp"] for e in data["events"]] == sorted(e["timestamp"] for e in data["events"])
    s = data["summary"]
    assert s["queueing_s"] + s["launch_s"] + s["run_s"] == pytest.approx(s["total_s"], abs=1e-3)
    assert s["total_s"] == pytest.approx((detail["jobStatus"]["completedTime"] -
                                          detail["jobStatus"]["submissionTime"]) / 1000, abs=2e-3)
    assert len(data["tasks"]) == 2 and all(t["run_s"] >= 0.2 and t["launch_s"] >= 0 for t in data["tasks"])
    text = carol.get("/api/v2/jobs/carol~tl/timeline", params={"format": "csv"}).text
    assert text.splitlines()[0].startswith("job_name,username,vc,event_id,time")
    tasks_csv = list(csv.DictReader(io.StringIO(carol.get("/api/v2/jobs/carol~tl/timeline",
                                                          params={"format": "csv", "view": "tasks"}).text)))
    assert {row["task"] for row in tasks_csv} == {"worker/0", "worker/1"}
    assert srv.client(users["bob"]).get("/api/v2/jobs/carol~tl/timeline").status_code == 404
    out = _pai(srv, users["carol"], "job", "timeline", "tl")
    assert "queueing" in out and "JobSucceeded" in out and "worker/1" in out
    # the cluster-wide export is for admins
    assert carol.get("/api/v2/cluster/timeline").status_code == 403
    rows = srv.client().get("/api/v2/cluster/timeline", params={"since": time.time() - 600}).json()["data"]
    assert {r["task"] for r in rows if r["job_name"] == "carol~tl"} == {"worker/0", "worker/1"}
    events = srv.client().get("/api/v2/cluster/timeline", params={"view": "events", "format": "csv"}).text
    assert "carol~tl" in events


@pytest.mark.needs_tool("prometheus", "make prometheus (Debian package `prometheus`)")
def test_a_real_prometheus_scrapes_metrics(srv, tmp_path):
    config = deploy.prometheus_config(target=f"127.0.0.1:{srv.port}", token_file=str(srv.data_dir / "metrics-token"),
                                      scrape_interval="500ms")
    prom = Prometheus(tmp_path / "prometheus", config, rules_text=prometheus_rules(parse_rules(RULES)))
    try:
        def ready():
            try:
                return httpx.get(prom.url + "/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return prom.proc.poll() is not None
        until(ready, timeout=20, what="prometheus to start")
        assert prom.proc.poll() is None, (tmp_path / "prometheus" / "prometheus.log").read_text()[-2000:]
        result = until(lambda: prom.query("pai_gpu_utilization_percent")["data"]["result"], timeout=20,
                       what="a scraped PAI series")
        assert {r["metric"]["gpu"] for r in result} == {"0", "1", "2", "3"}
        assert all(r["metric"]["job"] == "pai-hub" for r in result)
        up = prom.query('up{job="pai-hub"}')["data"]["result"]
        assert up[0]["value"][1] == "1"
        def rules():
            groups = httpx.get(prom.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
            found = groups[0]["rules"] if groups else []
            return found if found and all(r["health"] == "ok" for r in found) else None

        assert {r["name"] for r in until(rules, what="the alert rules evaluated")} == {
            "GpuUnhealthy", "JobLowGpuUtilization"}
        # every query of the Grafana dashboard is valid PromQL
        for panel in deploy.grafana_dashboard()["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$vc", ".*").replace("$__range", "5m")
                assert prom.query(expr)["status"] == "success", expr
    finally:
        prom.stop()
