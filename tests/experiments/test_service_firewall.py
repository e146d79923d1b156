"""The loopback firewall of per-user services (pai_hub/service_firewall.py) with real iptables rules,
real accounts and real connections: another account's connection is reset, the owner's and the
platform's pass, and without the rules the same connection goes through (so these tests fail on code
that leaves the port open)."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import pytest

from pai_hub.experiments.service import ExperimentService, service_id
from pai_hub.service_firewall import CHAIN, FirewallError, ServiceFirewall, instance_tag
from tests.experiments.isolation_helpers import (
    http_listener,
    make_accounts,
    probe,
    require_isolation_tools,
    test_policy,
)


@pytest.fixture(scope="module")
def accounts(tmp_path_factory):
    require_isolation_tools()
    home = tmp_path_factory.mktemp("homes")
    with make_accounts(test_policy(home, "t16fw"), "alice", "bob") as made:
        yield made


@pytest.fixture
def firewall(tmp_path):
    fw = ServiceFirewall.for_data_dir(tmp_path)
    yield fw
    fw.sweep()


def test_other_accounts_are_reset_the_owner_and_platform_pass(accounts, firewall):
    alice, bob = accounts["alice"], accounts["bob"]
    with http_listener() as port:
        assert probe(bob, port)["status"] == 200  # open before: the probe itself can succeed
        firewall.guard("svc-1", port, [alice.uid])
        assert firewall.guarded() == {"svc-1": port}
        refused = probe(bob, port)
        assert refused.get("error") == "ConnectionRefusedError", refused
        assert probe(alice, port) == {"status": 200, "body": "hello"}
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # the platform's own uid
        firewall.release("svc-1")
        assert firewall.guarded() == {}
        assert probe(bob, port)["status"] == 200  # without the rule, bob gets in: the rule did it


def test_a_service_guarded_again_moves_to_its_new_port(accounts, firewall):
    alice, bob = accounts["alice"], accounts["bob"]
    with http_listener() as old, http_listener() as new:
        firewall.guard("svc-2", old, [alice.uid])
        firewall.guard("svc-2", new, [alice.uid])  # resumed on another port
        assert firewall.guarded() == {"svc-2": new}
        assert probe(bob, old)["status"] == 200
        assert probe(bob, new).get("error") == "ConnectionRefusedError"


def test_control_planes_sweep_only_their_own_rules(accounts, tmp_path, firewall):
    other = ServiceFirewall.for_data_dir(tmp_path / "another-data-dir")
    assert other.instance != firewall.instance
    try:
        with http_listener() as port:
            firewall.guard("mine", port, [accounts["alice"].uid])
            other.guard("theirs", port, [accounts["alice"].uid])
            assert firewall.sweep(keep=()) == ["mine"]
            assert other.guarded() == {"theirs": port}
            assert probe(accounts["bob"], port).get("error") == "ConnectionRefusedError"
    finally:
        other.sweep()


def test_missing_iptables_is_an_error_never_silence(tmp_path):
    fw = ServiceFirewall(instance_tag(tmp_path), iptables=str(tmp_path / "no-iptables"))
    with pytest.raises(FirewallError, match="not installed"):
        fw.check()
    with pytest.raises(ValueError):
        ServiceFirewall("a").guard("bad id with spaces", 1, [])
    with pytest.raises(ValueError, match="hex"):  # rules it could add but never find again to remove
        ServiceFirewall("not-a-tag")


class _NoPool:
    async def run(self, fn, *args):
        return fn(*args)


def test_experiments_warn_when_their_ports_cannot_be_closed(tmp_path, accounts):
    policy = test_policy(tmp_path, "t16fw")
    broken = ServiceFirewall(instance_tag(tmp_path), iptables=str(tmp_path / "no-iptables"))
    service = ExperimentService(tmp_path, 1, None, None, _NoPool(), isolation=policy, firewall=broken)
    assert service.firewall is None and "NOT protected" in service.firewall_problem
    rec = {"id": "abcd1234", "username": "alice"}
    assert "iptables" in asyncio.run(service._open_port(rec, 40000))
    plain = ExperimentService(tmp_path / "plain", 1, None, None, _NoPool())  # mode none: no firewall, no warning
    assert plain.firewall is None and asyncio.run(plain._open_port(rec, 40000)) == ""


def test_experiment_service_start_sweeps_rules_of_managers_gone(tmp_path, accounts):
    firewall = ServiceFirewall.for_data_dir(tmp_path)
    try:
        (tmp_path / "experiments" / "dead0001").mkdir(parents=True)
        record = {"id": "dead0001", "username": "alice", "state": "RUNNING", "pid": 2**22 + 7, "port": 45555}
        (tmp_path / "experiments" / "dead0001" / "experiment.json").write_text(json.dumps(record))
        firewall.guard(service_id("dead0001"), 45555, [accounts["alice"].uid])
        firewall.guard(service_id("live0001"), 45556, [accounts["alice"].uid])  # its record says alive
        (tmp_path / "experiments" / "live0001").mkdir()
        alive = {**record, "id": "live0001", "pid": os.getpid(), "port": 45556}
        (tmp_path / "experiments" / "live0001" / "experiment.json").write_text(json.dumps(alive))
        policy = test_policy(tmp_path, "t16fw")
        ExperimentService(tmp_path, 1, None, None, _NoPool(), isolation=policy)
        assert firewall.guarded() == {service_id("live0001"): 45556}
        assert oct(os.stat(tmp_path / "experiments").st_mode & 0o777) == "0o700"
    finally:
        firewall.sweep()


def test_rules_live_in_their_own_chain(accounts, firewall):
    firewall.guard("svc-3", 45999, [accounts["alice"].uid])
    listed = firewall._run("-S", CHAIN).stdout
    assert f"pai-hub:{firewall.instance}:svc-3" in listed and "--uid-owner 0" in listed
    assert f"--uid-owner {accounts['alice'].uid}" in listed
    assert firewall._run("-C", "OUTPUT", "-o", "lo", "-p", "tcp", "--syn", "-j", CHAIN).returncode == 0


def test_a_finished_experiments_manager_that_exits_loses_its_ui_and_its_rule(tmp_path, accounts):
    """A DONE experiment keeps its manager for the UI; when that manager exits, the proxy must stop
    sending the owner's requests (with credentials) to a port anyone may take next."""
    firewall = ServiceFirewall.for_data_dir(tmp_path)
    try:
        (tmp_path / "experiments" / "done0001").mkdir(parents=True)
        record = {"id": "done0001", "username": "alice", "state": "DONE", "pid": os.getpid(), "port": 45557,
                  "uiAvailable": True}
        (tmp_path / "experiments" / "done0001" / "experiment.json").write_text(json.dumps(record))
        service = ExperimentService(tmp_path, 1, None, None, _NoPool(), isolation=test_policy(tmp_path, "t16fw"))
        firewall.guard(service_id("done0001"), 45557, [accounts["alice"].uid])

        async def poll_after_the_manager_died() -> None:
            service.start()
            await asyncio.sleep(1.5)
            assert service.records["done0001"]["uiAvailable"]  # alive: kept
            service.records["done0001"]["pid"] = 2**22 + 9  # the manager is gone
            await asyncio.sleep(2.5)
            service._task.cancel()

        asyncio.run(poll_after_the_manager_died())
        assert service.records["done0001"]["uiAvailable"] is False
        saved = json.loads((tmp_path / "experiments" / "done0001" / "experiment.json").read_text())
        assert saved["uiAvailable"] is False
        assert firewall.guarded() == {}
    finally:
        firewall.sweep()
