"""Alert rules: an admin-editable YAML file, evaluated in-process, exported for Prometheus.

A rule names a built-in ``kind`` (what it watches) and its parameters. Each poll the monitor hands
the engine the current *observations* of every kind (one per GPU, task or VC, with labels and
whether the rule's condition holds); a series whose condition has held for the rule's ``for``
fires, and resolves when it stops holding or disappears — Prometheus's ``for`` semantics, so the
exported rule file (:func:`prometheus_rules`) alerts on the same conditions from scraped series.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StrictStr, ValidationError

from ..protocol.field_errors import field_errors, keys_and_values_as_text

log = logging.getLogger("pai_hub.monitoring.alerts")

KINDS = ("gpu_unhealthy", "task_low_gpu_utilization", "vc_queue_stuck")
SEVERITIES = ("critical", "warning", "info")

DEFAULT_RULES_TEXT = """\
# PAI Hub alert rules (docs/operations.md). Edit and save: the server re-reads this file within
# one poll interval; a file that does not parse is reported in the log and the previous rules stay.
# `pai alerts export-rules --rules THIS_FILE` writes the same rules for a real Prometheus.
#
# kind:      gpu_unhealthy | task_low_gpu_utilization | vc_queue_stuck
# for:       how long the condition must hold before the alert fires (30s, 15m, 2h; 0s = at once)
# threshold: task_low_gpu_utilization only: percent of GPU utilisation under which a task is idle
# summary:   text with {label} placeholders (labels: node, gpu, job_name, username, vc, task_role,
#            task_index; {value} is the observed value)
# enabled:   false switches a rule off
rules:
  - alert: GpuUnhealthy
    kind: gpu_unhealthy
    for: 0s
    severity: critical
    summary: "GPU {gpu} of node {node} is unhealthy; the node is kept out of scheduling"
  - alert: JobLowGpuUtilization
    kind: task_low_gpu_utilization
    threshold: 10
    for: 30m
    severity: warning
    summary: "task {task_role}/{task_index} of job {job_name} has used under 10% of its GPUs for 30 minutes"
  - alert: VcQueueStuck
    kind: vc_queue_stuck
    for: 30m
    severity: warning
    summary: "the queue of virtual cluster {vc} has not moved for 30 minutes ({value} jobs waiting)"
