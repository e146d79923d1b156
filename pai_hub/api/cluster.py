"""Virtual clusters, SKUs and nodes (OpenPAI REST v2 #29–#34, and our admin extensions).

Reading needs a token; changing the cluster config or a node's health needs an admin with a user
token (an application token is refused, as OpenPAI refuses it VC writes: :mod:`.scopes`). A change of
the config goes through the same check as a reload: one that would break VC safety is refused with
the key and the reason, and nothing changes.
"""

from __future__ import annotations

import copy
from typing import Any

from ..scheduler.hived import HivedConfigError
from .errors import ApiError, bad_params
from .scopes import UserTokenOnly


def no_vc(vc: str) -> ApiError:
    return ApiError(404, "NoVirtualClusterError", f"Vc {vc} not found")


def _resources(counts: dict[str, int], skus: dict[str, Any]) -> dict[str, float]:
    cpu = sum(n * skus[s].cpu for s, n in counts.items() if s in skus)
    gpu = sum(n * skus[s].gpu for s, n in counts.items() if s in skus)
    mem = sum(n * skus[s].memory_mb for s, n in counts.items() if s in skus)
    return {"cpu": cpu, "memory": mem, "gpu": gpu, "vCores": cpu, "GPUs": gpu}


class ClusterAccess(UserTokenOnly):
    def vc_view(self, vc: str, cluster_gpu: float) -> dict[str, Any]:
        status = self.controller.vc_status(vc)
        per_sku = {k: v for k, v in status.items() if k != "nodes"}
        skus = self.cluster.sku_types
        total = _resources({s: v["capacity"] for s, v in per_sku.items()}, skus)
        used = _resources({s: v["used"] for s, v in per_sku.items()}, skus)
        guaranteed = _resources({s: v["capacity"] - v.get("bad", 0) for s, v in per_sku.items()}, skus)
        jobs = self.controller.jobs(virtual_cluster=vc)
        return {
            "capacity": round(100 * total["gpu"] / cluster_gpu, 2) if cluster_gpu else 0,
            "usedCapacity": round(100 * used["gpu"] / cluster_gpu, 2) if cluster_gpu else 0,
            "maxCapacity": round(100 * total["gpu"] / cluster_gpu, 2) if cluster_gpu else 0,
            "dedicated": False,
            "resourcesUsed": used,
            "resourcesGuaranteed": guaranteed,
            "resourcesTotal": total,
            "skus": {s: {"capacity": v["capacity"], "used": v["used"], "free": v["free"]} for s, v in per_sku.items()},
            "queue": sum(j.state == "WAITING" for j in jobs),
            "running": sum(j.state == "RUNNING" for j in jobs),
            # the quota as configured: what PUT /virtual-clusters/{vc} takes back
            "cells": {c["cellType"]: c["cellNumber"]
                      for c in ((self.cluster.raw.get("virtualClusters") or {}).get(vc) or {}).get(
                          "virtualCells") or []},
        }

    def cluster_gpu(self) -> float:
        status = self.controller.cluster_status()
        skus = self.cluster.sku_types
        return sum(v["capacity"] * (skus[s].gpu if s in skus else 1) for s, v in status["skus"].items())

    async def apply_config(self, raw: dict[str, Any]) -> None:
        try:
            await self.cluster.apply(raw)
        except HivedConfigError as exc:
            raise ApiError(400, "InvalidParametersError",
                           f"the cluster config was not changed: {exc.path}: {exc.reason}") from None


class VirtualClustersHandler(ClusterAccess):
    def get(self) -> None:
        gpu = self.cluster_gpu()
        if self.get_argument("nodes", None) is not None:
            nodes = self.controller.cluster_status()["nodes"]
            self.send({name: {"gpuUsed": sum(v["used"] for s, v in n["skus"].items() if s in self._gpu_skus()),
                              "gpuTotal": sum(v["capacity"] for s, v in n["skus"].items() if s in self._gpu_skus()),
                              "gpuAvailable": sum(v["free"] for s, v in n["skus"].items() if s in self._gpu_skus())}
                       for name, n in nodes.items()})
            return
        self.send({vc: self.vc_view(vc, gpu) for vc in self.cluster.virtual_clusters})

    def _gpu_skus(self) -> set[str]:
        return set(self.controller.cluster_facts.gpu_skus)


