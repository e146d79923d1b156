from pai_hub.admin.pages import usage_by_user

HOUR = 3_600_000


def job(user, state, gpus, tasks=1, launched=None, completed=None):
    return {"username": user, "state": state, "totalGpuNumber": gpus, "totalTaskNumber": tasks,
            "launchedTime": launched, "completedTime": completed}


def test_usage_by_user_counts_running_waiting_and_gpu_hours():
    jobs = [job("alice", "RUNNING", 2, 2, launched=0), job("alice", "SUCCEEDED", 1, launched=0, completed=HOUR),
            job("bob", "WAITING", 4), job("bob", "FAILED", 0, launched=0, completed=HOUR)]
    rows = usage_by_user(jobs, ["alice", "bob", "carol"], now_ms=2 * HOUR)
    assert [r["username"] for r in rows] == ["alice", "bob", "carol"]
    alice, bob, carol = rows
    assert (alice["gpus"], alice["tasks"], alice["running"], alice["jobs"]) == (2, 2, 1, 2)
    assert alice["gpu_hours"] == 2 * 2 + 1 * 1
    assert (bob["waiting"], bob["gpus"], bob["gpu_hours"]) == (1, 0, 0)
    assert carol["jobs"] == 0
