"""The usage page's arithmetic: what is in use now from the live jobs, GPU-hours from the report."""

from pai_hub.admin.pages import usage_by_user


def job(user, state, gpus, tasks=1):
    return {"username": user, "state": state, "totalGpuNumber": gpus, "totalTaskNumber": tasks}


def test_usage_by_user_counts_live_jobs_and_takes_gpu_hours_from_the_report():
    live = [job("alice", "RUNNING", 2, 2), job("bob", "WAITING", 4), job("bob", "RUNNING", 1, 3)]
    report = {"rows": [{"key": "alice", "gpuHours": 5.0, "jobs": 2, "tasks": 3},
                       {"key": "dave", "gpuHours": 0.5, "jobs": 1, "tasks": 1}]}
    rows = usage_by_user(live, report, ["alice", "bob", "carol"])
    assert [r["username"] for r in rows] == ["alice", "bob", "dave", "carol"]
    alice, bob, dave, carol = rows
    assert (alice["gpus"], alice["tasks"], alice["running"], alice["gpu_hours"], alice["window_jobs"]) == (2, 2, 1, 5, 2)
    assert (bob["waiting"], bob["running"], bob["gpus"], bob["tasks"], bob["gpu_hours"]) == (1, 1, 1, 3, 0)
    assert (dave["gpu_hours"], dave["window_tasks"]) == (0.5, 1)  # a user no longer listed still counts
    assert carol == {"username": "carol", "running": 0, "waiting": 0, "gpus": 0, "tasks": 0, "gpu_hours": 0.0,
                     "window_jobs": 0, "window_tasks": 0}
