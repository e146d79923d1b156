"""Issue 16, network: an experiment's NNI manager (no login of its own) is not reachable by other
users' tasks. One real experiment (real ``pai server``, NNI 3.0, a trial running as a PAI job) for the
module; connections are made by real processes running as real accounts (``setpriv``), against the
kernel's real rules. On code that leaves the port open bob's calls succeed — he could delete alice's
experiment, as a probe did — and these tests fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pai_hub.experiments.service import service_id
from pai_hub.service_firewall import ServiceFirewall
from pai_runtime.accounts import Account
from tests.experiments.isolation_helpers import make_accounts, probe, require_isolation_tools, test_policy
from tests.experiments.test_experiments import SLEEPER, body, wait_trials
from tests.nni import reap_nni
from tests.server import REPO, Server

#: NNI's status of the running experiment (its one trial handed out: NO_MORE_TRIAL)
LIVE = ("RUNNING", "NO_MORE_TRIAL")


@dataclass
class IsolatedServer(Server):
    """``pai server`` through tests/experiments/isolated_server.py: experiments get ``policy``."""

    policy_json: str = ""

    def start(self, timeout: float = 30) -> IsolatedServer:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PAI_ISOLATION": "none", **self.env,
               "PAI_TEST_EXPERIMENT_ISOLATION": self.policy_json}
        env.pop("PAI_URL", None)
        env.pop("PAI_TOKEN", None)
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.experiments.isolated_server", "server", "--ip", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(self.data_dir), *self.args],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited with {self.proc.returncode}; see {log.name}"
            try:
                if httpx.get(self.url + "/api/v2/info", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not start in {timeout} s; see {log.name}")


@dataclass
class Running:
    server: IsolatedServer
    alice_token: str
    exp_id: str
    port: int
    alice: Account
    bob: Account
    firewall: ServiceFirewall

    @property
    def exp_dir(self) -> Path:
        return self.server.data_dir / "experiments" / self.exp_id


@pytest.fixture(scope="module")
def running(tmp_path_factory, nni3):
    require_isolation_tools()
    base = tmp_path_factory.mktemp("isolation")
    policy = test_policy(base / "homes", "t16nni")
    with make_accounts(policy, "alice", "bob") as accounts:
        data = base / "data"
        data.mkdir()
        server = IsolatedServer(data, policy_json=policy.to_json(),
                                env={"PAI_NNI_PYTHON": str(nni3 / "bin" / "python")})
        server.start()
        firewall = ServiceFirewall.for_data_dir(data)
        try:
            alice_token = server.add_user("alice")
            server.add_user("bob")
            with server.client(alice_token) as c:
                r = c.post("/api/v2/experiments", json=body(SLEEPER, trials=1, concurrency=1))
                assert r.status_code == 202, r.text
                exp_id = r.json()["id"]
                wait_trials(c, exp_id, lambda states: states == ["RUNNING"], timeout=120)
                deadline = time.monotonic() + 60  # its metric came through the guarded port
                while not [t for t in c.get(f"/api/v2/experiments/{exp_id}").json()["trials"]
                           if t["intermediate"] == [1]]:
                    assert time.monotonic() < deadline, c.get(f"/api/v2/experiments/{exp_id}").json()
                    time.sleep(0.5)
            record = json.loads((data / "experiments" / exp_id / "experiment.json").read_text())
            yield Running(server, alice_token, exp_id, record["port"], accounts["alice"], accounts["bob"],
                          firewall)
        finally:
            server.stop()
            server.kill_tasks()
            reap_nni(data)
            firewall.sweep()


def test_the_managers_port_is_guarded_from_before_it_listened(running):
    assert running.firewall.guarded() == {service_id(running.exp_id): running.port}
    with running.server.client(running.alice_token) as c:
        assert c.get(f"/api/v2/experiments/{running.exp_id}").json()["message"] == ""  # no warning


def test_another_users_process_is_refused_and_cannot_delete_the_experiment(running):
    for method, path in (("GET", "/api/v1/nni/check-status"), ("DELETE", "/api/v1/nni/experiment")):
        answer = probe(running.bob, running.port, method, path)
        assert answer.get("error") == "ConnectionRefusedError", answer
    with running.server.client(running.alice_token) as c:
        e = c.get(f"/api/v2/experiments/{running.exp_id}").json()
    assert e["state"] == "RUNNING" and e["nniStatus"] in LIVE, e  # not STOPPING: bob's DELETE never arrived


def test_the_owner_and_the_platforms_proxy_still_reach_it(running):
    answer = probe(running.alice, running.port, "GET", "/api/v1/nni/check-status")
    assert answer.get("status") == 200 and json.loads(answer["body"])["status"] in LIVE, answer
    with running.server.client(running.alice_token) as c:
        r = c.get(f"/api/v2/experiments/{running.exp_id}/ui/api/v1/nni/check-status")
        assert r.status_code == 200 and r.json()["status"] in LIVE


def test_the_port_and_token_are_in_files_only_the_platform_reads(running):
    d = running.exp_dir
    assert os.stat(d).st_mode & 0o777 == 0o700 and os.stat(d).st_uid == os.geteuid()
    assert os.stat(d.parent).st_mode & 0o077 == 0  # experiments/
    for name in ("experiment.json", "token", "launcher.json", "nni-config.json"):
        assert os.stat(d / name).st_mode & 0o777 == 0o600, name
    read = subprocess.run(["setpriv", f"--reuid={running.bob.uid}", f"--regid={running.bob.gid}",
                           "--clear-groups", "cat", str(d / "experiment.json")],
                          capture_output=True, text=True, timeout=30)
    assert read.returncode != 0 and "Permission denied" in read.stderr
    with running.server.client(running.alice_token) as c:  # the API never shows the port either
        assert "port" not in c.get(f"/api/v2/experiments/{running.exp_id}").json()


def test_stopping_the_experiment_removes_its_rule(running):
    with running.server.client(running.alice_token) as c:
        r = c.put(f"/api/v2/experiments/{running.exp_id}/executionType", json={"value": "STOP"})
        assert r.status_code == 202 and r.json()["state"] == "STOPPED", r.text
    assert running.firewall.guarded() == {}
