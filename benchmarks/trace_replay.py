"""Replay of the Alibaba GPU trace v2023 under HiveD and the quota-FIFO baseline, in one run.

    python -m benchmarks.trace_replay [--time-scale 64] [--node-fraction 0.125] [--since 9900000]
                                      [--as-recorded] [--trace PATH]

Prints JSON: for each scheduler the wall and CPU time of the replay and the report's headline
figures, then the quality comparison. Targets (docs/benchmarks.md, "trace replay"): a replay in
< 5 s wall; mean queueing delay under HiveD <= 0.8x the baseline's; 0 guarantee violations under
HiveD.

The default replay is *loaded*: the trace's own load is ~0.3 % of its 6,212-GPU cluster (peak ~71
GPUs busy), which no scheduler can tell apart. So it takes the trace's dense month (pods created
from second 9,900,000 on: 6,179 GPU pods that ran), compresses arrivals 64x (durations unchanged)
and builds the cluster from 1/8 of each GPU model's nodes (149 nodes, 756 GPUs), VCs sized as the
11 Philly VCs. ``--as-recorded`` adds the unmodified replay (whole trace, whole cluster, real time)
for timing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

from pai_hub.simulator import (
    ClusterModel,
    cluster_config_for_trace,
    load_alibaba,
    make_report,
    make_scheduler,
    parse_cluster,
)
from pai_hub.simulator.alibaba import DEFAULT_NODES, DEFAULT_PODS, DEFAULT_VCS, read_vc_weights, summary
from pai_hub.simulator.engine import Simulation

WALL_TARGET_S = 5.0
QUEUE_RATIO_TARGET = 0.8


def replay(jobs: list, cluster: ClusterModel, scheduler: str) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    sched = make_scheduler(scheduler, cluster)
    result = Simulation(jobs, sched, cluster, scheduler).run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    report = make_report(result)
    o = report["overall"]
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "jobs": o["jobs"],
        "finished": o["finished"],
        "queueing_delay_s": o["queueing_delay_s"],
        "jct_s": o["jct_s"],
        "gpu_utilisation": o["gpu_utilisation"],
        "preemptions": o["preemptions"],
        "guarantee_violations": o["guarantee_violations"],
        "vcs_with_queueing": sum(v["queueing_delay_s"]["mean"] > 0 for v in report["vcs"].values()),
        "makespan_s": report["makespan_s"],
        "decision_points": report["decision_points"],
    }


def scenario(name: str, jobs: list, config: dict[str, Any], schedulers: list[str]) -> dict[str, Any]:
    cluster = parse_cluster(config)
    out: dict[str, Any] = {"name": name, "cluster": {"nodes": len(cluster.nodes), "gpus": cluster.capacity},
                           "trace": summary(jobs), "schedulers": {}}
    for s in schedulers:
        out["schedulers"][s] = replay(jobs, cluster, s)
    res = out["schedulers"]
    if "hived" in res and "fifo" in res:
        base = res["fifo"]["queueing_delay_s"]["mean"]
        ratio = res["hived"]["queueing_delay_s"]["mean"] / base if base else None
        out["quality"] = {
            "mean_queueing_hived_over_fifo": None if ratio is None else round(ratio, 4),
            "mean_jct_hived_over_fifo": round(res["hived"]["jct_s"]["mean"] / res["fifo"]["jct_s"]["mean"], 4)
            if res["fifo"]["jct_s"]["mean"] else None,
            "queueing_target_met": None if ratio is None else ratio <= QUEUE_RATIO_TARGET,
            "hived_violations_zero": res["hived"]["guarantee_violations"]["gangs"] == 0,
        }
    out["wall_target_met"] = {s: r["wall_s"] < WALL_TARGET_S for s, r in res.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trace", default=str(DEFAULT_PODS))
    p.add_argument("--nodes", default=str(DEFAULT_NODES))
    p.add_argument("--vcs", default=str(DEFAULT_VCS))
    p.add_argument("--time-scale", type=float, default=64.0)
    p.add_argument("--node-fraction", type=float, default=0.125)
    p.add_argument("--since", type=float, default=9_900_000.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--as-recorded", action="store_true", help="also replay the unmodified trace (timing)")
    p.add_argument("--schedulers", default=None, help="comma list (default: hived,fifo)")
    args = p.parse_args(argv)
    schedulers = args.schedulers.split(",") if args.schedulers else ["hived", "fifo"]
    weights = read_vc_weights(args.vcs)
    loaded = scenario(
        f"loaded: pods created from t={args.since:g}, arrivals x{args.time_scale:g}, "
        f"{args.node_fraction:g} of the nodes",
        load_alibaba(args.trace, vc_weights=weights, seed=args.seed, time_scale=args.time_scale, since=args.since),
        cluster_config_for_trace(args.nodes, weights, node_fraction=args.node_fraction), schedulers)
    out: dict[str, Any] = {
        "benchmark": "trace_replay",
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": __import__("os").cpu_count()},
        "scenarios": [loaded],
    }
    if args.as_recorded:
        out["scenarios"].append(scenario(
            "as recorded: whole trace, whole cluster, real time",
            load_alibaba(args.trace, vc_weights=weights, seed=args.seed),
            cluster_config_for_trace(args.nodes, weights), schedulers))
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
