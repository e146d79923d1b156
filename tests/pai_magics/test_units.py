"""Pure parts of the notebook front door: the cell-to-job builder, typed snapshots, and the
magics' argument errors (no server). The client's own pure parts are in tests/pai_client."""

from __future__ import annotations

import base64

import pytest
import yaml
from IPython.core.error import UsageError

from pai_client.models import JobSnapshot
from pai_hub import protocol
from pai_magics import jobspec


def test_a_cell_becomes_a_valid_gang_job_with_its_code_params_and_files(tmp_path):
    (tmp_path / "helper.py").write_text("VALUE = 42\n")
    doc = jobspec.build(jobspec.CellJob(
        code="import helper\nprint(helper.VALUE)\n", name="g", vc="default", gpu=1, instances=2,
        params={"LR": "0.1 x"}, files=["helper.py"], cwd=str(tmp_path), python="/opt/py/bin/python",
        debug_minutes=5))
    job = protocol.load(yaml.safe_dump(doc))  # the server's own parser accepts it
    role = job.task_roles["worker"]
    assert role.instances == 2 and role.resource_per_instance.gpu == 1
    script = "\n".join(role.commands)
    assert "export LR='0.1 x'" in script
    assert "cat > helper.py <<'PAI_EOF'\nVALUE = 42\nPAI_EOF" in script
    assert "cat > pai_cell.py <<'PAI_EOF'\nimport helper\nprint(helper.VALUE)\nPAI_EOF" in script
    assert script.endswith("exec /opt/py/bin/python pai_cell.py")
    assert doc["defaults"] == {"virtualCluster": "default"}
    assert doc["extras"]["debugReservation"] == {"minutes": 5}


def test_code_the_template_engine_would_touch_travels_base64():
    code = "print('<% $parameters.x %>')\nPAI_EOF\n"
    doc = jobspec.build(jobspec.CellJob(code=code, name="t"))
    cmd = doc["taskRoles"]["worker"]["commands"][-2]
    encoded = cmd.split("echo ")[1].split(" |")[0]
    assert base64.b64decode(encoded).decode() == code and "<%" not in cmd


def test_sku_and_marketplace_prerequisites():
    doc = jobspec.build(jobspec.CellJob(code="pass", name="s", sku="v100", prereqs=[
        {"name": "img", "marketplace": "img@2", "type": "dockerimage"},
        {"name": "mnist", "marketplace": "mnist", "type": "data"}]))
    assert doc["extras"]["hivedScheduler"] == {"taskRoles": {"worker": {"skuType": "v100"}}}
    # a docker image item is the job's image (pai_client.jobdoc: the prerequisite named "image")
    assert doc["prerequisites"][0] == {"name": "image", "type": "dockerimage", "marketplace": "img@2"}
    assert doc["prerequisites"][1] == {"name": "mnist", "marketplace": "mnist", "type": "data"}
    assert doc["taskRoles"]["worker"]["dockerImage"] == "image"
    assert doc["taskRoles"]["worker"]["prerequisites"] == ["mnist"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"code": ""}, "the cell is empty"), ({"code": "x", "instances": 0}, "--instances 0"),
    ({"code": "x", "name": "a b"}, "--name"), ({"code": "x", "files": ["nope.txt"]}, "--file nope.txt")])
def test_bad_cells_are_one_line_errors(kwargs, message):
    with pytest.raises(jobspec.SpecError, match=message.replace("(", r"\(")):
        jobspec.build(jobspec.CellJob(**kwargs))


def test_params_need_names():
    assert jobspec.parse_params(["a=1", "B_2=x=y"]) == {"a": "1", "B_2": "x=y"}
    with pytest.raises(jobspec.SpecError):
        jobspec.parse_params(["1a=2"])


def test_snapshot_reads_failure_and_debugging():
    detail = {"name": "j", "jobStatus": {"state": "FAILED", "virtualCluster": "default", "retries": 0,
                                         "appExitSpec": {"code": 10, "phrase": "P", "type": "USER_FAILURE",
                                                         "behavior": "PERMANENT", "reason": "r", "solution": ["fix"]},
                                         "debugReservation": {"until": 1, "tasks": []}},
              "taskRoles": {"w": {"taskRoleStatus": {"name": "w"}, "taskStatuses": [
                  {"taskIndex": 0, "taskState": "FAILED", "containerGpus": "1,2", "containerNodeName": "n",
                   "subState": "DEBUGGING", "containerExitCode": 3}]}}}
    snap = JobSnapshot.from_detail(detail, "u~j")
    assert snap.ended and snap.gpus == ["n:1", "n:2"] and snap.exit_spec.solution == ["fix"]
    assert [t.role for t in snap.debugging] == ["w"] and snap.debug_until == 1


