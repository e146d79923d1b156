"""Trace-driven cluster simulation over the real scheduler and orchestrator, with a virtual clock.

::

    from pai_hub.simulator import load_alibaba, cluster_config_for_trace, simulate
    config = cluster_config_for_trace()                  # HiveD config for the trace's nodes
    jobs = load_alibaba(time_scale=64)
    report = simulate(jobs, config, scheduler="hived")   # or "fifo" (quota-FIFO baseline), "gang"

See docs/simulator.md for the trace formats, the VC assignment rule and the report's fields.
"""

from __future__ import annotations

from typing import Any

from ..scheduler.base import Scheduler
from ..scheduler.gang import GangScheduler
from ..scheduler.hived import HivedScheduler
from .alibaba import VcAssigner, cluster_config_for_trace, load_alibaba, read_vc_weights, write_config
from .baseline import QuotaFifoScheduler
from .cluster import ClusterError, ClusterModel, load_config, parse_cluster
from .engine import SimResult, Simulation
from .report import format_report, make_report
from .workload import SimJob, TraceError, load_csv, parse_csv

__all__ = [
    "SCHEDULERS",
    "ClusterError",
    "ClusterModel",
    "QuotaFifoScheduler",
    "SimJob",
    "SimResult",
    "Simulation",
    "TraceError",
    "VcAssigner",
    "cluster_config_for_trace",
    "format_report",
    "load_alibaba",
    "load_config",
    "load_csv",
    "make_report",
    "make_scheduler",
    "parse_cluster",
    "parse_csv",
    "read_vc_weights",
    "run_simulation",
    "simulate",
    "write_config",
]

SCHEDULERS = ("hived", "fifo", "gang")


def make_scheduler(name: str, cluster: ClusterModel) -> Scheduler:
    """``hived`` (HiveD, from the cluster's HiveD config), ``fifo`` (quota-FIFO baseline) or
    ``gang`` (the single-pool gang scheduler: no VCs, priority then FIFO with backfill)."""
    if name == "fifo":
        return QuotaFifoScheduler.from_cluster(cluster)
    if name == "gang":
        return GangScheduler({n.name: (n.cpu, n.memory_mb, tuple(range(n.gpus))) for n in cluster.nodes})
    if name == "hived":
        return HivedScheduler(cluster.config)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def run_simulation(jobs: list[SimJob], config: dict[str, Any] | ClusterModel, scheduler: str = "hived") -> SimResult:
    cluster = config if isinstance(config, ClusterModel) else parse_cluster(config)
    return Simulation(jobs, make_scheduler(scheduler, cluster), cluster, scheduler).run()


def simulate(jobs: list[SimJob], config: dict[str, Any] | ClusterModel, scheduler: str = "hived") -> dict[str, Any]:
    """Replay ``jobs`` on the cluster of a HiveD ``config``; returns the report dict."""
    return make_report(run_simulation(jobs, config, scheduler))
