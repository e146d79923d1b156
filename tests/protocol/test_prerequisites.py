"""Prerequisite closure (#5145 ``require``) and runtime plugin invocations (OpenPAI collect order)."""

from __future__ import annotations

import json

import yaml

from pai_hub.protocol import load, load_dict
from pai_hub.protocol.prerequisites import plugin_invocations, prerequisite_closure
from tests.server import REFERENCE

JOBS = REFERENCE / "openpai/jobs"


def job(prereqs: list[dict], role: dict | None = None, **top) -> dict:
    role = {"dockerImage": "img", "resourcePerInstance": {"cpu": 1, "memoryMB": 64, "gpu": 0},
            "commands": ["true"], **(role or {})}
    doc = {"protocolVersion": 2, "name": "j", "type": "job",
           "prerequisites": [*prereqs, {"name": "img", "type": "dockerimage", "uri": "ubuntu"}],
           "taskRoles": {"main": role}, **top}
    return doc


def cmd(name: str, *require: str, kind: str = "script", **extra) -> dict:
    item = {"name": name, "type": kind, "plugin": "com.microsoft.pai.runtimeplugin.cmd",
            "callbacks": [{"event": "containerStart", "commands": [f"echo {name}"]}], **extra}
    if require:
        item["require"] = list(require)
    return item


def test_closure_puts_required_first_and_keeps_listed_order() -> None:
    doc = job([cmd("a", "b"), cmd("b", "c"), cmd("c"), cmd("d", "c"), cmd("e"),
               {"name": "ds", "type": "data", "uri": ["http://x"], "require": ["e"]}],
              role={"prerequisites": ["a", "d"], "data": "ds"})
    j = load_dict(doc)
    assert [p.name for p in prerequisite_closure(j, "main")] == ["c", "b", "a", "d", "e", "ds"]
    # only prerequisites with a plugin or callbacks become invocations; plain data does not
    assert [i["name"] for i in plugin_invocations(j, "main")] == ["c", "b", "a", "d", "e"]


def test_closure_ties_in_listed_order_and_each_once() -> None:
    j = load_dict(job([cmd("x"), cmd("y"), cmd("z", "y", "x")], role={"prerequisites": ["z", "y", "x"]}))
    assert [p.name for p in prerequisite_closure(j, "main")] == ["y", "x", "z"]


def test_invocation_rendering_and_parameters() -> None:
    doc = job(
        [cmd("fetch", kind="data", uri=["http://host/a.zip", "http://host/b.zip"], target="/data",
             failurePolicy="ignore",
             callbacks=[
                 {"event": "containerStart", "commands": [
                     "wget <% this.uri[0] %> -O <% this.parameters.target %>/a.zip",
                     "echo <% $parameters.epochs %> <% $secrets.token %> <% $data.name %>"]},
                 {"event": "containerExit", "commands": ["rm -rf <% this.target %>"]}])],
        role={"prerequisites": ["fetch"], "data": "fetch"},
        parameters={"epochs": 10},
        extras={"com.microsoft.pai.runtimeplugin": [
            {"plugin": "tensorboard", "parameters": {"port": "<% $parameters.epochs %>",
                                                      "logdir": {"x": "/l/<% $parameters.epochs %>"}}},
            {"plugin": "ssh", "taskroles": ["other"], "parameters": {"jobssh": True}},
            {"plugin": "cmd", "taskroles": ["main"], "failurePolicy": "ignore",
             "parameters": {"callbacks": [{"event": "taskStarts", "commands": ["echo pre"]}]}},
        ]},
    )
    invocations = plugin_invocations(load_dict(doc), "main")
    json.dumps(invocations)  # JSON-able as it goes into spec.json
    first, tb, extra_cmd = invocations
    assert first["plugin"] == "cmd" and first["name"] == "fetch" and first["source"] == "prerequisite"
    assert first["failurePolicy"] == "ignore"
    assert first["parameters"]["target"] == "/data" and first["parameters"]["uri"][1] == "http://host/b.zip"
    assert "callbacks" not in first["parameters"] and "plugin" not in first["parameters"]
    assert first["callbacks"] == [
        {"event": "containerStart", "commands": [
            "wget http://host/a.zip -O /data/a.zip", "echo 10 <% $secrets.token %> fetch"]},
        {"event": "containerExit", "commands": ["rm -rf /data"]},
    ]
    assert tb["plugin"] == "tensorboard" and tb["source"] == "extras" and tb["failurePolicy"] == "fail"
    assert tb["parameters"] == {"port": 10, "logdir": {"x": "/l/10"}}  # a lone reference keeps its type
    assert extra_cmd["callbacks"] == [{"event": "taskStarts", "commands": ["echo pre"]}]
    assert extra_cmd["parameters"] == {} and extra_cmd["failurePolicy"] == "ignore"


def test_callbacks_without_plugin_default_to_cmd() -> None:
    item = cmd("p")
    del item["plugin"]
    invocations = plugin_invocations(load_dict(job([item], role={"prerequisites": ["p"]})), "main")
    assert [(i["plugin"], i["name"]) for i in invocations] == [("cmd", "p")]


def test_openpai_examples() -> None:
    example = load((JOBS / "docs" / "prerequisites-example.yaml").read_text())
    invocations = plugin_invocations(example, "taskrole")
    assert [(i["plugin"], i["name"]) for i in invocations] == [
        ("cmd", "install-git"), ("cmd", "covid-19-data"), ("ssh", "extras.runtimeplugin[0]")]
    assert invocations[0]["callbacks"][0] == {"event": "taskStarts", "commands": ["apt update", "apt install -y  git"]}
    assert invocations[2]["parameters"] == {"jobssh": True}

    legacy = load((JOBS / "openpai-runtime-tests" / "cmd_test_job.yaml").read_text())
    (inv,) = plugin_invocations(legacy, "worker")
    assert inv["parameters"]["preCommands"][1].startswith(
        "wget -qO- https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz | tar xvz")
    assert inv["parameters"]["preCommands"][1].endswith("data_cifar10")

    chained = yaml.safe_load((JOBS / "openpai-runtime-tests" / "cmd_with_prerequisites_test_job.yaml").read_text())
    j = load_dict(chained)
    assert [p.name for p in prerequisite_closure(j, "worker")] == ["cifar10-load-data", "cifar10"]
    (inv,) = plugin_invocations(j, "worker")
    assert inv["callbacks"][1] == {"event": "taskSucceeds", "commands": ['echo "PostCommands start ..."']}
