"""A pod-at-a-time driver over HivedAlgorithm that mimics HiveD's Schedule / AddAllocatedPod /
DeleteAllocatedPod / DeleteUnallocatedPod, so HiveD's own test steps can be replayed as written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pai_hub.scheduler.hived.algorithm import ALLOCATED, PREEMPTING, GroupRequest, HivedAlgorithm, Result
from pai_hub.scheduler.hived.config import load_config

REFERENCE = Path(__file__).resolve().parents[4] / "shared" / "reference"
HIVED = REFERENCE / "hived"


def design_raw() -> dict[str, Any]:
    return yaml.safe_load((HIVED / "example/config/design/hivedscheduler.yaml").read_text())


@dataclass
class Outcome:
    kind: str  # bind | preempt | wait | error
    node: str | None = None
    leaves: list[int] | None = None
    victims: list[str] = field(default_factory=list)
    reason: str = ""


class PodDriver:
    def __init__(self, raw: dict[str, Any], pods: dict[str, dict], groups: dict[str, list[dict]]) -> None:
        self.algo = HivedAlgorithm(load_config(raw), hived_start=True)
        self.pod_specs = pods
        self.group_specs = groups
        self.pending: dict[str, tuple[GroupRequest, Result]] = {}
        self.pod_slot: dict[str, tuple[str, int]] = {}  # pod -> (group, slot)
        self.bound_pods: list[str] = []
        self.slot_owner: dict[tuple[str, int], str] = {}
        self.bind_types: dict[str, list] = {}

    def request(self, pod: str) -> GroupRequest:
        s = self.pod_specs[pod]
        sizes: list[int] = []
        for m in self.group_specs[s["affinityGroup"]]:
            sizes += [m["leafCellNumber"]] * m["podNumber"]
        return GroupRequest(s["affinityGroup"], s["virtualCluster"], s["priority"], tuple(sizes),
                            s["leafCellType"] or None, s["pinnedCellId"] or None, s["lazyPreemptionEnable"])

    def _slot(self, gname: str, pod: str, sizes: tuple[int, ...]) -> int:
        n = self.pod_specs[pod]["leafCellNumber"]
        if pod in self.pod_slot:
            return self.pod_slot[pod][1]
        for i, k in enumerate(sizes):
            if k == n and (gname, i) not in self.slot_owner:
                return i
        raise ValueError(f"AffinityGroup.Members does not contains current Pod {pod}")

    def _bind_outcome(self, phys, slot: int) -> Outcome:
        leaves = phys[slot]
        return Outcome("bind", leaves[0].node, [p.index for p in leaves])

    def schedule(self, pod: str, suggested: set[str] | None, phase: str = "Preempting") -> Outcome:
        req = self.request(pod)
        s = self.pod_specs[pod]
        if s["leafCellNumber"] not in req.pods:
            return Outcome("error", reason="AffinityGroup.Members does not contains current Pod")
        if not -1 <= req.priority <= 1000:
            return Outcome("error", reason=f"Priority is {'greater than 1000' if req.priority > 1000 else 'less than -1'}")
        g = self.algo.groups.get(req.name)
        if g is not None:
            if g.state == ALLOCATED:
                return self._bind_outcome(g.phys, self._slot(req.name, pod, req.pods))
            if g.state == PREEMPTING:
                nodes = {p.node for p in g.flat_phys()}
                if phase == "Preempting" and (nodes & self.algo.bad_nodes or (suggested is not None and not nodes <= suggested)):
                    self.algo.cancel_preempting(g)
                    g = None
                else:
                    victims, _ = self.algo.victims_of(g.phys, g)
                    if not victims:
                        self.pending[req.name] = (req, None)  # type: ignore[assignment]
                        return self._bind_outcome(g.phys, self._slot(req.name, pod, req.pods))
                    return Outcome("preempt", victims=self._victim_pods(victims))
        bad = self.algo.validate(req)
        if bad:
            return Outcome("error", reason=bad)
        res = self.algo.search(req, suggested)
        if not res.ok:
            return Outcome("wait", reason="; ".join(m.text for m in res.misses))
        victims, preemptors = self.algo.victims_of(res.phys)
        if phase == "Preempting":
            for p in preemptors:
                self.algo.cancel_preempting(p)
            if victims:
                self.algo.create_preempting(req, res)
                return Outcome("preempt", victims=self._victim_pods(victims))
        elif victims:
            for g2 in res.lazy:
                self.algo._revert_lazy(g2)
            return Outcome("preempt", victims=self._victim_pods(victims))
        self.pending[req.name] = (req, res)
        return self._bind_outcome(res.phys, self._slot(req.name, pod, req.pods))

    def _victim_pods(self, groups) -> list[str]:
        names = {g.name for g in groups}
        return sorted(p for p in self.bound_pods if self.pod_slot[p][0] in names)

    def add_allocated(self, pod: str) -> None:
        req = self.request(pod)
        g = self.algo.groups.get(req.name)
        if g is None:
            _req, res = self.pending.pop(req.name)
            g = self.algo.allocate(req, res)
            self.bind_types[req.name] = self.algo.pre_types(g)
        elif g.state == PREEMPTING:
            self.algo.finish_preempting(g)
        slot = self._slot(req.name, pod, req.pods)
        self.pod_slot[pod] = (req.name, slot)
        self.slot_owner[(req.name, slot)] = pod
        self.bound_pods.append(pod)

    def delete_allocated(self, pod: str) -> None:
        gname, slot = self.pod_slot.pop(pod)
        del self.slot_owner[(gname, slot)]
        self.bound_pods.remove(pod)
        if not any(g == gname for g, _ in self.pod_slot.values()):
            self.algo.delete(gname)

    def delete_unallocated(self, pod: str) -> None:
        gname = self.pod_specs[pod]["affinityGroup"]
        g = self.algo.groups.get(gname)
        if g is not None and g.state == PREEMPTING:
            self.algo.delete(gname)
