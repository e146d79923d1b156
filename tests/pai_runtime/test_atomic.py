"""The one atomic writer: whole files or nothing, durable unless asked otherwise."""

from __future__ import annotations

import json
import os

import pytest

from pai_runtime import atomic
from pai_runtime.atomic import write_atomic, write_json_atomic


def fsyncs(monkeypatch) -> list[str]:
    """Record what os.fsync is called on: 'file' or 'dir'."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", spy)
    return seen


def test_replaces_the_file_durably_and_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    seen = fsyncs(monkeypatch)
    target = tmp_path / "cluster.yaml"
    target.write_text("old")
    write_atomic(target, "new: \u20ac\n", mode=0o600)
    assert target.read_text() == "new: \u20ac\n"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert seen == ["file", "dir"]  # the data before the rename, the rename after it
    assert os.listdir(tmp_path) == ["cluster.yaml"]


def test_not_durable_skips_the_fsyncs_but_not_the_rename(tmp_path, monkeypatch) -> None:
    seen = fsyncs(monkeypatch)
    write_json_atomic(tmp_path / "exit.json", {"exitCode": 3}, durable=False)
    assert json.loads((tmp_path / "exit.json").read_text()) == {"exitCode": 3}
    assert seen == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch) -> None:
    target = tmp_path / "spec.json"
    target.write_text('{"old": true}')

    def broken(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", broken)
    with pytest.raises(OSError):
        write_json_atomic(target, {"new": True})
    assert target.read_text() == '{"old": true}'
    assert os.listdir(tmp_path) == ["spec.json"]
