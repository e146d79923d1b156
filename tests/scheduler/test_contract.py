"""What the platform reads of a scheduler is in the base class, and every scheduler answers it alike."""

from __future__ import annotations

import pytest

from pai_hub.core import GpuInfo, NodeInfo
from pai_hub.scheduler.base import GangRequest, PodRequest, Scheduler
from pai_hub.scheduler.gang import GangScheduler
from pai_hub.scheduler.hived import HivedScheduler
from pai_hub.scheduler.local_cluster import local_cluster_config
from pai_hub.simulator.baseline import QuotaFifoScheduler
from pai_hub.simulator.engine import RecordingScheduler

NODE = NodeInfo("n1", "10.0.0.1", 8, 16384, tuple(GpuInfo(i, f"g{i}", "sim", 1024, True) for i in range(4)))


def _gang(gid: str, gpus: list[int], vc: str = "default") -> GangRequest:
    # the GPU model as the SKU, as the orchestrator's requests name it (scheduler/requests.py)
    return GangRequest(gid, vc, 0, tuple(PodRequest("w", i, 1, 256, g) for i, g in enumerate(gpus)),
                       leaf_cell_type="sim")


SCHEDULERS = {
    "gang": lambda: GangScheduler({"n1": (8, 16384, (0, 1, 2, 3))}),
    "hived": lambda: HivedScheduler(local_cluster_config([NODE])),
    "fifo": lambda: QuotaFifoScheduler([("n1", 4, "sim")], {"default": 4}),
    "recording": lambda: RecordingScheduler(GangScheduler({"n1": (8, 16384, (0, 1, 2, 3))})),
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_status_validation_and_leaf_cells_through_the_base_class(name):
    s: Scheduler = SCHEDULERS[name]()
    assert s.validate(_gang("ok", [2])) is None
    assert s.validate(_gang("huge", [16])), "a task bigger than any node can never be placed"
    assert s.leaf_cells(_gang("ok", [2]), PodRequest("w", 0, 1, 256, 2)) == 2
    s.submit(_gang("run", [2]))
    [placement] = s.schedule(0.0).placements
    status = s.cluster_status()
    assert set(status) == {"nodes", "skus", "vcs"}
    assert status["nodes"]["n1"]["healthy"] is True
    gpu_sku = next(sku for sku, use in status["nodes"]["n1"]["skus"].items() if use["capacity"] == 4)
    assert status["nodes"]["n1"]["skus"][gpu_sku]["used"] == 2
    assert status["skus"][gpu_sku] == {"capacity": 4, "used": 2, "free": 2, "bad": 0}
    vc = s.vc_status("default")
    assert any(isinstance(use, dict) and use.get("used") == 2 for sku, use in vc.items() if sku != "nodes")
    with pytest.raises(KeyError):
        s.vc_status("no-such-vc")
    s.release(placement.gang_id)
    assert s.cluster_status()["skus"][gpu_sku]["used"] == 0
