"""The OpenPAI job → HiveD gangs mapping (pai_hub/scheduler/requests.py) under the cluster config
``pai server`` generates for a machine (pai_hub/scheduler/local_cluster.py), with the real HiveD
scheduler placing what it builds (issue 18: ``skuNum`` and mixed CPU/GPU roles)."""

from __future__ import annotations

import pytest

from pai_hub import protocol
from pai_hub.core import GpuInfo, NodeInfo
from pai_hub.scheduler.hived import HivedScheduler, load_config
from pai_hub.scheduler.local_cluster import CPU_SLOT_BASE, local_cluster_config
from pai_hub.scheduler.requests import ClusterFacts, RequestError, build_gangs


def machine(gpus: int = 4, cpu: int = 16) -> tuple[HivedScheduler, ClusterFacts]:
    """The scheduler and facts of the config generated for one machine with ``gpus`` GPUs."""
    node = NodeInfo("node-0", "127.0.0.1", cpu, 64 * 1024,
                    tuple(GpuInfo(i, f"GPU-{i}", "simulated", 16 * 1024, simulated=True) for i in range(gpus)))
    config = load_config(local_cluster_config([node]))
    return HivedScheduler(config), ClusterFacts.from_config(config)


def plan(roles: str, extras: str = "") -> protocol.RenderedJob:
    text = ("protocolVersion: 2\nname: j\ntype: job\n"
            "prerequisites:\n  - {name: image, type: dockerimage, uri: python:3.11}\n"
            f"taskRoles:\n{roles}{extras}")
    return protocol.check(text, username="alice")


def role(name: str, instances: int, gpu: int, cpu: int = 2, memory: int = 1024) -> str:
    return (f"  {name}:\n    instances: {instances}\n    dockerImage: image\n"
            f"    resourcePerInstance: {{cpu: {cpu}, memoryMB: {memory}, gpu: {gpu}}}\n    commands: [echo hi]\n")


def tasks_of(p: protocol.RenderedJob) -> list[tuple[str, int]]:
    return [(r.name, i) for r in p.task_roles.values() for i in range(r.instances)]


def place(scheduler: HivedScheduler, gangs: list) -> dict[str, dict[tuple[str, int], tuple[int, ...]]]:
    """Submit ``gangs`` and schedule once: gang id -> (role, index) -> GPU indices placed."""
    for gang in gangs:
        assert scheduler.validate(gang) is None, scheduler.validate(gang)
        scheduler.submit(gang)
    decisions = scheduler.schedule(0.0)
    return {p.gang_id: {(pod.role, pod.index): pod.gpus for pod in p.pods} for p in decisions.placements}


def test_parameter_servers_and_gpu_workers_are_placed_under_the_generated_config() -> None:
    """The TF/PyTorch PS-worker pattern: ``ps`` (gpu 0) + ``worker`` (gpu 1). It was refused ("tasks of
    affinity group 'default' ask for different SKUs"); now the GPU tasks are one gang on GPU cells, the
    CPU tasks one on CPU slots, and the parameter servers hold no GPU."""
    scheduler, facts = machine(gpus=2)
    p = plan(role("ps", 2, gpu=0) + role("worker", 2, gpu=1))
    gangs = build_gangs(7, 0, p, tasks_of(p), facts)
    assert {g.gang_id: (g.leaf_cell_type, sorted({pod.role for pod in g.pods})) for g in gangs} == {
        "7.0": ("cpu", ["ps"]), "7.0.default.simulated": ("simulated", ["worker"])}
    placed = place(scheduler, gangs)
    assert set(placed["7.0"]) == {("ps", 0), ("ps", 1)}
    slots = [i for held in placed["7.0"].values() for i in held]
    assert len(slots) == 2 * 2 and all(i >= CPU_SLOT_BASE for i in slots), placed  # CPU slots, no GPU
    assert sorted(placed["7.0.default.simulated"].values()) == [(0,), (1,)]


def test_gang_ids_do_not_depend_on_which_tasks_are_asked_for() -> None:
    """A retry in place asks for some tasks only: each keeps the gang id it had."""
    _, facts = machine()
    p = plan(role("ps", 1, gpu=0) + role("worker", 2, gpu=1))
    whole = {(pod.role, pod.index): g.gang_id for g in build_gangs(1, 0, p, tasks_of(p), facts) for pod in g.pods}
    part = {(pod.role, pod.index): g.gang_id for g in build_gangs(1, 0, p, [("worker", 1)], facts) for pod in g.pods}
    assert part == {("worker", 1): whole[("worker", 1)]}


def test_one_sku_jobs_keep_one_gang_named_after_the_job() -> None:
    _, facts = machine()
    p = plan(role("a", 2, gpu=1) + role("b", 1, gpu=2))
    assert [g.gang_id for g in build_gangs(3, 1, p, tasks_of(p), facts)] == ["3.1"]


def test_named_affinity_groups_must_still_agree_on_their_sku() -> None:
    _, facts = machine()
    extras = ("extras:\n  hivedScheduler:\n    taskRoles:\n      ps: {affinityGroupName: g}\n"
              "      worker: {affinityGroupName: g}\n")
    p = plan(role("ps", 1, gpu=0) + role("worker", 1, gpu=1), extras)
    with pytest.raises(RequestError, match=r"taskRoles\.worker\.affinityGroupName"):
        build_gangs(1, 0, p, tasks_of(p), facts)


@pytest.mark.parametrize("sku_num", [1, 2, 4, None])
def test_sku_num_is_accepted_and_the_resources_decide_the_cells(sku_num: int | None) -> None:
    """OpenPAI's web portal writes ``skuNum`` into every job; OpenPAI's REST server computes HiveD's
    leafCellNumber from ``resourcePerInstance`` whatever it says (the marketplace's DDP examples have
    ``skuNum: 1`` with ``gpu: 2`` and run on two GPUs). It used to be refused ("allowed fields are …")."""
    scheduler, facts = machine(gpus=4)
    shown = "null" if sku_num is None else sku_num
    extras = f"extras:\n  hivedScheduler:\n    taskRoles:\n      worker: {{skuNum: {shown}, skuType: null}}\n"
    p = plan(role("worker", 2, gpu=2, cpu=4), extras)
    gangs = build_gangs(1, 0, p, tasks_of(p), facts)
    assert [scheduler.leaf_cells(g, pod) for g in gangs for pod in g.pods] == [2, 2]
    assert sorted(place(scheduler, gangs)["1.0"].values()) == [(0, 1), (2, 3)]


def test_cluster_dependent_refusals_still_name_the_field() -> None:
    _, facts = machine()
    for extras, field in (("{skuType: K80}", "skuType"), ("{pinnedCellId: nope}", "pinnedCellId")):
        p = plan(role("worker", 1, gpu=1), f"extras:\n  hivedScheduler:\n    taskRoles:\n      worker: {extras}\n")
        with pytest.raises(RequestError, match=rf"extras\.hivedScheduler\.taskRoles\.worker\.{field}"):
            build_gangs(1, 0, p, tasks_of(p), facts)