@pytest.fixture
def shell():
    from IPython.testing.globalipapp import get_ipython, start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "pai_magics")
    return ip


@pytest.mark.parametrize(("line", "cell", "expected"), [
    ("submit --instancez 2", "print(1)", "%%pai submit: unrecognized arguments: --instancez 2"),
    ("submit --gpu two", "print(1)", "argument --gpu: invalid int value: 'two'"),
    ("submit --gpu 1 --sku x", "print(1)", "not allowed with argument"),
    ("submit", None, "is a cell magic"),
    ("jobs", "x", "is a line magic"),
    ("frobnicate", None, "unknown command 'frobnicate'"),
    ("logs j --task w/x", None, "expected ROLE/INDEX"),
])
def test_mistyped_magics_are_one_line_usage_errors(shell, line, cell, expected):
    with pytest.raises(UsageError) as err:
        if cell is None:
            shell.run_line_magic("pai", line)
        else:
            shell.run_cell_magic("pai", line, cell)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_dry_run_prints_the_job(shell, capsys, monkeypatch):
    monkeypatch.setenv("PAI_URL", "http://127.0.0.1:9")  # nothing is asked of the server
    shell.run_cell_magic("pai", "submit --name dry --instances 3 --dry-run", "print('x')\n")
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["name"] == "dry" and doc["taskRoles"]["worker"]["instances"] == 3


def test_market_magics_list_show_and_use_a_template(shell, server, capsys, monkeypatch):
    from pai_client.client import PaiClient

    monkeypatch.setenv("PAI_URL", server.url)
    monkeypatch.setenv("PAI_TOKEN", server.admin_token)
    template = ("protocolVersion: 2\nname: greet\ntype: job\nparameters: {who: world}\n"
                "prerequisites:\n  - {name: image, type: dockerimage, uri: 'python:3.11'}\n"
                "taskRoles:\n  main:\n    instances: 1\n    dockerImage: image\n"
                "    resourcePerInstance: {cpu: 1, memoryMB: 128, gpu: 0}\n"
                "    commands: ['echo hello <% $parameters.who %>']\n")
    with PaiClient(server.url, server.admin_token) as c:
        c.market_publish(template, type="template", name="greet-magic", visibility="private")
    shell.run_line_magic("pai", "market list --keyword greet-magic")
    assert "greet-magic" in capsys.readouterr().out
    shell.run_line_magic("pai", "market show greet-magic")
    assert "echo hello" in capsys.readouterr().out
    shell.run_line_magic("pai", "market use greet-magic --param who=notebook --name greeted --wait")
    out = capsys.readouterr().out
    assert "submitted admin~greeted from greet-magic@1" in out and "admin~greeted: SUCCEEDED" in out
    with PaiClient(server.url, server.admin_token) as c:
        assert c.log("greeted")[0] == "hello notebook\n"
    with pytest.raises(UsageError, match="which item"):
        shell.run_line_magic("pai", "market use")


def test_trials_view_shows_a_trial_whose_job_is_not_known_yet():
    """NNI lists a trial before its PAI job exists (job state null): the row shows it, and the
    widget's watcher does not die on it (it did, and ``%pai nni create --wait`` hung; found by CI)."""
    from pai_magics.widgets import TrialsView

    class Answers:  # what GET /api/v2/experiments/e1 returned at that moment
        def experiment(self, experiment_id):
            assert experiment_id == "e1"
            return {"state": "RUNNING", "bestFinal": None, "trials": [
                {"id": "t0", "sequence": 0, "state": "WAITING", "parameters": {"x": 1}, "intermediate": [],
                 "final": None, "job": {"name": "alice~nni_e1_t0", "url": "/api/v2/jobs/alice~nni_e1_t0",
                                        "state": None}},
                {"id": "t1", "sequence": None, "state": None, "parameters": None, "intermediate": None,
                 "final": 0.5, "job": None}]}

    view = TrialsView("e1", start=False)
    view.refresh(Answers())
    assert "alice~nni_e1_t0</td>" in view.trials.value and "None" not in view.trials.value
    assert view.state.value == "RUNNING" and not view.done.is_set()


def test_trials_view_watcher_outlives_an_unexpected_answer():
    from pai_magics.widgets import TrialsView

    view = TrialsView("e1", url="http://127.0.0.1:9", token="t", poll_interval=0.01, start=False)
    calls = []

    def refresh(client):
        calls.append(client)
        if len(calls) == 1:
            raise KeyError("state")
        view.done.set()

    view.refresh = refresh
    view._poll()  # returns only once the experiment has ended
    assert len(calls) == 2 and view.done.is_set() and view.error == "KeyError: 'state'"
