"""The report of a replay: per VC and overall (field definitions in docs/simulator.md)."""

from __future__ import annotations

from typing import Any

from .engine import JobOutcome, SimResult
from .metrics import distribution

__all__ = ["format_report", "make_report"]


def _section(outcomes: list[JobOutcome], capacity: int, makespan: float, preemptions: int,
             violations: dict[str, float]) -> dict[str, Any]:
    finished = [o for o in outcomes if o.completed is not None]
    gpu_seconds = sum(o.gpu_seconds for o in outcomes)
    return {
        "jobs": len(outcomes),
        "finished": len(finished),
        "unfinished": len(outcomes) - len(finished),
        "queueing_delay_s": distribution([o.queueing for o in finished]),
        "jct_s": distribution([o.jct for o in finished if o.jct is not None]),
        "gpu_seconds": round(gpu_seconds, 3),
        "capacity_gpus": capacity,
        "gpu_utilisation": round(gpu_seconds / (capacity * makespan), 6) if capacity and makespan > 0 else 0.0,
        "preemptions": preemptions,
        "guarantee_violations": violations,
    }


def make_report(result: SimResult) -> dict[str, Any]:
    """A JSON-serialisable dict; deterministic for a given trace, cluster and scheduler."""
    makespan = result.end - result.start
    quotas = result.cluster.quotas
    by_vc: dict[str, list[JobOutcome]] = {}
    for o in result.outcomes:
        by_vc.setdefault(o.job.vc, []).append(o)
    vcs = {}
    for vc in sorted(set(quotas) | set(by_vc)):
        vcs[vc] = _section(by_vc.get(vc, []), quotas.get(vc, 0), makespan, result.preemptions.get(vc, 0),
                           result.monitor.summary(vc) if vc in result.monitor.vcs else
                           {"gangs": 0, "decision_points": 0, "seconds": 0.0})
    overall = _section(result.outcomes, result.cluster.capacity, makespan, sum(result.preemptions.values()),
                       result.monitor.summary())
    overall["lazy_preemptions"] = result.lazy_preemptions
    return {
        "scheduler": result.scheduler,
        "nodes": len(result.cluster.nodes),
        "capacity_gpus": result.cluster.capacity,
        "start_s": result.start,
        "end_s": result.end,
        "makespan_s": round(makespan, 3),
        "decision_points": result.decision_points,
        "schedule_calls": result.schedule_calls,
        "overall": overall,
        "vcs": vcs,
    }


def format_report(report: dict[str, Any]) -> str:
    """A human-readable table of a :func:`make_report` dict."""
    lines = [
        f"scheduler {report['scheduler']}: {report['nodes']} nodes, {report['capacity_gpus']} GPUs, "
        f"makespan {report['makespan_s']:.0f} s, {report['decision_points']} decision points",
        "",
        f"{'VC':<14}{'quota':>7}{'jobs':>7}{'done':>7}{'queue mean':>12}{'p50':>9}{'p95':>10}"
        f"{'JCT mean':>12}{'p95':>10}{'util':>8}{'preempt':>9}{'violations':>11}",
    ]

    def row(name: str, s: dict[str, Any]) -> str:
        q, j = s["queueing_delay_s"], s["jct_s"]
        return (f"{name:<14}{s['capacity_gpus']:>7}{s['jobs']:>7}{s['finished']:>7}{q['mean']:>12.1f}{q['p50']:>9.1f}"
                f"{q['p95']:>10.1f}{j['mean']:>12.1f}{j['p95']:>10.1f}{s['gpu_utilisation']:>8.3f}"
                f"{s['preemptions']:>9}{s['guarantee_violations']['gangs']:>11}")

    for vc, s in report["vcs"].items():
        lines.append(row(vc, s))
    lines.append(row("overall", report["overall"]))
    lines.append("")
    lines.append("queue/JCT in seconds; util = GPU-seconds used / (GPUs x makespan) (a VC's: of its quota); "
                 "violations = gangs ever in guarantee violation")
    return "\n".join(lines)
