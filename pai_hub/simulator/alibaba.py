"""The Alibaba GPU cluster trace v2023 ("openb", Weng et al., ATC '23) as simulator input.

Files (shared/reference/traces/alibaba-gpu-v2023/, README there): ``openb_pod_list_*.csv``
(one row per pod; no user, VC or job grouping) and ``openb_node_list_gpu_node.csv`` (the GPU
nodes). Rules, documented in docs/simulator.md:

- **One job per pod row**, a gang of one task with ``num_gpu`` GPUs. Fractional GPUs
  (``gpu_milli`` < 1000 on a 1-GPU pod) take one whole GPU: HiveD allocates whole leaf cells.
  Pods with ``num_gpu == 0`` (CPU only; HiveD schedules GPUs) are left out, and so are pods that
  never ran (``pod_phase == Pending``: deleted while pending, no run time known) unless
  ``include_pending`` (then they run ``deletion_time - creation_time``). A ``gpu_spec`` naming
  exactly one model becomes the gang's SKU (``leafCellType``); several models or none: any.
- **Times**: submission = ``creation_time``; duration = ``deletion_time - scheduled_time`` (what the
  pod really ran; Running pods end at the trace's end). ``since``/``until`` keep the pods created
  in that window (trace seconds) and start the clock at ``since``. ``time_scale`` > 1 divides submission
  times (not durations): the trace's own load is tiny for its 6,212-GPU cluster (~0.3 % busy), so
  arrivals are compressed to load it (docs/simulator.md gives the factor the benchmark uses).
- **Priority** from the Kubernetes ``qos`` class, as OpenPAI job priority classes: ``BE`` (best
  effort) -> ``oppo`` (-1, opportunistic), ``Burstable`` -> ``test`` (10), ``LS`` (latency
  sensitive) and ``Guaranteed`` -> ``prod`` (100). CPUs and memory are not replayed: only GPUs.
- **VC**: ``vc_of(name)`` — the first 8 bytes of SHA-256 of ``"{seed}:{pod name}"`` as an integer,
  modulo the sum of VC weights, picks the VC whose cumulative weight range holds it (VCs in file
  order). Weights are the node counts of the 11 Philly VCs (``philly_vc.csv``), so each VC gets
  jobs in proportion to its size.
- **Cluster** (:func:`cluster_config_for_trace`): a HiveD config with one chain per (GPU model,
  GPUs per node) — cell type ``<MODEL>-<N>GPU-NODE`` of N leaf cells ``<MODEL>``, node level — one
  physical cell per node named as in the node list, and every chain's nodes shared out between
  the VCs in proportion to their weights (largest remainder, ties to the VC earlier in the file),
  as node-level virtual cells. ``skuTypes`` carries the CPUs and memory per GPU of each model.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from .workload import SimJob, TraceError

__all__ = [
    "DEFAULT_TRACE_DIR",
    "VcAssigner",
    "cluster_config_for_trace",
    "load_alibaba",
    "read_vc_weights",
    "write_config",
]

#: The reference traces beside a development checkout (``<checkout>/../shared/reference/traces``), or
#: ``$PAI_REFERENCE_DIR/traces``.
DEFAULT_TRACE_DIR = Path(os.environ.get("PAI_REFERENCE_DIR") or Path(__file__).resolve().parents[3] / "shared" / "reference") / "traces"
DEFAULT_PODS = DEFAULT_TRACE_DIR / "alibaba-gpu-v2023" / "openb_pod_list_default.csv"
DEFAULT_NODES = DEFAULT_TRACE_DIR / "alibaba-gpu-v2023" / "openb_node_list_gpu_node.csv"
DEFAULT_VCS = DEFAULT_TRACE_DIR / "philly-derived" / "philly_vc.csv"
QOS_PRIORITY = {"BE": -1, "Burstable": 10, "LS": 100, "Guaranteed": 100}
POD_COLUMNS = ("name", "num_gpu", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time")


def read_vc_weights(path: str | Path = DEFAULT_VCS, prefix: str = "vc-") -> dict[str, int]:
    """``philly_vc.csv`` (``vc,node num``) -> ``{prefix + vc: nodes}`` in file order.

    The prefix keeps VC names from reading as numbers in YAML (``103959``)."""
    out: dict[str, int] = {}
    with Path(path).open(newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        for row in reader:
            if len(row) >= 2 and row[0].strip():
                out[prefix + row[0].strip()] = int(row[1])
    if not out:
        raise ValueError(f"{path}: no VCs")
    return out


class VcAssigner:
    """Deterministic weighted assignment of a key to a VC (module doc)."""

    def __init__(self, weights: dict[str, int], seed: int = 0) -> None:
        self.seed = seed
        self.bounds: list[tuple[int, str]] = []
        total = 0
        for vc, w in weights.items():
            if w > 0:
                total += w
                self.bounds.append((total, vc))
        self.total = total

    def __call__(self, key: str) -> str:
        h = int.from_bytes(hashlib.sha256(f"{self.seed}:{key}".encode()).digest()[:8], "big") % self.total
        for bound, vc in self.bounds:
            if h < bound:
                return vc
        raise AssertionError("unreachable")


def load_alibaba(path: str | Path = DEFAULT_PODS, *, vc_weights: dict[str, int] | None = None, seed: int = 0,
                 time_scale: float = 1.0, include_pending: bool = False, since: float = 0.0,
                 until: float | None = None,
                 limit: int | None = None) -> list[SimJob]:
    """Read an ``openb_pod_list_*.csv`` into jobs (module doc for the rules)."""
    path = Path(path)
    assign = VcAssigner(vc_weights or read_vc_weights(), seed)
    if time_scale <= 0:
        raise ValueError("time_scale must be > 0")
    jobs: list[SimJob] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in POD_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(str(path), 1, missing[0], "missing column (is this an openb_pod_list file?)")
        for row in reader:
            line = reader.line_num
            try:
                gpus = int(row["num_gpu"])
                created = float(row["creation_time"])
                deleted = float(row["deletion_time"])
                sched = row["scheduled_time"].strip()
            except (TypeError, ValueError) as e:
                raise TraceError(str(path), line, None, f"unreadable row: {e}") from None
            if gpus <= 0 or created < since or (until is not None and created >= until):
                continue
            if not sched and not include_pending:
                continue
            began = float(sched) if sched else created
            jobs.append(SimJob(
                name=row["name"], user="alibaba", vc=assign(row["name"]), submit_time=(created - since) / time_scale,
                duration=max(0.0, deleted - began), gpus=gpus,
                instances=1, priority=QOS_PRIORITY.get(row["qos"].strip(), 10),
                leaf_cell_type=_one_model(row.get("gpu_spec")),
            ))
            if limit is not None and len(jobs) >= limit:
                break
    return jobs


def _one_model(spec: str | None) -> str | None:
    """``gpu_spec`` names the acceptable models (``A|B``); HiveD takes one leaf type or any."""
    models = [m for m in (spec or "").split("|") if m.strip()]
    return models[0].strip() if len(models) == 1 else None


def _apportion(n: int, weights: dict[str, int]) -> dict[str, int]:
    """Largest-remainder split of ``n`` items by ``weights`` (ties to the earlier VC)."""
    total = sum(weights.values())
    exact = {vc: n * w / total for vc, w in weights.items()}
    share = {vc: int(x) for vc, x in exact.items()}
    order = sorted(weights, key=lambda vc: (-(exact[vc] - share[vc]), list(weights).index(vc)))
    for vc in order[: n - sum(share.values())]:
        share[vc] += 1
    return share


def cluster_config_for_trace(nodes_csv: str | Path = DEFAULT_NODES, vc_weights: dict[str, int] | None = None,
                             *, models: tuple[str, ...] | None = None, node_fraction: float = 1.0) -> dict[str, Any]:
    """A HiveD config (``physicalCluster`` + ``virtualClusters``) for a trace's node list.

    ``models`` keeps only nodes of those GPU models; ``node_fraction`` keeps the first that
    fraction of each chain's nodes (at least one), for smaller replays.
    """
    weights = vc_weights or read_vc_weights()
    chains: dict[str, list[str]] = {}
    chain_of: dict[str, tuple[str, int]] = {}
    sku: dict[str, tuple[int, int, int]] = {}
    with Path(nodes_csv).open(newline="") as f:
        for row in csv.DictReader(f):
            gpus, model = int(row["gpu"]), row["model"].strip()
            if gpus <= 0 or (models and model not in models):
                continue
            chain = f"{model}-{gpus}GPU-NODE"
            chains.setdefault(chain, []).append(row["sn"])
            chain_of[chain] = (model, gpus)
            cpu, mem, n = sku.get(model, (0, 0, 0))
            sku[model] = (cpu + int(row["cpu_milli"]) // 1000, mem + int(row["memory_mib"]), n + gpus)
    if not chains:
        raise ValueError(f"{nodes_csv}: no GPU nodes")
    cell_types: dict[str, Any] = {}
    physical: list[dict[str, Any]] = []
    virtual: dict[str, dict[str, Any]] = {vc: {"virtualCells": []} for vc in weights}
    for chain in sorted(chains):
        model, gpus = chain_of[chain]
        names = chains[chain]
        keep = max(1, int(len(names) * node_fraction)) if node_fraction < 1 else len(names)
        names = names[:keep]
        cell_types[chain] = {"childCellType": model, "childCellNumber": gpus, "isNodeLevel": True}
        physical += [{"cellType": chain, "cellAddress": name} for name in names]
        for vc, count in _apportion(len(names), weights).items():
            if count:
                virtual[vc]["virtualCells"].append({"cellType": chain, "cellNumber": count})
    sku_types = {model: {"gpu": 1, "cpu": cpu // n, "memory": f"{mem // n}Mi"} for model, (cpu, mem, n) in sorted(sku.items())}
    return {
        "physicalCluster": {"skuTypes": sku_types, "cellTypes": cell_types, "physicalCells": physical},
        "virtualClusters": virtual,
    }


def write_config(config: dict[str, Any], path: str | Path) -> None:
    """Write a config as YAML, for reuse with ``--cluster``."""
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110))


def summary(jobs: list[SimJob]) -> dict[str, Any]:
    """Shape of a loaded trace (for docs and the benchmark)."""
    return {
        "jobs": len(jobs),
        "gpus": dict(sorted(Counter(j.total_gpus for j in jobs).items())),
        "opportunistic": sum(j.priority < 0 for j in jobs),
        "gpu_seconds": sum(j.total_gpus * j.duration for j in jobs),
        "span_s": (max(j.submit_time for j in jobs) - min(j.submit_time for j in jobs)) if jobs else 0.0,
    }
