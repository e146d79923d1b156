"""From a rendered OpenPAI job to scheduler gangs, as OpenPAI's REST server did for HiveD.

Rules (notes/openpai.md §5.2): ``extras.hivedScheduler.jobPriorityClass`` gives the priority
(crit 120, prod 100, test 10 — the default —, oppo -1); per task role ``skuType``,
``pinnedCellId`` and ``affinityGroupName``; one affinity group (gang) per job unless roles name
groups, and none with ``extras.gangAllocation: false`` (each task is its own gang). What the
block may hold whatever the cluster is checked by the protocol (:mod:`pai_hub.protocol.hived`, so
``pai job validate`` agrees with the server); what depends on the cluster (the SKU exists, the VC
has it, the pinned cell is the VC's) is refused here, at submit, naming the field.

Where OpenPAI leaves the SKU open, PAI Hub picks it: a task asking for GPUs gets the VC's GPU SKU
when it has exactly one (otherwise any GPU type), and a CPU-only task gets the VC's CPU SKU when
there is one. So on one machine, CPU jobs do not hold GPUs.

A job's default affinity group (no ``affinityGroupName``) whose roles end up on different SKUs or
pinned cells — the parameter-server pattern: ``ps`` with ``gpu: 0`` and ``worker`` with ``gpu: 1``
— becomes one gang per SKU: all the GPU tasks are placed together, and all the CPU tasks, rather
than the parameter servers holding GPUs (as they would in OpenPAI, where HiveD places an affinity
group in one chain and a CPU-only pod takes at least one GPU cell) or the job being refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..protocol.hived import PRIORITY_CLASSES, hived_errors, hived_scheduler
from .base import GangRequest, PodRequest

__all__ = ["PRIORITY_CLASSES", "ClusterFacts", "RequestError", "build_gangs", "choose_sku", "hived_extras",
           "job_priority"]


class RequestError(ValueError):
    """A job the scheduler could never place as asked; the message names the field."""


@dataclass(frozen=True)
class ClusterFacts:
    """What the mapping needs to know of the cluster config."""

    gpu_skus: frozenset[str]  # leaf types whose cells are GPUs
    skus: frozenset[str]  # every leaf type
    vc_skus: Mapping[str, frozenset[str]]  # VC -> leaf types it has guaranteed or pinned cells of
    pinned: Mapping[str, frozenset[str]]  # VC -> pinned cell ids
    # (GPU task?, VC, opportunistic?) -> choose_sku's answer: asked for every task of every attempt
    _chosen: dict[tuple[bool, str, bool], str | None] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Any) -> ClusterFacts:
        """From a :class:`pai_hub.scheduler.hived.HivedConfig`."""
        leaf_of_chain = {name: chain.leaf_type for name, chain in config.chains.items()}
        pinned_chain = {}
        for chain_name in config.chains:
            pinned_chain.update({pid: chain_name for pid in _pinned_ids(config, chain_name)})
        vc_skus = {}
        for vc, spec in config.virtual_clusters.items():
            kinds = {leaf_of_chain[c.chain] for c in spec.virtual_cells}
            kinds |= {leaf_of_chain[pinned_chain[p]] for p in spec.pinned_cells if p in pinned_chain}
            vc_skus[vc] = frozenset(kinds)
        skus = frozenset(leaf_of_chain.values())
        gpu = frozenset(t for t in skus if (config.sku_types.get(t) is None or config.sku_types[t].gpu > 0))
        return cls(gpu, skus, vc_skus,
                   {vc: frozenset(spec.pinned_cells) for vc, spec in config.virtual_clusters.items()})


def _pinned_ids(config: Any, chain_name: str) -> list[str]:
    out: list[str] = []

    def walk(cell: Any) -> None:
        if cell.pinned_cell_id:
            out.append(cell.pinned_cell_id)
        for child in cell.children:
            walk(child)

    for cell in config.physical_cells:
        if cell.cell_type == chain_name:
            walk(cell)
    return out


def hived_extras(plan: Any) -> dict[str, Any]:
    """The job's ``extras.hivedScheduler``, refused (RequestError naming the field) as the protocol
    refuses it: a stored job read back, or a plan built without the protocol's checks, gets the same
    answer as a submission."""
    extras = plan.protocol.extras
    errors = hived_errors(extras, plan.task_roles)
    if errors:
        raise RequestError(str(errors[0]))
    return hived_scheduler(extras)


def job_priority(plan: Any) -> tuple[int, str | None]:
    """OpenPAI's priority class of a job, and its number."""
    cls = hived_extras(plan).get("jobPriorityClass")
    if cls is None:
        return PRIORITY_CLASSES["test"], None
    return PRIORITY_CLASSES[cls], cls


