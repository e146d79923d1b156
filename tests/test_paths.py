"""Every function that builds a path (or an account, or an environment name) from user input, fed
hostile names (issue 16, "Bad input"): ``../``, ``~``, NUL, backslashes, very long and unicode names.
Each must either refuse with its documented error or give a result that stays inside its directory
(resolved, then checked).

Examples that once got through are pinned with ``@example``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pai_hub import protocol
from pai_hub.backends.taskdir import check_task_id, is_task_id
from pai_hub.orchestrator.specs import checkpoint_dir
from pai_hub.store.usernames import MAX_LENGTH, InvalidUsername, check_username
from pai_runtime.accounts import AccountError, unix_account_name
from pai_runtime.isolation import IsolationPolicy
from pai_runtime.supervisor import LOG_NAMES

BASE = Path("/srv/pai-test-base")  # never touched: paths are only built and resolved
FRAGMENTS = ["..", ".", "/", "\\", "~", "\x00", "-", "a", "Z", "0", "_", "é", "名", "\U0001f600", " ", "\n",
             "%2e%2e", "$HOME", "`id`", "*", "@", ":", "\u202e", "\ufeff"]
hostile = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join),
    st.integers(min_value=1, max_value=600).map(lambda n: "a" * n),
    st.sampled_from(["", ".", "..", "../..", "~", "~root", "/etc/passwd", "..\\..", "a\x00b", "-rf", "me"]),
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def inside(base: Path, built: Path, *, strictly: bool = True) -> bool:
    """Whether ``built``, resolved, lies inside ``base`` (strictly: not ``base`` itself)."""
    resolved = Path(os.path.normpath(built))  # no symlinks under BASE: normpath is resolve() here
    return resolved.is_relative_to(base) and (resolved != base or not strictly)


# -- usernames -------------------------------------------------------------------------------------

@SETTINGS
@given(hostile)
def test_a_username_is_refused_or_names_one_directory_of_its_own(name):
    try:
        check_username(name)
    except InvalidUsername as exc:
        assert str(exc).startswith("username: ")
        return
    assert inside(BASE, BASE / name) and (BASE / name).parent == BASE
    assert len(name) <= MAX_LENGTH and name not in (".", "..")
    assert not set(name) & set("/\\\x00~ \n") and not name.startswith("-")
    assert name.isascii()


POLICY = IsolationPolicy(mode="users", home_root=str(BASE))


@SETTINGS
@given(hostile)
def test_a_unix_account_is_refused_or_a_portable_name_with_a_home_inside_home_root(name):
    try:
        account = unix_account_name(POLICY, name)
    except AccountError:
        return
    assert re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", account), account
    assert inside(BASE, BASE / account) and (BASE / account).parent == BASE


@SETTINGS
@given(hostile.filter(lambda n: n and n.isascii()), hostile)
def test_two_pai_users_never_share_a_unix_account(a, b):
    try:
        ua, ub = unix_account_name(POLICY, a), unix_account_name(POLICY, b)
    except AccountError:
        return
    assert a == b or ua != ub, (a, b, ua)


def test_a_name_shaped_like_a_hashed_account_gets_its_own():
    hashed = unix_account_name(POLICY, "Bob")
    lookalike = hashed.removeprefix("pai-")
    check_username(lookalike)  # a valid PAI name: a hub user could sign up with it
    assert unix_account_name(POLICY, lookalike) != hashed


# -- task ids and log names -------------------------------------------------------------------------

@SETTINGS
@given(hostile)
def test_a_task_id_is_refused_or_one_directory_under_tasks(task_id):
    tasks = BASE / "run" / "tasks"
    if not is_task_id(task_id):
        with pytest.raises(ValueError, match="invalid task id"):
            check_task_id(task_id)
        return
    assert (tasks / check_task_id(task_id)).parent == tasks and inside(tasks, tasks / task_id)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from pai_hub.backends.local.backend import LocalBackend

    return LocalBackend(tmp_path_factory.mktemp("paths") / "run")


@SETTINGS
@given(task_id=hostile, name=hostile)
def test_a_log_read_is_refused_or_reads_inside_the_task(backend, task_id, name):
    try:
        data = backend.read_log(task_id, name)
    except KeyError:  # an unknown task (none exists here), a bad id or a log not in the list
        return
    assert name in LOG_NAMES and is_task_id(task_id), (task_id, name, data)


@SETTINGS
@given(hostile)
def test_log_names_outside_the_list_are_refused_before_any_path_is_built(name):
    from pai_hub.backends.local.backend import LocalBackend

    be = LocalBackend.__new__(LocalBackend)  # no directory at all: a refusal must not need one
    if name in LOG_NAMES:
        return
    with pytest.raises(KeyError):
        be.read_log("1.0.worker.0.0", name)


# -- job names and task roles ------------------------------------------------------------------------

def _job_doc(name: str = "job", role: str = "worker") -> dict:
    return {"protocolVersion": 2, "name": name, "type": "job",
            "prerequisites": [{"name": "img", "type": "dockerimage", "uri": "python:3.11"}],
            "taskRoles": {role: {"instances": 1, "dockerImage": "img", "commands": ["true"],
                                 "resourcePerInstance": {"cpu": 1, "memoryMB": 256, "gpu": 0}}}}


@SETTINGS
@given(hostile)
def test_a_job_name_is_refused_or_gives_a_checkpoint_directory_inside_its_users(name):
    try:
        job = protocol.load_dict(_job_doc(name=name))
    except protocol.InvalidProtocol:
        return
    root = BASE / "checkpoints"
    built = checkpoint_dir(root, SimpleNamespace(username="alice", name=job.name))
    assert built.parent == root / "alice" and inside(root / "alice", built)


@SETTINGS
@given(hostile)
@example("..")
def test_checkpoint_dir_alone_never_leaves_the_users_directory(name):
    root = BASE / "checkpoints"
    built = checkpoint_dir(root, SimpleNamespace(username="alice", name=name))
    assert built.parent == root / "alice" and inside(root / "alice", built), built


@SETTINGS
@given(hostile)
def test_a_task_role_is_refused_or_gives_task_ids_and_environment_names(role):
    try:
        job = protocol.load_dict(_job_doc(role=role))
    except protocol.InvalidProtocol:
        return
    [role] = list(job.task_roles)
    task_id = f"12.0.{role}.0.0"  # as the machine makes them (orchestrator/machine.py)
    assert is_task_id(task_id) and task_id.split(".")[2] == role
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", f"PAI_TASK_ROLE_TASK_COUNT_{role}")


# -- experiments' uploaded files ---------------------------------------------------------------------

@SETTINGS
@given(hostile)
@example(".")
@example("a\x00b")
def test_an_experiment_file_name_is_refused_or_a_file_inside_the_code_directory(name):
    from pai_hub.experiments.request import _Trial

    try:
        _Trial.model_validate({"files": {name: "print(1)"}})
    except ValidationError:
        return
    code = BASE / "experiments" / "x" / "code"
    built = Path(code, name)
    assert "\x00" not in name and inside(code, built), (name, built)
