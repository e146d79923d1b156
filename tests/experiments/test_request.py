"""The experiment request's checks: every wrong key named by its path, with what it should hold."""

from __future__ import annotations

import pytest

from pai_hub.experiments.request import validate
from pai_hub.experiments.service import ExperimentError

SPACE = {"lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]}}
TRIAL = {"command": "python train.py", "files": {"train.py": "print(1)"}}


def bad(body: dict) -> str:
    with pytest.raises(ExperimentError) as err:
        validate(body)
    assert err.value.status == 400 and err.value.code == "InvalidParametersError"
    return err.value.message


def test_a_good_request_is_normalised():
    out = validate({"searchSpace": SPACE, "tuner": "TPE", "maxTrialNumber": "4", "trial": {**TRIAL, "gpu": 1}})
    assert out["tuner"] == {"name": "TPE"} and out["maxTrialNumber"] == 4 and out["trialConcurrency"] == 1
    assert out["template"] == {"gpu": 1, "command": "python train.py"}
    assert out["name"] == "experiment" and out["virtualCluster"] == "default" and out["files"] == TRIAL["files"]
    proto = validate({"searchSpace": SPACE, "tuner": {"name": "TPE", "classArgs": {"optimize_mode": "minimize"}},
                      "trial": {"protocol": "taskRoles: {w: {instances: 1}}", "files": {"a.py": ""}}})
    assert proto["template"] == {"protocol": {"taskRoles": {"w": {"instances": 1}}}}
    assert proto["tuner"]["classArgs"] == {"optimize_mode": "minimize"}


@pytest.mark.parametrize(("body", "message"), [
    ({"trial": TRIAL}, "searchSpace: is required (a non-empty mapping of parameter → {_type, _value}"),
    ({"searchSpace": {"lr": {"_value": [1, 2]}}, "trial": TRIAL},
     "searchSpace.lr._type: is required (NNI's sampling type"),
    ({"searchSpace": SPACE, "maxTrialNumber": 0, "trial": TRIAL},
     "maxTrialNumber: must be at least 1, got 0 (how many trials to run, 1..10000)"),
    ({"searchSpace": SPACE, "trialConcurrency": "many", "trial": TRIAL},
     "trialConcurrency: must be an integer, got 'many'"),
    ({"searchSpace": SPACE, "tuner": {"name": "Nope"}, "trial": TRIAL}, "tuner.name: must be one of 'Anneal'"),
    ({"searchSpace": SPACE, "assessor": "Medianstop", "trial": TRIAL},
     "assessor: must be a mapping, got str ({name: Medianstop|Curvefitting"),
    ({"searchSpace": SPACE, "trial": {**TRIAL, "cpu": "four"}}, "trial.cpu: must be an integer, got 'four'"),
    ({"searchSpace": SPACE, "trial": {**TRIAL, "files": {"../x.py": ""}}},
     "trial.files: '../x.py' must be a relative path of a file inside the code directory"),
    ({"searchSpace": SPACE, "trial": {"command": "x", "codeDir": "rel/dir"}},
     "trial.codeDir: must be an absolute directory on the PAI Hub host"),
    ({"searchSpace": SPACE, "trial": {"protocol": "taskRoles: [", "files": {}}}, "trial.protocol: not valid YAML"),
    ({"searchSpace": SPACE, "trial": {"files": {"a.py": ""}}}, "trial: needs command"),
    ({"searchSpace": SPACE}, "trial: is required ({command, cpu?"),
])
def test_bad_requests_name_the_full_path_and_the_fix(body, message):
    assert message in bad(body)


def test_every_wrong_key_is_reported_at_once():
    message = bad({"searchSpace": {}, "maxTrialNumber": -1, "trial": TRIAL})
    assert "searchSpace: must be at least 1 item(s)" in message and "maxTrialNumber: must be at least 1" in message


def test_a_missing_code_directory_is_refused(tmp_path):
    assert "is not a directory on the PAI Hub host" in bad(
        {"searchSpace": SPACE, "trial": {"command": "x", "codeDir": str(tmp_path / "nope")}})
    assert validate({"searchSpace": SPACE, "trial": {"command": "x", "codeDir": str(tmp_path)}})["codeDir"] == str(tmp_path)


def _laughs(levels: int) -> list:
    """``levels`` of nine references to the level below: 9**levels leaves, a few hundred objects."""
    value: list = ["lol"] * 9
    for _ in range(levels):
        value = [value] * 9
    return value


def test_search_space_of_shared_references_refused_before_it_is_stored():
    space = {"lr": {"_type": "choice", "_value": _laughs(9)}}
    message = bad({"searchSpace": space, "trial": TRIAL})
    assert message.startswith("the experiment request expands to more than 50000 nodes")


def test_deep_request_refused():
    deep: dict = {}
    cursor = deep
    for _ in range(100_000):
        cursor["k"] = {}
        cursor = cursor["k"]
    assert "nested more than 64 levels deep" in bad({"searchSpace": {"x": {"_type": "choice", "_value": [deep]}},
                                                     "trial": TRIAL})


def test_trial_protocol_text_goes_through_the_bounded_loader():
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    message = bad({"searchSpace": SPACE, "trial": {"protocol": bomb + "taskRoles: {w: {}}", "files": {}}})
    assert "trial.protocol" in message and "expands to more than 50000 YAML nodes" in message
    huge = bad({"searchSpace": SPACE, "trial": {"protocol": "taskRoles: {w: {instances: 1000000000}}", "files": {}}})
    assert "taskRoles.w.instances: 1000000000 instances, more than the limit of 1000 per task role" in huge


def test_nni_refusing_to_start_is_its_last_error_line_never_its_traceback():
    from pai_hub.experiments.service import _driver_failure

    traceback = """Traceback (most recent call last):
  File "/srv/pai-hub/pai_hub/experiments/nni_driver.py", line 30, in <module>
    exp.start(port, run_mode=RunMode.Detach)
  File "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/nni/experiment/config/base.py", line 12
    raise ValueError("tuner.classArgs.optimize_mode: must be maximize or minimize, got sideways")
ValueError: tuner.classArgs.optimize_mode: must be maximize or minimize, got sideways
"""
    status, message = _driver_failure(traceback)
    assert status == 400
    assert message == ("NNI refused the experiment: ValueError: tuner.classArgs.optimize_mode: must be maximize "
                       "or minimize, got sideways")
    status, message = _driver_failure("Traceback (most recent call last):\n  File \"/x.py\"\nOSError: port in use\n")
    assert status == 500 and "OSError: port in use" in message and "/x.py" not in message
    assert _driver_failure("")[0] == 500
