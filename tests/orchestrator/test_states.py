"""States are enums with one table of allowed transitions; the machine moves them only through it."""

from __future__ import annotations

import json

import pytest

from pai_hub.orchestrator.records import FAILED, TERMINAL, WAITING, JobRecord, TaskRecord
from pai_hub.orchestrator.states import (
    ATTEMPT_TRANSITIONS,
    JOB_TRANSITIONS,
    LAUNCH_TRANSITIONS,
    TASK_TRANSITIONS,
    IllegalTransition,
    JobState,
    LaunchState,
    TaskState,
    transition,
)
from tests.orchestrator.test_machine import make_machine, run_all, submit
from tests.server import job_yaml


def _task(**kw) -> TaskRecord:
    return TaskRecord(**{"task_id": "1.0.w.0.0", "job_id": 1, "job_attempt_id": 0, "role": "w", "task_index": 0,
                         "attempt_id": 0, "task_uid": "u", "state": "WAITING", "created_at": 0.0, **kw})


def test_values_are_openpai_strings_and_records_read_from_the_store_become_enums():
    task = _task(state="RUNNING", launch_state="running")  # as the store gives them back
    assert task.state is TaskState.RUNNING and task.launch_state is LaunchState.RUNNING
    assert json.dumps([JobState.SUCCEEDED, LaunchState.ENDED]) == '["SUCCEEDED", "ended"]'
    assert f"{JobState.WAITING}" == str(JobState.WAITING) == "WAITING"
    assert WAITING is JobState.WAITING and FAILED in TERMINAL  # the old names keep working
    with pytest.raises(ValueError):
        _task(state="SLEEPING")


def test_every_table_covers_its_enum_and_terminal_states_go_nowhere():
    for table in (JOB_TRANSITIONS, ATTEMPT_TRANSITIONS, TASK_TRANSITIONS, LAUNCH_TRANSITIONS):
        kinds = {type(k) for k in table}
        assert len(kinds) == 1 and set(table) == set(kinds.pop())
    for state in TERMINAL:
        assert not JOB_TRANSITIONS[state]
    assert not LAUNCH_TRANSITIONS[LaunchState.ENDED]


def test_a_transition_outside_the_table_is_refused_and_changes_nothing():
    task = _task(state="SUCCEEDED", launch_state="ended")
    with pytest.raises(IllegalTransition, match="SUCCEEDED to RUNNING"):
        transition(task, TaskState.RUNNING)
    with pytest.raises(IllegalTransition, match="ended to launching"):
        transition(task, LaunchState.LAUNCHING)
    assert task.state is TaskState.SUCCEEDED and task.launch_state is LaunchState.ENDED
    transition(pending := _task(), LaunchState.LAUNCHING)
    assert pending.launch_state is LaunchState.LAUNCHING


def test_the_machine_refuses_to_revive_an_ended_job():
    m = make_machine()
    job: JobRecord = submit(m, job_yaml("a", ["true"]))
    [task_id] = run_all(m)
    m.task_exited(task_id, 0, 1.0, 2.0, 2.0)
    assert job.state is JobState.SUCCEEDED
    with pytest.raises(IllegalTransition, match="u~a cannot go from SUCCEEDED to WAITING"):
        m._start_attempt(job, m.plans.get(job.id) or object(), 3.0)  # a bug that would restart it
