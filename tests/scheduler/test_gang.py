from pai_hub.scheduler import GangRequest, GangScheduler, PodRequest


def gang(gid: str, gpus: list[int], priority: int = 0) -> GangRequest:
    return GangRequest(gid, "default", priority, tuple(PodRequest("w", i, 1, 100, g) for i, g in enumerate(gpus)))


def test_all_or_nothing_and_backfill():
    s = GangScheduler({"a": (8, 1000, (0, 1)), "b": (8, 1000, (0, 1))})
    s.submit(gang("first", [1]))
    s.submit(gang("big", [2, 2]))
    s.submit(gang("small", [1]))
    d = s.schedule(0)
    assert [p.gang_id for p in d.placements] == ["first", "small"]
    assert "3 of 4 free" in d.waiting_reasons["big"]
    s.submit(gang("huge", [2, 2, 2]))
    assert "the cluster has only 4 GPUs" in s.schedule(1).waiting_reasons["huge"]


def test_priority_first_then_fifo_and_release():
    s = GangScheduler({"a": (8, 1000, (0, 1))})
    s.submit(gang("low", [2], 0))
    s.submit(gang("high", [2], 100))
    d = s.schedule(0)
    assert [p.gang_id for p in d.placements] == ["high"]
    s.release("high")
    assert [p.gang_id for p in s.schedule(1).placements] == ["low"]


def test_unhealthy_node_is_avoided_and_no_gpu_is_given_twice():
    s = GangScheduler({"a": (8, 1000, (0, 1)), "b": (8, 1000, (0, 1))})
    s.set_health("a", False)
    for i in range(3):
        s.submit(gang(f"g{i}", [1]))
    placed = s.schedule(0).placements
    assert {p.pods[0].node for p in placed} == {"b"} and len(placed) == 2
    assert sorted(p.pods[0].gpus for p in placed) == [(0,), (1,)]