"""


class RuleError(ValueError):
    """The rules file is refused; the message names every wrong key (``rules[1].kind: ...``)."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """``30s`` / ``15m`` / ``2h`` / a number of seconds -> seconds; raises :class:`RuleError`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise RuleError(f"must be a duration such as 30s, 15m or 2h, got {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def format_duration(seconds: float) -> str:
    """A Prometheus duration (``30m``, ``90s``, ``500ms``)."""
    if seconds <= 0:
        return "0s"
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


@dataclass
class Rule:
    alert: str
    kind: str
    for_seconds: float = 0.0
    severity: str = "warning"
    summary: str = ""
    threshold: float = 10.0
    enabled: bool = True
    labels: dict[str, str] = field(default_factory=dict)


# -- the file's shape, as pydantic models ---------------------------------------------------------
_RULE_KEYS = ("alert", "kind", "for", "severity", "summary", "threshold", "enabled", "labels")
_HINTS = {
    "alert": "the alert's name: letters, digits and _, not starting with a digit",
    "rules": "a list of rules, each {alert, kind, for, severity, summary}",
    "threshold": "percent of GPU utilisation",
    "labels": "a mapping of label name to value",
}


class _RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alert: Annotated[StrictStr, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    kind: Literal[KINDS]  # type: ignore[valid-type]
    for_seconds: Annotated[float, BeforeValidator(parse_duration)] = Field(0.0, alias="for")
    severity: Literal[SEVERITIES] = "warning"  # type: ignore[valid-type]
    summary: Annotated[str, BeforeValidator(lambda v: str(v or ""))] = ""
    threshold: StrictFloat = 10.0
    enabled: bool = True
    labels: Annotated[dict[str, str], BeforeValidator(keys_and_values_as_text)] = {}


class _RulesFileModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rules: Annotated[list[_RuleModel], BeforeValidator(lambda v: [] if v is None else v)] = []


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for path, reason in field_errors(exc, _HINTS):
        if reason.startswith("unknown key"):  # say which keys a rule may have
            reason += f"; a rule has: {', '.join(_RULE_KEYS)}"
        out.append(f"{path}: {reason}" if path else reason)
    return out


def parse_rules(text: str) -> list[Rule]:
    """The rules of a rules file's text; raises :class:`RuleError` naming every wrong key."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RuleError(f"not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise RuleError(f"expected a mapping with a list under 'rules', got {type(doc).__name__}")
    try:
        parsed = _RulesFileModel.model_validate(doc)
    except ValidationError as exc:
        raise RuleError("; ".join(_problems(exc))) from None
    seen: set[str] = set()
    for i, rule in enumerate(parsed.rules):
        if rule.alert in seen:
            raise RuleError(f"rules[{i}].alert: {rule.alert} is defined twice; give each rule its own name")
        seen.add(rule.alert)
    return [Rule(r.alert, r.kind, r.for_seconds, r.severity, r.summary, r.threshold, r.enabled, r.labels)
            for r in parsed.rules]


def default_rules() -> list[Rule]:
    return parse_rules(DEFAULT_RULES_TEXT)


class RulesFile:
    """The rules file, re-read when it changes; a broken edit keeps the previous rules."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rules: list[Rule] = default_rules()
        self.error: str | None = None
        self._text: str | None = None
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(DEFAULT_RULES_TEXT)
        self.reload()

    def reload(self) -> list[Rule]:
        """Re-read the file if its text changed (read each poll: it is small, and file times can be too
        coarse to notice two quick edits)."""
        try:
            text = self.path.read_text()
        except OSError as exc:
            self.error = f"{self.path}: {exc}"
            return self.rules
        if text == self._text:
            return self.rules
        self._text = text
        try:
            self.rules = parse_rules(text)
            self.error = None
            log.info("alert rules loaded from %s: %s", self.path, ", ".join(r.alert for r in self.rules) or "none")
        except RuleError as exc:
            self.error = f"{self.path}: {exc}"
            log.error("alert rules not changed: %s", self.error)
        return self.rules


# -- evaluation -----------------------------------------------------------------------------------
@dataclass
class Observation:
    """One series of one kind at one poll: its labels, whether the condition holds, the value."""

    labels: dict[str, str]
    active: bool
    value: float | None = None
    description: str = ""


@dataclass
class Alert:
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    active_at: float  # when the condition started to hold
    starts_at: float  # when it fired
    ends_at: float | None = None
    value: float | None = None

    @property
    def state(self) -> str:
        return "resolved" if self.ends_at is not None else "firing"

    def view(self) -> dict[str, Any]:
        """Alertmanager's shape (as OpenPAI's GET /api/v2/alerts relays it)."""
        return {
            "fingerprint": self.fingerprint,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": _iso(self.starts_at),
            "endsAt": _iso(self.ends_at) if self.ends_at is not None else None,
            "activeAt": _iso(self.active_at),
            "status": {"state": "active" if self.ends_at is None else "resolved", "silencedBy": [],
                       "inhibitedBy": []},
            "state": self.state,
            "value": self.value,
        }

    def webhook_view(self, generator_url: str = "") -> dict[str, Any]:
        return {
            "status": self.state,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": _iso(self.starts_at),
            "endsAt": _iso(self.ends_at) if self.ends_at is not None else "0001-01-01T00:00:00Z",
            "generatorURL": generator_url,
            "fingerprint": self.fingerprint,
        }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _render(template: str, labels: dict[str, str], value: float | None) -> str:
    fields = _Blank(labels)
    fields["value"] = "" if value is None else f"{value:g}"
    try:
        return template.format_map(fields)
    except (ValueError, IndexError):
        return template


class AlertEngine:
    """Pending and firing alerts; :meth:`evaluate` returns what changed (to notify)."""

    def __init__(self, keep_resolved: int = 1000) -> None:
        self.pending: dict[str, float] = {}  # fingerprint -> when its condition started to hold
        self.firing: dict[str, Alert] = {}
        self.resolved: deque[Alert] = deque(maxlen=keep_resolved)

    @staticmethod
    def fingerprint(rule: Rule, labels: dict[str, str]) -> str:
        key = rule.alert + "\0" + "\0".join(f"{k}={labels[k]}" for k in sorted(labels))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def evaluate(self, now: float, rules: list[Rule],
                 observe: Callable[[Rule], list[Observation]]) -> list[tuple[Rule | None, Alert]]:
        """Apply every enabled rule to ``observe(rule)``; returns the alerts that fired or resolved."""
        changed: list[tuple[Rule | None, Alert]] = []
        seen: set[str] = set()
        by_name = {r.alert: r for r in rules if r.enabled}
        for rule in by_name.values():
            for obs in observe(rule):
                if not obs.active:
                    continue
                labels = {"alertname": rule.alert, "severity": rule.severity, **rule.labels, **obs.labels}
                fp = self.fingerprint(rule, obs.labels)
                seen.add(fp)
                since = self.pending.setdefault(fp, now)
                alert = self.firing.get(fp)
                if alert is not None:
                    alert.value = obs.value
                    continue
                if now - since >= rule.for_seconds:
                    annotations = {"summary": _render(rule.summary, obs.labels, obs.value) or rule.alert}
                    if obs.description:
                        annotations["description"] = obs.description
                    alert = Alert(fp, labels, annotations, since, now, value=obs.value)
                    self.firing[fp] = alert
                    changed.append((rule, alert))
        for fp in [f for f in self.pending if f not in seen]:
            del self.pending[fp]
        for fp in [f for f in self.firing if f not in seen]:
            alert = self.firing.pop(fp)
            alert.ends_at = now
            self.resolved.append(alert)
            changed.append((by_name.get(alert.labels["alertname"]), alert))
        return changed

    def alerts(self, state: str = "firing") -> list[Alert]:
        firing = sorted(self.firing.values(), key=lambda a: a.starts_at)
        if state == "firing":
            return firing
        resolved = sorted(self.resolved, key=lambda a: a.ends_at or 0, reverse=True)
        return resolved if state == "resolved" else firing + resolved


def webhook_payload(alerts: list[Alert], external_url: str = "", receiver: str = "pai-hub") -> dict[str, Any]:
    """Alertmanager's webhook body (version 4), so receivers written for it work unchanged."""
    names = sorted({a.labels.get("alertname", "") for a in alerts})
    common = {k: v for k, v in alerts[0].labels.items() if all(a.labels.get(k) == v for a in alerts)} if alerts else {}
    group = {"alertname": names[0]} if len(names) == 1 else {}
    return {
        "version": "4",
        "groupKey": "{}:" + ",".join(f'alertname="{n}"' for n in names),
        "truncatedAlerts": 0,
        "status": "firing" if any(a.ends_at is None for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": {k: v for k, v in alerts[0].annotations.items()
                              if all(a.annotations.get(k) == v for a in alerts)} if alerts else {},
        "externalURL": external_url,
        "alerts": [a.webhook_view(external_url) for a in alerts],
    }


# -- export for a real Prometheus -----------------------------------------------------------------
def promql(rule: Rule) -> str:
    """The rule's condition over the series /metrics exports."""
    if rule.kind == "gpu_unhealthy":
        return "pai_gpu_healthy == 0"
    if rule.kind == "task_low_gpu_utilization":
        return f"pai_task_gpu_utilization_percent < {rule.threshold:g}"
    if rule.kind == "vc_queue_stuck":
        window = format_duration(max(rule.for_seconds, 60))
        return f"pai_vc_queue_length > 0 and on(vc) changes(pai_vc_placements_total[{window}]) == 0"
    raise RuleError(f"unknown kind {rule.kind}")


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _prom_template(text: str) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        return "{{ $value }}" if name == "value" else "{{ $labels." + name + " }}"

    return _PLACEHOLDER.sub(sub, text)


def prometheus_rules(rules: list[Rule]) -> str:
    """A Prometheus rules file (``rule_files``) alerting on the same conditions."""
    out = []
    for r in rules:
        if not r.enabled:
            continue
        entry: dict[str, Any] = {"alert": r.alert, "expr": promql(r), "for": format_duration(r.for_seconds),
                                 "labels": {"severity": r.severity, **r.labels}}
        if r.summary:
            entry["annotations"] = {"summary": _prom_template(r.summary)}
        out.append(entry)
    header = ("# Generated by `pai alerts export-rules` from PAI Hub's alert rules "
              "(pai_hub/monitoring/alerts.py); do not edit by hand.\n")
    return header + yaml.safe_dump({"groups": [{"name": "pai-hub", "rules": out}]}, sort_keys=False, width=200)
