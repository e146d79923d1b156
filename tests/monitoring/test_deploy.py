"""deploy/ is what pai_hub/monitoring/deploy.py generates, and Prometheus's own checker accepts it."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from pai_hub.monitoring import deploy
from pai_hub.monitoring.alerts import default_rules, prometheus_rules
from tests.server import REPO


def test_deploy_files_are_generated_by_the_code():
    for rel, text in deploy.files().items():
        path = REPO / rel
        assert path.exists(), f"{rel} missing: run python -m pai_hub.monitoring.deploy"
        assert path.read_text() == text, f"{rel} is stale: run python -m pai_hub.monitoring.deploy"
    assert (REPO / "deploy/prometheus/pai-hub-alerts.yml").read_text() == prometheus_rules(default_rules())
    assert deploy.main(["--check"]) == 0


def test_the_cli_writes_the_same_alert_rules(tmp_path):
    from pai_hub.cli import main

    out = tmp_path / "alerts.yml"
    assert main(["alerts", "export-rules", "-o", str(out)]) == 0
    assert out.read_text() == (REPO / "deploy/prometheus/pai-hub-alerts.yml").read_text()


def test_dashboard_and_scrape_config_shape():
    dash = json.loads((REPO / "deploy/grafana/pai-hub-dashboard.json").read_text())
    titles = " | ".join(p["title"] for p in dash["panels"])
    for words in ("GPU utilisation per node", "GPU utilisation per virtual cluster", "Queue length",
                  "Scheduling latency", "API latency", "GPU-hours"):
        assert words in titles
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    cfg = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    job = cfg["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    assert cfg["rule_files"] == ["pai-hub-alerts.yml"]


@pytest.mark.needs_tool("promtool", "make prometheus (Debian package `prometheus`)")
def test_promtool_accepts_the_rules_and_the_config(tmp_path):
    r = subprocess.run(["promtool", "check", "rules", str(REPO / "deploy/prometheus/pai-hub-alerts.yml")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    token = tmp_path / "token"
    token.write_text("x\n")
    (tmp_path / "pai-hub-alerts.yml").write_text(deploy.alerts_yml())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(deploy.prometheus_config(token_file=str(token))))
    r = subprocess.run(["promtool", "check", "config", "prometheus.yml"], capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