def choose_sku(gpu: int, vc: str, facts: ClusterFacts, oppo: bool) -> str | None:
    """The SKU of a task that names none: the VC's only GPU (or CPU) type, else any type (None)."""
    key = (gpu > 0, vc, oppo)
    try:
        return facts._chosen[key]
    except KeyError:
        pass
    candidates = facts.skus if oppo else facts.vc_skus.get(vc, frozenset())
    wanted = sorted(s for s in candidates if (s in facts.gpu_skus) == (gpu > 0))
    chosen = facts._chosen[key] = wanted[0] if len(wanted) == 1 else None
    return chosen


def _where(role: str) -> str:
    """The field an error about ``role``'s scheduling extras names (built only for an error)."""
    return f"extras.hivedScheduler.taskRoles.{role}"


def build_gangs(job_id: int, attempt: int, plan: Any, tasks: list[tuple[str, int]], facts: ClusterFacts | None,
                submitted_at: float = 0.0, vc: str | None = None) -> list[GangRequest]:
    """The gangs of one attempt. ``tasks`` are the (role, index) pairs still to place."""
    vc = vc or plan.virtual_cluster
    priority, _ = job_priority(plan)
    extras = hived_extras(plan)
    role_extras: dict[str, Any] = extras.get("taskRoles") or {}
    oppo = priority < 0
    lazy = bool(extras.get("lazyPreemptionEnable", False))
    # every role's SKU, pinned cell and group, from the roles in the job's order (so a call for some
    # tasks only names the gangs as a call for all of them does)
    placement: dict[str, tuple[str | None, str | None, str]] = {}
    default_groups: dict[tuple[str | None, str | None], str] = {}
    for role_name, role in plan.task_roles.items():
        rx = role_extras.get(role_name) or {}
        sku_name, pinned = rx.get("skuType"), rx.get("pinnedCellId")
        if facts is not None:
            if pinned is not None and pinned not in facts.pinned.get(vc, ()):
                raise RequestError(f"{_where(role_name)}.pinnedCellId: {pinned!r} is not a pinned cell of VC {vc}")
            if sku_name is not None:
                if sku_name not in facts.skus:
                    raise RequestError(f"{_where(role_name)}.skuType: unknown SKU {sku_name!r}; known: "
                                       f"{', '.join(sorted(facts.skus))}")
                if not oppo and sku_name not in facts.vc_skus.get(vc, ()):
                    raise RequestError(f"{_where(role_name)}.skuType: VC {vc} has no {sku_name} cells")
            elif pinned is None:
                sku_name = choose_sku(role.gpu, vc, facts, oppo)
        if rx.get("affinityGroupName"):
            group = rx["affinityGroupName"]
        else:  # the default group: one gang per SKU (or pinned cell) its roles ask for
            group = default_groups.setdefault((sku_name, pinned),
                                              "default" if not default_groups else f"default.{pinned or sku_name}")
        placement[role_name] = (sku_name, pinned, group)
    groups: dict[str, list[PodRequest]] = {}
    group_sku: dict[str, tuple[str | None, str | None]] = {}
    for role_name, index in tasks:
        role = plan.task_roles[role_name]
        sku_name, pinned, group = placement[role_name]
        pod = PodRequest(role_name, index, role.cpu, role.memory_mb, role.gpu)
        if not plan.gang_allocation:
            group = f"{role_name}.{index}"
        previous = group_sku.setdefault(group, (sku_name, pinned))
        if previous != (sku_name, pinned):
            raise RequestError(f"{_where(role_name)}.affinityGroupName: tasks of affinity group {group!r} ask for "
                               "different SKUs or pinned cells")
        groups.setdefault(group, []).append(pod)
    prefix = f"{job_id}.{attempt}"
    out = []
    for group, pods in groups.items():
        sku_name, pinned = group_sku[group]
        gang_id = prefix if group == "default" and plan.gang_allocation else f"{prefix}.{group}"
        out.append(GangRequest(gang_id, vc, priority, tuple(pods), submitted_at, sku_name, pinned, lazy))
    return out
