"""Experiments end to end: a real ``pai server``, NNI 3.0 from build/nni-3.0, trials as PAI jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from tests.server import REPO

TRIAL = """import nni
p = nni.get_next_parameter()
for i in range(2):
    nni.report_intermediate_result(p['x'] * i)
nni.report_final_result(p['x'] * 10 + p['y'])
"""
SLEEPER = """import time, nni
p = nni.get_next_parameter()
nni.report_intermediate_result(1)
time.sleep(600)
"""
SPACE = {"x": {"_type": "choice", "_value": [1, 2, 3]}, "y": {"_type": "uniform", "_value": [0, 1]}}


def body(script: str, trials: int = 6, concurrency: int = 2, **trial) -> dict:
    return {"name": "t", "searchSpace": SPACE, "tuner": {"name": "Random"}, "maxTrialNumber": trials,
            "trialConcurrency": concurrency,
            "trial": {"command": "python3 trial.py", "cpu": 1, "memoryMB": 256, "files": {"trial.py": script},
                      **trial}}


def wait_exp(c: httpx.Client, exp_id: str, states: set[str], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        e = c.get(f"/api/v2/experiments/{exp_id}").json()
        if e["state"] in states:
            return e
        assert time.monotonic() < deadline, f"experiment stayed {e['state']}: {json.dumps(e)[:2000]}"
        time.sleep(1)


def trial_jobs(c: httpx.Client, exp_id: str) -> list[dict]:
    return [j for j in c.get("/api/v2/jobs", params={"keyword": f"nni_{exp_id}_"}).json()
            if j["name"].startswith(f"nni_{exp_id}_")]


def wait_trials(c: httpx.Client, exp_id: str, done: Callable[[list[str]], bool], timeout: float) -> list[str]:
    """The states of the experiment's trial jobs once ``done`` accepts them, polled every 0.5 s; the
    jobs themselves are the message when they do not get there in ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done(states := [j["state"] for j in trial_jobs(c, exp_id)]):
        assert time.monotonic() < deadline, trial_jobs(c, exp_id)
        time.sleep(0.5)
    return states


def listeners(port: int) -> set[str]:
    """Local addresses listening on ``port`` (IPv4 hex from /proc/net/tcp, IPv6 as 'v6')."""
    out = set()
    for table, tag in (("/proc/net/tcp", ""), ("/proc/net/tcp6", "v6:")):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, p = local.split(":")
                if state == "0A" and int(p, 16) == port:
                    out.add(tag + addr)
    return out


def test_six_trial_experiment_runs_to_done_with_metrics(make_server):
    server = make_server()
    alice, bob = server.add_user("alice"), server.add_user("bob")
    with server.client(alice) as c:
        r = c.post("/api/v2/experiments", json=body(TRIAL))
        assert r.status_code == 202, r.text
        exp = r.json()
        assert exp["state"] == "RUNNING" and exp["username"] == "alice"
        e = wait_exp(c, exp["id"], {"DONE", "ERROR", "STOPPED"})
        assert e["state"] == "DONE", e
        assert e["nniStatus"] == "DONE" and e["trialCounts"] == {"SUCCEEDED": 6}
        assert len(e["trials"]) == 6
        for t in e["trials"]:
            p = t["parameters"]
            assert p["x"] in (1, 2, 3) and 0 <= p["y"] <= 1
            assert t["intermediate"] == [0, p["x"]]
            assert t["final"] == pytest.approx(p["x"] * 10 + p["y"])
            assert t["job"]["state"] == "SUCCEEDED"
            job = c.get(t["job"]["url"]).json()  # every trial is a PAI job in the experiment's VC
            assert job["jobStatus"]["state"] == "SUCCEEDED" and job["jobStatus"]["virtualCluster"] == "default"
        assert e["bestFinal"] == max(t["final"] for t in e["trials"])
        assert len(trial_jobs(c, exp["id"])) == 6
        assert [x["id"] for x in c.get("/api/v2/experiments").json()] == [exp["id"]]
        assert c.get(f"/api/v2/experiments/{exp['id']}/trials").json() == e["trials"]

        # NNI's web UI and REST API: on 127.0.0.1 only, reached through the authenticated proxy
        record = json.loads((server.data_dir / "experiments" / exp["id"] / "experiment.json").read_text())
        assert listeners(record["port"]) == {"0100007F"}
        ui = f"/api/v2/experiments/{exp['id']}/ui"
        r = c.get(ui + "/")
        assert r.status_code == 200 and "<html" in r.text.lower()
        assert c.get(ui + "/api/v1/nni/check-status").json()["status"] == "DONE"
        assert httpx.get(server.url + ui + "/").status_code == 401
        with server.client(bob) as other:
            assert other.get(ui + "/").status_code == 404
            assert other.get(f"/api/v2/experiments/{exp['id']}").status_code == 404
            assert other.get("/api/v2/experiments").json() == []
        # the page, at a path without "experiment" in it (NNI's UI renders nothing under such a path)
        page = e["ui"].rstrip("/")
        assert page == f"/nni/{exp['id']}" and "experiment" not in page
        assert other_status(server, bob, page + "/") == 404
        with httpx.Client(base_url=server.url) as browser:  # ?token= once, then an HttpOnly cookie
            r = browser.get(page + "/oview", params={"token": alice})
            assert r.status_code == 302 and "token" not in r.headers["location"]
            assert "httponly" in r.headers["set-cookie"].lower() and f"path={page}" in r.headers["set-cookie"].lower()
            assert browser.get(page + "/oview").status_code == 200
            assert browser.get(page + "/api/v1/nni/trial-jobs").json()[0]["status"] == "SUCCEEDED"

        r = c.put(f"/api/v2/experiments/{exp['id']}/executionType", json={"value": "STOP"})
        assert r.status_code == 202 and r.json()["state"] == "DONE" and r.json()["ui"] is None
        assert listeners(record["port"]) == set()
        assert c.get(ui + "/").status_code == 409


