"""Jobs' secrets are sealed at rest with a key outside the database (pai_hub/store/secretbox.py)."""

from __future__ import annotations

import dataclasses
import os
import stat

import pytest
from sqlalchemy import text

from pai_hub.store import jobs as job_store
from pai_hub.store.db import open_store, sqlite_url
from pai_hub.store.secretbox import SEALED, SecretKeyError
from tests.orchestrator.test_machine import make_machine, submit
from tests.server import job_yaml

SECRET = "hunter2-the-very-secret-value"


def _turn_with_secret():
    m = make_machine()
    submit(m, job_yaml("s", ["echo <% $secrets.pw %>"]))
    fx = m.take_effects()
    fx.new_jobs[0].secrets = {"pw": SECRET}  # as the API hands the rendered plan's secrets
    return fx


def _raw_bytes(data_dir) -> bytes:
    return b"".join((data_dir / n).read_bytes() for n in os.listdir(data_dir) if n.startswith("pai.sqlite"))


def test_secrets_never_reach_the_database_file_and_come_back_on_load(tmp_path):
    store = open_store(sqlite_url(tmp_path))
    key = tmp_path / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    fx = _turn_with_secret()
    job_store.persist(store, fx)
    assert fx.new_jobs[0].secrets == {"pw": SECRET}, "the machine's record keeps them open"
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT secrets FROM jobs")).scalar()
        conn.execute(text("PRAGMA wal_checkpoint(FULL)"))
    assert SECRET not in stored and SEALED in stored
    assert SECRET.encode() not in _raw_bytes(tmp_path)
    assert key.read_bytes().strip() not in _raw_bytes(tmp_path)
    [job], _, _ = job_store.load(store)
    assert job.secrets == {"pw": SECRET}
    from pai_hub.store.history import job_by_name

    assert job_by_name(store, job.framework_name).secrets == {"pw": SECRET}
    store.close()
    again = open_store(sqlite_url(tmp_path))  # the same key on the next start
    assert job_store.load(again)[0][0].secrets == {"pw": SECRET}
    again.close()


def test_rows_stored_before_encryption_are_sealed_when_the_key_is_made(tmp_path):
    store = open_store(sqlite_url(tmp_path))
    store.box = None  # as before encryption: plaintext rows
    job_store.persist(store, _turn_with_secret())
    store.close()
    (tmp_path / "secrets.key").unlink()
    with open_store(sqlite_url(tmp_path)).engine.connect() as conn:  # a new key: the sweep runs
        stored = conn.execute(text("SELECT secrets FROM jobs")).scalar()
    assert SECRET not in stored and SEALED in stored
    assert not (tmp_path / "secrets.key.sweep").exists()
    assert job_store.load(open_store(sqlite_url(tmp_path)))[0][0].secrets == {"pw": SECRET}


def test_plaintext_rows_are_still_read_as_they_are(tmp_path):
    store = open_store(sqlite_url(tmp_path))
    box = store.box
    store.box = None
    job_store.persist(store, _turn_with_secret())
    store.box = box  # a row the sweep has not sealed (yet): read both forms
    assert job_store.load(store)[0][0].secrets == {"pw": SECRET}


def test_a_key_readable_by_others_or_broken_refuses_to_open(tmp_path):
    open_store(sqlite_url(tmp_path)).close()
    key = tmp_path / "secrets.key"
    key.chmod(0o640)
    with pytest.raises(SecretKeyError, match="readable by other users"):
        open_store(sqlite_url(tmp_path))
    key.chmod(0o600)
    key.write_text("not a key\n")
    with pytest.raises(SecretKeyError, match="does not hold a Fernet key"):
        open_store(sqlite_url(tmp_path))


def test_jobs_without_secrets_are_stored_as_they_were(tmp_path):
    store = open_store(sqlite_url(tmp_path))
    m = make_machine()
    submit(m, job_yaml("plain", ["true"]))
    fx = m.take_effects()
    job_store.persist(store, fx)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT secrets FROM jobs")).scalar() == "{}"
    assert dataclasses.asdict(job_store.load(store)[0][0])["secrets"] == {}