class VirtualClusterHandler(ClusterAccess):
    def get(self, vc: str) -> None:
        if vc not in self.cluster.virtual_clusters:
            raise no_vc(vc)
        self.send(self.vc_view(vc, self.cluster_gpu()))

    async def put(self, vc: str) -> None:
        """Set a VC's quota: ``{cells: {<cellType path>: <number>}, pinnedCells?: [...]}`` (admins)."""
        self.require_admin()
        body = self.json_body()
        cells = body.get("cells")
        if not isinstance(cells, dict) or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(
                v, bool) and v >= 0 for k, v in cells.items()):
            raise bad_params("cells: a mapping of cell type (e.g. V100-NODE) to a whole number of cells")
        raw = copy.deepcopy(self.cluster.raw)
        vcs = raw.setdefault("virtualClusters", {})
        spec = dict(vcs.get(vc) or {})
        spec["virtualCells"] = [{"cellType": k, "cellNumber": v} for k, v in cells.items() if v > 0]
        if "pinnedCells" in body:
            pinned = body["pinnedCells"]
            if not isinstance(pinned, list) or not all(isinstance(p, str) for p in pinned):
                raise bad_params("pinnedCells: a list of pinned cell ids")
            spec["pinnedCells"] = [{"pinnedCellId": p} for p in pinned]
        vcs[vc] = spec
        await self.apply_config(raw)
        self.send({"message": f"update virtual cluster {vc} successfully"}, 201)


class SkuTypesHandler(ClusterAccess):
    """``GET /cluster/sku-types[?vc=]``, and ``GET /virtual-clusters/{vc}/sku-types``, where OpenPAI's
    JavaScript SDK asks (its ``getVirtualClusterSkuTypes``)."""

    def get(self, vc_in_path: str | None = None) -> None:
        vc = vc_in_path if vc_in_path is not None else self.get_argument("vc", None)
        skus = self.cluster.sku_types
        names = set(skus)
        if vc is not None:
            if vc not in self.cluster.virtual_clusters:
                raise no_vc(vc)
            names &= set(self.controller.cluster_facts.vc_skus.get(vc, ()))
        self.send({s: {"cpu": skus[s].cpu, "memory": skus[s].memory_mb, "gpu": skus[s].gpu} for s in sorted(names)})


class NodesHandler(ClusterAccess):
    def get(self) -> None:
        self.require_admin()
        holders = self.controller.gpu_holders()
        status = self.controller.cluster_status()["nodes"]
        out = []
        for node in self.controller.nodes():
            entry = status.get(node.name, {"healthy": True, "skus": {}})
            out.append({
                "name": node.name, "ip": node.ip, "healthy": entry["healthy"], "skus": entry["skus"],
                "gpus": [{"index": g.index, "uuid": g.uuid, "model": g.model, "simulated": g.simulated,
                          "used": (node.name, g.index) in holders, "job": holders.get((node.name, g.index))}
                         for g in node.gpus],
            })
        self.send(out)


class NodeHealthHandler(ClusterAccess):
    async def put(self, node: str) -> None:
        self.require_admin()
        if not self.controller.has_node(node):
            raise ApiError(404, "NoNodeError", f"Node {node} is not found.")
        healthy = self.json_body().get("healthy")
        if not isinstance(healthy, bool):
            raise bad_params("healthy: must be true or false")
        await self.controller.call(lambda m, now: m.set_node_health(node, healthy, now))
        self.send({"message": f"node {node} marked {'healthy' if healthy else 'bad'}"})


class ReloadHandler(ClusterAccess):
    async def post(self) -> None:
        """Re-read the cluster config from its file (admins); refused, with the reason, if unsafe."""
        self.require_admin()
        try:
            raw = self.cluster.read_source()
        except ValueError as exc:
            raise ApiError(400, "InvalidParametersError", f"the cluster config was not changed: {exc}") from None
        await self.apply_config(raw)
        self.send({"message": "cluster config reloaded", "virtualClusters": self.cluster.virtual_clusters})
