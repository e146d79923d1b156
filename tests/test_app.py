"""The application's wiring: configuration errors stop the server with the key and the fix."""

import asyncio
import os
import pwd
import sys
from pathlib import Path

import pytest
from traitlets import TraitError

import pai_runtime
from pai_hub.app import PaiHub
from pai_runtime.isolation import auto_mode
from tests.server import make_private


def test_an_unknown_backend_is_refused_by_name(tmp_path):
    app = PaiHub(data_dir=str(tmp_path), backend="no-such-backend")
    with pytest.raises(SystemExit) as exc:
        asyncio.run(app.start_services())
    assert "PaiHub.backend: no backend 'no-such-backend'; installed: kubernetes, local, slurm" in str(exc.value)


def test_an_invalid_cluster_config_names_the_key(tmp_path):
    (tmp_path / "cluster.yaml").write_text("physicalCluster: {cellTypes: {N: {childCellType: G, childCellNumber: 0}}}\n")
    make_private(tmp_path)  # the server refuses a data directory others can read
    app = PaiHub(data_dir=str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        asyncio.run(app.start_services())
    assert "cluster.yaml" in str(exc.value) and "childCellNumber" in str(exc.value)


def test_the_isolation_policy_hides_the_platforms_files_and_shows_python_and_the_code(tmp_path):
    """What a sandbox must hide and show comes from the running server: its data directory and home
    hidden; both interpreter prefixes and the package root (pai_runtime must import) shown."""
    app = PaiHub(data_dir=str(tmp_path / "data"), isolation="users", isolation_account_template="u-{username}",
                 isolation_uid_min=50000, isolation_uid_max=50100, isolation_accounts={"alice": "alice"},
                 isolation_hidden_paths=[str(tmp_path / "elsewhere")])
    policy = app.isolation_policy()
    assert (policy.mode, policy.account_template, policy.uid_min, policy.uid_max) == ("users", "u-{username}",
                                                                                     50000, 50100)
    assert policy.accounts == {"alice": "alice"} and policy.create_accounts is True
    assert str((tmp_path / "data").resolve()) in policy.hidden_paths
    assert str(Path(pwd.getpwuid(os.geteuid()).pw_dir).resolve()) in policy.hidden_paths
    assert str((tmp_path / "elsewhere").resolve()) in policy.hidden_paths
    assert "/" not in policy.hidden_paths
    for needed in (sys.prefix, str(Path(sys.base_prefix).resolve()), str(Path(pai_runtime.__file__).parents[1])):
        assert os.path.normpath(needed) in policy.exposed_paths, (needed, policy.exposed_paths)


def test_isolation_auto_resolves_for_this_machine_and_a_bad_mode_is_refused(tmp_path, monkeypatch):
    assert PaiHub(data_dir=str(tmp_path)).isolation_policy().mode == auto_mode()
    monkeypatch.setenv("PAI_ISOLATION", "none")
    app = PaiHub(data_dir=str(tmp_path))
    app.load_layers({})
    assert app.isolation_policy().mode == "none"
    with pytest.raises(TraitError):
        PaiHub(isolation="everyone")
    with pytest.raises(SystemExit, match="isolation_uid_min"):
        PaiHub(data_dir=str(tmp_path), isolation_uid_min=10, isolation_uid_max=5).isolation_policy()