def other_status(server, token: str, path: str) -> int:
    with server.client(token) as c:
        return c.get(path).status_code


def pai(server, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAI_URL": server.url, "PAI_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "pai_hub.cli", "experiment", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)


def test_stop_stops_running_trial_jobs_and_trials_wait_for_quota(make_server, tmp_path):
    # the node offers 2 CPUs: with trialConcurrency 3 and 1 CPU per trial, the third trial job waits
    server = make_server("--node-cpu", "2")
    alice = server.add_user("alice")
    code = tmp_path / "code"
    code.mkdir()
    (code / "trial.py").write_text(SLEEPER)
    spec = tmp_path / "exp.yaml"
    spec.write_text(json.dumps({**body(SLEEPER, trials=5, concurrency=3),
                                "trial": {"command": "python3 trial.py", "cpu": 1, "memoryMB": 256,
                                          "codeDir": "code"}}))
    r = pai(server, alice, "create", str(spec))
    assert r.returncode == 0, r.stderr
    exp_id = r.stdout.split()[2]
    with server.client(alice) as c:
        def two_running_one_waiting(states: list[str]) -> bool:
            assert states.count("RUNNING") <= 2, states  # never more than the concurrency
            return sorted(states) == ["RUNNING", "RUNNING", "WAITING"]

        wait_trials(c, exp_id, two_running_one_waiting, timeout=120)
        time.sleep(3)  # deliberate: proves NO further trial runs or is submitted (at most 2 running, 3 submitted)
        assert sorted(j["state"] for j in trial_jobs(c, exp_id)) == ["RUNNING", "RUNNING", "WAITING"]
        shown = pai(server, alice, "show", exp_id)
        assert shown.returncode == 0 and "RUNNING" in shown.stdout and f"nni_{exp_id}_" in shown.stdout

        r = pai(server, alice, "stop", exp_id)
        assert r.returncode == 0 and "STOPPED" in r.stdout, r.stdout + r.stderr
        e = c.get(f"/api/v2/experiments/{exp_id}").json()
        assert e["state"] == "STOPPED" and e["ui"] is None
        assert all(t["state"] not in ("RUNNING", "WAITING") for t in e["trials"])
        wait_trials(c, exp_id, lambda states: set(states) == {"STOPPED"}, timeout=30)
        assert len(trial_jobs(c, exp_id)) == 3  # nothing submitted after the stop
        listed = pai(server, alice, "list")
        assert exp_id in listed.stdout and "STOPPED" in listed.stdout
    record = json.loads((server.data_dir / "experiments" / exp_id / "experiment.json").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(record["pid"], 0)


def test_bad_requests(make_server):
    server = make_server()
    alice = server.add_user("alice")
    with server.client(alice) as c:
        ok = body(TRIAL)
        for bad in ({**ok, "searchSpace": {}}, {**ok, "searchSpace": {"x": [1, 2]}},
                    {**ok, "tuner": {"name": "NoSuch"}}, {**ok, "maxTrialNumber": 0},
                    {**ok, "trial": {"files": {"a.py": ""}}},
                    {**ok, "trial": {"command": "x", "files": {"../a.py": ""}}},
                    {**ok, "trial": {"command": "x", "codeDir": "relative"}}):
            r = c.post("/api/v2/experiments", json=bad)
            assert r.status_code == 400 and r.json()["code"] == "InvalidParametersError", (bad, r.text)
        r = c.post("/api/v2/experiments", json={**ok, "virtualCluster": "nope"})
        assert r.status_code == 400 and r.json()["code"] == "NoVirtualClusterError"
        r = c.get("/api/v2/experiments/abcdefgh")
        assert r.status_code == 404 and r.json()["code"] == "NoExperimentError"
        r = c.put("/api/v2/experiments/abcdefgh/executionType", json={"value": "STOP"})
        assert r.status_code == 404
    assert httpx.get(server.url + "/api/v2/experiments").status_code == 401


def experiment_tokens(c, exp_id: str) -> int:
    return sum(t["name"] == f"experiment {exp_id}" for t in c.get("/api/v2/tokens").json()["details"])


def test_stop_then_resume_runs_the_remaining_trials(make_server):
    server = make_server()
    alice = server.add_user("alice")
    with server.client(alice) as c:
        exp_id = c.post("/api/v2/experiments", json=body(TRIAL, trials=4, concurrency=1)).json()["id"]
        deadline = time.monotonic() + 120
        while c.get(f"/api/v2/experiments/{exp_id}").json()["trialCounts"].get("SUCCEEDED", 0) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert experiment_tokens(c, exp_id) == 1  # the trial launcher's, while trials may be submitted
        r = c.put(f"/api/v2/experiments/{exp_id}/executionType", json={"value": "STOP"})
        assert r.status_code == 202 and r.json()["state"] == "STOPPED"
        assert experiment_tokens(c, exp_id) == 0  # revoked with the stop
        r = c.put(f"/api/v2/experiments/{exp_id}/executionType", json={"value": "RESUME"})
        assert r.status_code == 202 and r.json()["state"] == "RUNNING", r.text
        assert experiment_tokens(c, exp_id) == 1  # a fresh one for the resumed manager
        e = wait_exp(c, exp_id, {"DONE", "ERROR", "STOPPED"})
        assert e["state"] == "DONE" and e["trialCounts"] == {"SUCCEEDED": 4}, e
        deadline = time.monotonic() + 10
        while experiment_tokens(c, exp_id):  # done: purged by the next poll
            assert time.monotonic() < deadline, "a finished experiment's token is still valid"
            time.sleep(0.2)
        assert all(t["job"]["state"] == "SUCCEEDED" and t["final"] is not None for t in e["trials"])
        r = c.put(f"/api/v2/experiments/{exp_id}/executionType", json={"value": "RESUME"})
        assert r.status_code == 400  # DONE
        c.put(f"/api/v2/experiments/{exp_id}/executionType", json={"value": "STOP"})


def test_server_exit_ends_nni_and_restart_stops_its_trial_jobs(make_server):
    from tests.nni import reap_nni
    from tests.server import Server

    server = make_server()
    alice = server.add_user("alice")
    with server.client(alice) as c:
        exp_id = c.post("/api/v2/experiments", json=body(SLEEPER, trials=2, concurrency=1)).json()["id"]
        wait_trials(c, exp_id, lambda states: states == ["RUNNING"], timeout=60)
    record = json.loads((server.data_dir / "experiments" / exp_id / "experiment.json").read_text())
    server.stop()  # SIGTERM: PAI Hub ends the NNI managers it started
    deadline = time.monotonic() + 30
    while True:
        try:
            os.kill(record["pid"], 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "NNI outlived PAI Hub"
        time.sleep(0.5)
    again = Server(server.data_dir, port=server.port).start()
    try:
        with again.client(alice) as c:
            e = c.get(f"/api/v2/experiments/{exp_id}").json()
            assert e["state"] == "STOPPED" and "resume" in e["message"] and e["ui"] is None
            # no trial job left running
            wait_trials(c, exp_id, lambda states: set(states) <= {"STOPPED", "FAILED"}, timeout=30)
    finally:
        again.stop()
        again.kill_tasks()
        reap_nni(again.data_dir)
