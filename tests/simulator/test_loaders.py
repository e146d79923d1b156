"""Trace loaders, the cluster reading, the generated HiveD config, determinism and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pai_hub.simulator import (
    ClusterError,
    TraceError,
    VcAssigner,
    cluster_config_for_trace,
    load_alibaba,
    parse_cluster,
    parse_csv,
    read_vc_weights,
    simulate,
)
from pai_hub.simulator.alibaba import DEFAULT_NODES, DEFAULT_PODS, DEFAULT_VCS
from pai_hub.simulator.cli import main

from .conftest import two_node_config

HEADER = "submit_time,duration,gpus,instances,vc,priority,user,name\n"
needs_trace = pytest.mark.needs_reference(DEFAULT_PODS, DEFAULT_NODES, DEFAULT_VCS)  # the Alibaba v2023 trace


# -- the plain CSV format ------------------------------------------------------------------------
def test_csv_reads_every_column():
    jobs = parse_csv(HEADER + "# a comment\n\n0,10.5,2,3,vc1,prod,alice,train\n5,1,1,1,vc2,-1,,\n")
    assert [(j.name, j.user, j.vc, j.submit_time, j.duration, j.gpus, j.instances, j.priority) for j in jobs] == [
        ("train", "alice", "vc1", 0.0, 10.5, 2, 3, 100), ("job-2", "sim", "vc2", 5.0, 1.0, 1, 1, -1)]
    assert jobs[0].total_gpus == 6


@pytest.mark.parametrize(("body", "line", "column", "fragment"), [
    ("0,10,x,1,a,10\n", 2, "gpus", "expected an integer"),
    ("0,10,1,1,a,10\n-1,10,1,1,a,10\n", 3, "submit_time", "must be >= 0"),
    ("0,ten,1,1,a,10\n", 2, "duration", "expected a number"),
    ("0,10,1,0,a,10\n", 2, "instances", "must be >= 1"),
    ("0,10,1,1,,10\n", 2, "vc", "must not be empty"),
    ("0,10,1,1,a,50\n", 2, "priority", "priority class"),
    ("0,10,1,1,a,urgent\n", 2, "priority", "expected an integer"),
    ("0,10,1\n", 2, None, "expected 6 columns, got 3"),
])
def test_csv_errors_name_line_and_column(body, line, column, fragment):
    with pytest.raises(TraceError) as e:
        parse_csv("submit_time,duration,gpus,instances,vc,priority\n" + body, source="t.csv")
    assert (e.value.line, e.value.column) == (line, column)
    assert fragment in str(e.value)
    assert str(e.value).startswith(f"t.csv:{line}")


def test_csv_header_errors():
    with pytest.raises(TraceError, match="column 'vc': missing column"):
        parse_csv("submit_time,duration,gpus,instances,priority\n")
    with pytest.raises(TraceError, match="column 'colour': unknown column"):
        parse_csv("submit_time,duration,gpus,instances,vc,priority,colour\n")
    with pytest.raises(TraceError, match="empty trace"):
        parse_csv("")


# -- cluster configs ------------------------------------------------------------------------------
def test_cluster_reads_nodes_quotas_and_bins():
    config = {
        "physicalCluster": {
            "cellTypes": {
                "GPU-NODE": {"childCellType": "V100", "childCellNumber": 4, "isNodeLevel": True},
                "RACK": {"childCellType": "GPU-NODE", "childCellNumber": 2},
            },
            "physicalCells": [{"cellType": "RACK", "cellChildren": [{"cellAddress": "w0"}, {"cellAddress": "w1"}]},
                              {"cellType": "RACK", "pinnedCellId": "pin"},
                              {"cellType": "GPU-NODE", "cellAddress": "solo"}],
        },
        "virtualClusters": {"x": {"virtualCells": [{"cellType": "RACK.GPU-NODE", "cellNumber": 1}],
                                  "pinnedCells": [{"pinnedCellId": "pin"}]},
                            "y": {"virtualCells": [{"cellType": "GPU-NODE", "cellNumber": 1}]}},
    }
    c = parse_cluster(config)
    assert [n.name for n in c.nodes] == ["w0", "w1", "2", "3", "solo"]  # default addresses 1/2, 1/3
    assert c.capacity == 20
    assert c.quotas == {"x": 12, "y": 4}
    assert c.vc_bins["x"] == {"RACK": [4, 4, 4]}  # a node cell, then the pinned rack's two nodes
    assert c.vc_bins["y"] == {"GPU-NODE": [4]}
    infos = c.node_infos()
    assert len(infos[0].gpus) == 4 and infos[0].gpus[0].model == "V100"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c["physicalCluster"]["physicalCells"].append({"cellType": "NOPE"}), "unknown cell type 'NOPE'"),
    (lambda c: c["virtualClusters"]["a"]["virtualCells"].append({"cellType": "RACK", "cellNumber": 1}),
     "chain 'RACK' does not exist"),
    (lambda c: c["physicalCluster"]["physicalCells"].append({"cellType": "NODE", "cellAddress": "n0"}),
     "appears twice"),
    (lambda c: c.pop("physicalCluster"), "physicalCluster: missing"),
])
def test_cluster_errors_name_the_key(mutate, message):
    config = two_node_config()
    mutate(config)
    with pytest.raises(ClusterError, match=message):
        parse_cluster(config)


# -- the Alibaba trace ---------------------------------------------------------------------------
def test_vc_assignment_is_deterministic_and_weighted():
    weights = {"big": 3, "small": 1}
    assign = VcAssigner(weights, seed=0)
    names = [f"pod-{i}" for i in range(4000)]
    first = [assign(n) for n in names]
    assert first == [VcAssigner(weights, seed=0)(n) for n in names]
    assert first != [VcAssigner(weights, seed=1)(n) for n in names]
    assert 0.72 < first.count("big") / len(first) < 0.78


@needs_trace
def test_alibaba_loader_on_the_real_file():
    jobs = load_alibaba()
    # 8,152 pods: 1,088 without GPUs and 861 GPU pods that never ran are left out
    assert len(jobs) == 8152 - 1088 - 861
    assert {j.gpus for j in jobs} == {1, 2, 4, 8}
    assert {j.priority for j in jobs} == {-1, 10, 100}
    assert set(VcAssigner(read_vc_weights()).bounds[i][1] for i in range(11)) == {j.vc for j in jobs}
    first = next(j for j in jobs if j.name == "openb-pod-0001")
    assert (first.submit_time, first.duration, first.gpus) == (427061.0, 12902960.0 - 427061.0, 1)
    assert len(load_alibaba(include_pending=True)) == 8152 - 1088
    scaled = load_alibaba(time_scale=10, since=10_000_000, limit=50)
    assert len(scaled) == 50 and min(j.submit_time for j in scaled) >= 0


@needs_trace
def test_generated_hived_config_for_the_trace(tmp_path):
    config = cluster_config_for_trace()
    c = parse_cluster(config)
    assert len(c.nodes) == 1213 and c.capacity == 6212
    assert sum(c.quotas.values()) == 6212
    weights = read_vc_weights()
    for vc, w in weights.items():  # within one node per chain of the exact share
        assert abs(c.quotas[vc] - 6212 * w / 352) <= 8 * 10
    assert c.quotas["vc-6214e9"] > c.quotas["vc-11cb48"] > c.quotas["vc-103959"]
    from pai_hub.simulator import write_config

    write_config(config, tmp_path / "c.yaml")
    assert yaml.safe_load((tmp_path / "c.yaml").read_text()) == config
    small_config = cluster_config_for_trace(node_fraction=0.125)
    small = parse_cluster(small_config)
    assert 700 < small.capacity < 800
    from pai_hub.scheduler.hived import HivedScheduler

    HivedScheduler(small_config)  # HiveD accepts it (VC safety holds)


@needs_trace
def test_same_seed_same_report():
    config = cluster_config_for_trace(node_fraction=0.03125)
    jobs = load_alibaba(time_scale=64, since=10_000_000, limit=600)
    a = simulate(jobs, config, "fifo")
    b = simulate(load_alibaba(time_scale=64, since=10_000_000, limit=600), config, "fifo")
    assert a == b
    assert a["overall"]["queueing_delay_s"]["mean"] > 0  # the slice is loaded enough to queue
    other = simulate(load_alibaba(time_scale=64, since=10_000_000, limit=600, seed=7), config, "fifo")
    assert other["vcs"] != a["vcs"]


# -- the CLI --------------------------------------------------------------------------------------
def write_small(tmp_path: Path) -> tuple[Path, Path]:
    trace = tmp_path / "t.csv"
    trace.write_text(HEADER + "0,100,4,1,a,prod,u,a1\n0,100,4,1,a,prod,u,a2\n10,50,2,1,b,test,u,b1\n")
    cluster = tmp_path / "c.yaml"
    cluster.write_text(yaml.safe_dump(two_node_config()))
    return trace, cluster


def test_cli_prints_json(tmp_path, capsys):
    trace, cluster = write_small(tmp_path)
    assert main(["simulate", str(trace), "--cluster", str(cluster), "--scheduler", "fifo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scheduler"] == "fifo"
    assert report["overall"]["queueing_delay_s"]["mean"] == pytest.approx(33.333)
    assert set(report["vcs"]) == {"a", "b"}


def test_cli_table_and_errors(tmp_path, capsys):
    trace, cluster = write_small(tmp_path)
    assert main(["simulate", str(trace), "--cluster", str(cluster), "--scheduler", "fifo"]) == 0
    assert "overall" in capsys.readouterr().out
    assert main(["simulate", str(trace), "--scheduler", "fifo"]) == 2
    assert "--cluster CONFIG is required" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("submit_time,duration,gpus,instances,vc,priority\n0,1,two,1,a,10\n")
    assert main(["simulate", str(bad), "--cluster", str(cluster), "--scheduler", "fifo"]) == 2
    assert "bad.csv:2: column 'gpus'" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    other.write_text("submit_time,duration,gpus,instances,vc,priority\n0,1,1,1,zz,10\n")
    assert main(["simulate", str(other), "--cluster", str(cluster), "--scheduler", "fifo"]) == 2
    assert "does not define: zz" in capsys.readouterr().err


@needs_trace
def test_cli_alibaba_generates_and_writes_the_cluster(tmp_path, capsys):
    out = tmp_path / "alibaba-hived.yaml"
    assert main(["simulate", str(DEFAULT_PODS), "--scheduler", "fifo", "--json", "--write-cluster", str(out),
                 "--node-fraction", "0.0625", "--since", "12800000"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall"]["jobs"] > 100 and len(report["vcs"]) == 11
    assert parse_cluster(yaml.safe_load(out.read_text())).capacity == report["capacity_gpus"]
