"""HiveD scheduler benchmark: the workload of notes/hived-bench.md, timed per gang.

``python -m benchmarks.scheduler [--quick] [--seed N]`` prints JSON. 1,250 nodes x 8 GPUs in racks
of 16 (78 racks + 2 spare nodes in a second chain), 4 VCs with 40/30/20/10 % of the cells, one
guaranteed gang per job of 1..64 GPUs (8-GPU pods), VC chosen by quota. Phases: A fill 0->50 %,
B 50->90 %, C steady ~90 % with random releases. Latency per gang = submit + schedule + the
placement it returns (the calls that place one gang and record its pods). Phase D (backlog) then
submits 100,000 gangs that stay waiting and times ``schedule()`` per call over turns where one
running gang finishes and one new gang arrives: a turn's cost with a long queue.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time

from pai_hub.scheduler.base import GangRequest, PodRequest
from pai_hub.scheduler.hived import HivedScheduler

SIZES = (1, 2, 4, 8, 16, 32, 64)


def build_config(nodes: int = 1250, rack: int = 16) -> dict:
    racks, spare = divmod(nodes, rack)
    cells = []
    n = 0
    for r in range(racks):
        cells.append({"cellType": "RACK", "cellAddress": f"rack-{r:02d}",
                      "cellChildren": [{"cellAddress": f"node-{n + i:04d}"} for i in range(rack)]})
        n += rack
    for _ in range(spare):
        cells.append({"cellType": "NODE", "cellAddress": f"node-{n:04d}"})
        n += 1
    shares = {"vc1": 0.4, "vc2": 0.3, "vc3": 0.2, "vc4": 0.1}
    vcs = {}
    for i, (vc, share) in enumerate(shares.items()):
        want = round(nodes * share)  # nodes; whole racks first, the rest as single nodes
        r, loose = divmod(want, rack)
        cells_vc = [{"cellType": "RACK", "cellNumber": r}]
        spare_nodes = min(spare, loose) if i == len(shares) - 1 else 0
        if loose - spare_nodes:
            cells_vc.append({"cellType": "RACK.NODE", "cellNumber": loose - spare_nodes})
        if spare_nodes:
            cells_vc.append({"cellType": "NODE", "cellNumber": spare_nodes})
        vcs[vc] = {"virtualCells": cells_vc}
    return {"physicalCluster": {"skuTypes": {"GPU": {"gpu": 1, "cpu": 4, "memory": "16384Mi"}},
                                "cellTypes": {"NODE": {"childCellType": "GPU", "childCellNumber": 8, "isNodeLevel": True},
                                              "RACK": {"childCellType": "NODE", "childCellNumber": rack}},
                                "physicalCells": cells},
            "virtualClusters": vcs}


def vc_quota(config: dict) -> dict[str, int]:
    out = {}
    for vc, spec in config["virtualClusters"].items():
        g = 0
        for c in spec["virtualCells"]:
            g += c["cellNumber"] * (128 if c["cellType"] == "RACK" else 8)
        out[vc] = g
    return out


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def run(seed: int, arrivals_c: int, nodes: int, backlog: int = 0, backlog_turns: int = 0) -> dict:
    config = build_config(nodes)
    quota = vc_quota(config)
    total = nodes * 8
    rng = random.Random(seed)
    t0 = time.perf_counter()
    sched = HivedScheduler(config)
    build_s = time.perf_counter() - t0
    vcs = list(quota)
    weights = [quota[v] for v in vcs]
    running: dict[str, int] = {}
    used = 0
    seq = 0
    phases: dict[str, dict] = {}

    def gang() -> GangRequest:
        nonlocal seq
        seq += 1
        size = rng.choice(SIZES)
        vc = rng.choices(vcs, weights)[0]
        pods = tuple(PodRequest("worker", i, 4 * min(8, size), 16384 * min(8, size), min(8, size))
                     for i in range(max(1, size // 8)))
        return GangRequest(f"job-{seq}", vc, 0, pods, float(seq), "GPU")

    def place(g: GangRequest, stats: dict) -> bool:
        nonlocal used
        t = time.perf_counter()
        c = time.thread_time()
        sched.submit(g)
        d = sched.schedule(float(seq))
        dt = time.perf_counter() - t
        dc = time.thread_time() - c
        n = sum(p.gpu for p in g.pods)
        if d.placements:
            stats["lat"].append(dt)
            stats["cpu"].append(dc)
            stats["pods"] += len(g.pods)
            stats["by_size"].setdefault(n, []).append(dt)
            running[g.gang_id] = n
            used += n
            return True
        sched.cancel(g.gang_id)
        stats["waits"] += 1
        stats["wait_time"] += dt
        return False

    def new_stats() -> dict:
        return {"lat": [], "cpu": [], "pods": 0, "waits": 0, "wait_time": 0.0, "by_size": {}, "releases": []}

    for name, target in (("A_fill_0_50", 0.5), ("B_fill_50_90", 0.9)):
        st = new_stats()
        misses = 0
        while used < target * total and misses < 50:
            if not place(gang(), st):
                misses += 1
        phases[name] = st
    st = new_stats()
    for _ in range(arrivals_c):
        g = gang()
        n = sum(p.gpu for p in g.pods)
        while running and used + n > 0.9 * total:
            victim = rng.choice(list(running))
            t = time.perf_counter()
            sched.release(victim)
            st["releases"].append(time.perf_counter() - t)
            used -= running.pop(victim)
        place(g, st)
    phases["C_steady_90"] = st
    out = {}
    for name, st in phases.items():
        busy = sum(st["lat"])
        out[name] = {
            "gangs": len(st["lat"]), "waits": st["waits"],
            "gangs_per_s": round(len(st["lat"]) / busy, 1) if busy else None,
            "pods_per_s": round(st["pods"] / busy, 1) if busy else None,
            "p50_ms": round(pct(st["lat"], 50) * 1e3, 3), "p99_ms": round(pct(st["lat"], 99) * 1e3, 3),
            "cpu_p99_ms": round(pct(st["cpu"], 99) * 1e3, 3),
            "p50_ms_by_gpus": {str(k): round(pct(v, 50) * 1e3, 3) for k, v in sorted(st["by_size"].items())},
            "p99_ms_by_gpus": {str(k): round(pct(v, 99) * 1e3, 3) for k, v in sorted(st["by_size"].items())},
            "wait_mean_ms": round(st["wait_time"] / st["waits"] * 1e3, 3) if st["waits"] else None,
        }
        if st["releases"]:
            out[name]["release_p50_ms"] = round(pct(st["releases"], 50) * 1e3, 3)
            out[name]["release_p99_ms"] = round(pct(st["releases"], 99) * 1e3, 3)
    out["load_at_end"] = round(used / total, 4)
    out["build_s"] = round(build_s, 3)
    if backlog:
        out["D_backlog"] = _backlog(sched, gang, running, rng, backlog, backlog_turns)
    _check(sched)
    return out


def _backlog(sched: HivedScheduler, gang, running: dict[str, int], rng: random.Random, n: int, turns: int) -> dict:
    """``n`` gangs submitted and left waiting, then ``turns`` turns of: a random running gang
    finishes, a new gang arrives, ``schedule()`` (timed) places what now fits."""
    t = time.perf_counter()
    for _ in range(n):
        sched.submit(gang())
    submit_s = time.perf_counter() - t
    t = time.perf_counter()
    first = sched.schedule(0.0)
    first_s = time.perf_counter() - t
    for p in first.placements:
        running[p.gang_id] = sum(len(x.gpus) for x in p.pods)
    lat: list[float] = []
    cpu: list[float] = []
    placed = reported = 0
    for turn in range(turns):
        victim = rng.choice(list(running))
        sched.release(victim)
        running.pop(victim)
        sched.submit(gang())
        t, c = time.perf_counter(), time.thread_time()
        d = sched.schedule(float(turn))
        lat.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
        placed += len(d.placements)
        reported += len(d.waiting_reasons)
        for p in d.placements:
            running[p.gang_id] = sum(len(x.gpus) for x in p.pods)
    return {"waiting": n, "turns": turns, "submit_per_s": round(n / submit_s, 1),
            "first_schedule_ms": round(first_s * 1e3, 3), "placed_in_turns": placed,
            "reasons_reported_per_turn": round(reported / turns, 1) if turns else None,
            "waiting_at_end": len(sched._waiting),
            "schedule_p50_ms": round(pct(lat, 50) * 1e3, 3), "schedule_p99_ms": round(pct(lat, 99) * 1e3, 3),
            "schedule_max_ms": round(max(lat, default=0.0) * 1e3, 3),
            "schedule_cpu_p99_ms": round(pct(cpu, 99) * 1e3, 3)}


def _check(sched: HivedScheduler) -> None:
    seen = set()
    for g in sched.algo.groups.values():
        for p in g.flat_phys():
            assert p not in seen, "leaf given twice"
            seen.add(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smoke test: 160 nodes, 300 steady arrivals")
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--arrivals", type=int, default=2000)
    ap.add_argument("--backlog", type=int, default=100_000, help="gangs left waiting in phase D (0: no phase D)")
    ap.add_argument("--backlog-turns", type=int, default=2000)
    args = ap.parse_args(argv)
    nodes, arrivals = (160, 300) if args.quick else (1250, args.arrivals)
    backlog, turns = (2000, 100) if args.quick else (args.backlog, args.backlog_turns)
    result = {"benchmark": "scheduler", "nodes": nodes, "gpus": nodes * 8, "seed": args.seed,
              "python": platform.python_version(), "machine": platform.machine()}
    result.update(run(args.seed, arrivals, nodes, backlog, turns))
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
