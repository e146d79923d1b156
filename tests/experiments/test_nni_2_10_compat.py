"""Compatibility: an unmodified NNI 2.10.1 ``nnictl create`` with ``trainingService: {platform: openpai}``
pointed at our REST API runs its trials to completion, in non-reuse and reuse mode.

NNI 2.10.1 (the last release with the OpenPAI training service) lives only in build/nni-2.10.1, made by
``scripts/nni-compat-venv.sh``; the test skips, saying so, only when that venv cannot be created. The
server's tasks get that venv first on PATH (the "job image" must hold the same NNI version).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import httpx
import pytest
import yaml

from tests.nni import nni_venv
from tests.server import Server

TRIAL = """import nni
p = nni.get_next_parameter()
nni.report_intermediate_result(p['x'])
nni.report_final_result(p['x'] * 2)
"""


@pytest.fixture(scope="module")
def nni2():
    return nni_venv("2.10.1")


def port_pair() -> int:
    """A port P with P+1 free too (NNI 2.10.1 also listens on P+1 for its trials)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("0.0.0.0", port))
                b.bind(("0.0.0.0", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


@pytest.mark.parametrize("reuse", [False, True], ids=["non-reuse", "reuse"])
def test_nnictl_2_10_openpai_runs_trials_against_pai_hub(nni2, tmp_path, monkeypatch, reuse):
    monkeypatch.setenv("PATH", f"{nni2 / 'bin'}:{os.environ['PATH']}")  # python3 in the jobs = NNI 2.10.1
    (tmp_path / "data").mkdir()
    server = Server(tmp_path / "data").start()
    home, code, shared = tmp_path / "home", tmp_path / "code", tmp_path / "shared"
    for d in (home, code, shared):
        d.mkdir()
    (code / "trial.py").write_text(TRIAL)
    nni_port = port_pair()
    env = {**os.environ, "HOME": str(home)}
    nnictl = [str(nni2 / "bin" / "nnictl")]
    try:
        token = server.add_user("alice")
        config = {
            "searchSpace": {"x": {"_type": "choice", "_value": [1, 2, 3, 4]}},
            "trialCommand": "python3 trial.py", "trialCodeDirectory": str(code), "trialGpuNumber": 0,
            "trialConcurrency": 3, "maxTrialNumber": 3, "tuner": {"name": "Random"},
            "nniManagerIp": "127.0.0.1",
            "debug": True,  # NNI 2.10.1 non-reuse bug work-around (docs/experiments.md)
            "trainingService": {
                "platform": "openpai", "host": server.url, "username": "alice", "token": token,
                "trialCpuNumber": 1, "trialMemorySize": "256MB", "storageConfigName": "confignfs-data",
                "dockerImage": "msranni/nni:v2.10.1", "virtualCluster": "default",
                "localStorageMountPoint": str(shared), "containerStorageMountPoint": str(shared),
                "reuseMode": reuse,
            },
        }
        (tmp_path / "config.yml").write_text(yaml.safe_dump(config))
        r = subprocess.run([*nnictl, "create", "--config", str(tmp_path / "config.yml"), "--port", str(nni_port)],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        nni = f"http://127.0.0.1:{nni_port}/api/v1/nni"
        deadline = time.monotonic() + 240
        while True:
            status = httpx.get(nni + "/check-status", timeout=10).json()
            if status["status"] in ("DONE", "ERROR"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(2)
        trials = httpx.get(nni + "/trial-jobs", timeout=10).json()
        assert status["status"] == "DONE", (status, trials)
        assert len(trials) == 3 and {t["status"] for t in trials} == {"SUCCEEDED"}, trials
        for t in trials:
            x = json.loads(t["hyperParameters"][0])["parameters"]["x"]
            assert [json.loads(json.loads(m["data"])) for m in t["finalMetricData"]] == [x * 2]
        with server.client(token) as c:  # what ran were PAI jobs of alice
            jobs = c.get("/rest-server/api/v2/jobs", params={"username": "alice"}).json()
            kind = "_env_" if reuse else "_trial_"
            names = [j["name"] for j in jobs if kind in j["name"]]
            assert names and len(names) == (len(jobs)), jobs
            if not reuse:
                assert len(names) == 3 and {j["state"] for j in jobs} == {"SUCCEEDED"}
        subprocess.run([*nnictl, "stop", "--all"], capture_output=True, text=True, env=env, timeout=120)
        if reuse:  # stopping the experiment stops its environment jobs (PUT executionType STOP)
            with server.client(token) as c:
                deadline = time.monotonic() + 30
                while {j["state"] for j in c.get("/api/v2/jobs").json()} - {"STOPPED", "SUCCEEDED"}:
                    assert time.monotonic() < deadline, c.get("/api/v2/jobs").json()
                    time.sleep(0.5)
    finally:
        subprocess.run([*nnictl, "stop", "--all"], capture_output=True, env=env, timeout=120)
        server.stop()
        server.kill_tasks()
