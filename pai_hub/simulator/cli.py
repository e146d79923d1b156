"""``pai simulate TRACE [--cluster CONFIG] [--scheduler hived|fifo|gang] [--format alibaba|csv] [--json]``.

``pai simulate`` is a server command: the client (``pai_client.cli``) hands it to ``pai_hub.cli``,
which adds :func:`add_parser`; ``python -m pai_hub.simulator.cli`` runs it
alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import SCHEDULERS, run_simulation
from .alibaba import (
    DEFAULT_NODES,
    DEFAULT_VCS,
    cluster_config_for_trace,
    load_alibaba,
    read_vc_weights,
    write_config,
)
from .cluster import ClusterError, load_config, parse_cluster
from .report import format_report, make_report
from .workload import TraceError, load_csv

__all__ = ["add_parser", "main", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate", help="replay a job trace on a simulated cluster and report queueing, JCT, utilisation",
        description="Replay a job trace through the real orchestrator and a scheduler on a virtual clock.",
    )
    p.add_argument("trace", help="the trace file (an Alibaba v2023 openb_pod_list CSV, or the plain CSV format)")
    p.add_argument("--cluster", metavar="CONFIG",
                   help="HiveD config (YAML/JSON: physicalCluster + virtualClusters). Default for --format "
                        "alibaba: generated from --nodes and --vcs")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="hived",
                   help="hived (default), fifo (quota-FIFO baseline) or gang")
    p.add_argument("--format", choices=("alibaba", "csv"), default=None,
                   help="trace format (default: guessed from the header line)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    g = p.add_argument_group("Alibaba trace options")
    g.add_argument("--nodes", default=str(DEFAULT_NODES), help="node list CSV to build the cluster from")
    g.add_argument("--vcs", default=str(DEFAULT_VCS), help="VC weights CSV (vc,node num), e.g. philly_vc.csv")
    g.add_argument("--seed", type=int, default=0, help="salt of the VC assignment hash (default 0)")
    g.add_argument("--time-scale", type=float, default=1.0,
                   help="divide submission times by this factor to raise the load (default 1)")
    g.add_argument("--since", type=float, default=0.0,
                   help="replay only pods created at or after this trace second; the clock starts there")
    g.add_argument("--until", type=float, default=None, help="replay only pods created before this trace second")
    g.add_argument("--node-fraction", type=float, default=1.0,
                   help="build the cluster from this fraction of each GPU model's nodes (default 1)")
    g.add_argument("--include-pending", action="store_true", help="also replay pods that never ran")
    g.add_argument("--write-cluster", metavar="PATH", help="write the generated HiveD config to PATH")
    p.set_defaults(func=run)
    return p


def _guess_format(path: Path) -> str:
    with path.open() as f:
        for line in f:
            if line.strip() and not line.lstrip().startswith("#"):
                return "alibaba" if "num_gpu" in line and "creation_time" in line else "csv"
    return "csv"


def run(args: argparse.Namespace) -> int:
    trace = Path(args.trace)
    err = sys.stderr
    if not trace.is_file():
        print(f"pai simulate: {trace}: no such file", file=err)
        return 2
    fmt = args.format or _guess_format(trace)
    scheduler = args.scheduler
    try:
        if fmt == "alibaba":
            weights = read_vc_weights(args.vcs)
            jobs = load_alibaba(trace, vc_weights=weights, seed=args.seed, time_scale=args.time_scale,
                                include_pending=args.include_pending, since=args.since, until=args.until)
            config = (load_config(args.cluster) if args.cluster else
                      cluster_config_for_trace(args.nodes, weights, node_fraction=args.node_fraction))
        else:
            if not args.cluster:
                print("pai simulate: --cluster CONFIG is required for --format csv", file=err)
                return 2
            jobs = load_csv(trace)
            config = load_config(args.cluster)
        if args.write_cluster:
            write_config(config, args.write_cluster)
        cluster = parse_cluster(config)
        unknown = sorted({j.vc for j in jobs} - set(cluster.vcs))
        if unknown:
            print(f"pai simulate: the trace uses VCs the cluster config does not define: {', '.join(unknown)}",
                  file=err)
            return 2
        report = make_report(run_simulation(jobs, cluster, scheduler))
    except (TraceError, ClusterError, OSError, ValueError, RuntimeError) as e:
        print(f"pai simulate: {e}", file=err)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pai")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
