"""The experiment object the API returns, from a stored record (no NNI needed)."""

from __future__ import annotations

import pytest

from pai_hub.experiments.request import validate
from pai_hub.experiments.service import ExperimentError, view

SPACE = {"x": {"_type": "choice", "_value": [1, 2]}}


def record(tuner: dict, finals: list) -> dict:
    trials = [{"id": f"t{i}", "sequence": i, "state": "SUCCEEDED", "parameters": {"x": 1}, "intermediate": [],
               "final": f, "job": {"name": f"alice~nni_e1_t{i}"}} for i, f in enumerate(finals)]
    return {"id": "e1", "name": "n", "username": "alice", "state": "DONE", "nniStatus": "DONE", "message": "",
            "virtualCluster": "default", "createdTime": 1.0, "completedTime": 2.0, "maxTrialNumber": 3,
            "trialConcurrency": 1, "searchSpace": SPACE, "tuner": tuner, "assessor": None, "trial": {},
            "uiAvailable": True, "port": 1234, "pid": 99, "trials": trials}


def test_best_final_follows_the_tuners_optimize_mode():
    up = view(record({"name": "TPE", "classArgs": {"optimize_mode": "maximize"}}, [0.3, 0.9, None, 0.5]))
    assert up["optimizeMode"] == "maximize" and up["bestFinal"] == 0.9
    down = view(record({"name": "TPE", "classArgs": {"optimize_mode": "minimize"}}, [0.3, 0.1, 0.5]))
    assert down["optimizeMode"] == "minimize" and down["bestFinal"] == 0.1
    default = view(record({"name": "Random"}, []))
    assert default["optimizeMode"] == "maximize" and default["bestFinal"] is None


def test_view_hides_the_local_process_and_summary_omits_trials():
    v = view(record({"name": "Random"}, [1.0]), detail=False)
    assert "port" not in v and "pid" not in v and "trials" not in v
    assert v["trialCounts"] == {"SUCCEEDED": 1} and v["ui"] == "/nni/e1/"


@pytest.mark.parametrize(("body", "field"), [
    ({"searchSpace": {}}, "searchSpace"),
    ({"searchSpace": SPACE, "tuner": {"name": "Nope"}}, "tuner.name"),
    ({"searchSpace": SPACE, "maxTrialNumber": "many"}, "maxTrialNumber"),
    ({"searchSpace": SPACE, "trial": {"command": "python t.py", "files": {"../x.py": ""}}}, "trial.files"),
])
def test_bad_requests_name_the_field(body, field):
    with pytest.raises(ExperimentError) as err:
        validate(body)
    assert err.value.status == 400 and field in err.value.message
