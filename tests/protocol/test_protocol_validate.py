"""Error paths and messages of validate(), semantic checks and the #5145 extension."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pai_hub.protocol import (
    InvalidProtocol,
    JobProtocol,
    ProtocolError,
    load,
    load_dict,
    validate,
    validate_structure,
)

BASE: dict[str, Any] = {
    "protocolVersion": 2,
    "name": "demo",
    "type": "job",
    "prerequisites": [
        {"name": "img", "type": "dockerimage", "uri": "ubuntu:22.04"},
        {"name": "code", "type": "script", "uri": "https://example.com/code.git"},
        {"name": "ds", "type": "data", "uri": ["https://example.com/ds.tgz"]},
    ],
    "taskRoles": {
        "worker": {
            "instances": 2,
            "dockerImage": "img",
            "script": "code",
            "data": "ds",
            "resourcePerInstance": {"cpu": 2, "memoryMB": 1024, "gpu": 1},
            "commands": ["python train.py"],
        }
    },
}


def doc(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out.update(changes)
    return out


def paths(errors: list[ProtocolError]) -> list[str]:
    return [e.path for e in errors]


def test_base_is_valid() -> None:
    assert validate(doc()) == []


def test_error_str_and_frozen() -> None:
    error = ProtocolError("taskRoles.worker.resourcePerInstance.gpu", "must be an integer, got 'two'")
    assert str(error) == "taskRoles.worker.resourcePerInstance.gpu: must be an integer, got 'two'"
    with pytest.raises(AttributeError):
        error.path = "x"  # type: ignore[misc]


def test_gpu_string_path_and_message() -> None:
    d = doc()
    d["taskRoles"]["worker"]["resourcePerInstance"]["gpu"] = "two"
    assert [str(e) for e in validate(d)] == [
        "taskRoles.worker.resourcePerInstance.gpu: must be an integer, got 'two'"
    ]


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        ("instances", 0, "must be an integer ≥ 1, got 0"),
        ("instances", 1.5, "must be an integer ≥ 1, got 1.5"),
        ("instances", True, "must be an integer ≥ 1, got true"),
        ("taskRetryCount", "3", "must be an integer, got '3'"),
        ("dockerImage", None, "must be a string, got null"),
        ("commands", [], "must contain at least 1 item"),
        ("commands", "echo hi", "must be a list, got 'echo hi'"),
    ],
)
def test_task_role_field_messages(where: str, value: Any, expected: str) -> None:
    d = doc()
    d["taskRoles"]["worker"][where] = value
    errors = validate(d)
    assert [(e.path, e.message) for e in errors] == [(f"taskRoles.worker.{where}", expected)]


def test_integral_float_accepted_like_json_schema() -> None:
    d = doc()
    d["taskRoles"]["worker"]["resourcePerInstance"]["cpu"] = 4.0
    job = load_dict(d)
    assert job.task_roles["worker"].resource_per_instance.cpu == 4


def test_unknown_field_lists_allowed() -> None:
    d = doc(foo=1)
    d["taskRoles"]["worker"]["resourcePerInstance"]["tpu"] = 1
    errors = validate(d)
    assert paths(errors) == ["taskRoles.worker.resourcePerInstance.tpu", "foo"]
    assert errors[0].message == "unknown field 'tpu'; allowed: cpu, memoryMB, gpu, ports"
    assert errors[1].message.startswith("unknown field 'foo'; allowed: protocolVersion, name, type")


def test_prerequisite_paths_use_index() -> None:
    d = doc()
    d["prerequisites"][2]["uri"] = "https://x"  # data uri must be a list
    d["prerequisites"][0].pop("uri")
    d["prerequisites"][1]["type"] = "model"
    assert [str(e) for e in validate(d)] == [
        "prerequisites[0].uri: required field missing",
        "prerequisites[1].type: must be one of 'script', 'output', 'data', 'dockerimage', got 'model'",
        "prerequisites[2].uri: must be a list, got 'https://x'",
    ]


def test_dockerimage_forbids_extras_but_script_allows_them() -> None:
    d = doc()
    d["prerequisites"][0]["plugin"] = "x"
    d["prerequisites"][1]["anything"] = {"free": True}
    assert [str(e) for e in validate(d)] == [
        "prerequisites[0].plugin: unknown field 'plugin'; allowed: protocolVersion, name, version, "
        "contributor, description, type, uri, auth"
    ]


@pytest.mark.parametrize("bad", ["a b", "x" * 256, "", "na.me", 12])
def test_bad_job_names(bad: Any) -> None:
    errors = validate(doc(name=bad))
    assert paths(errors) == ["name"]


def test_bad_enums() -> None:
    errors = validate(doc(type="service", protocolVersion=3))
    assert [str(e) for e in errors] == [
        "protocolVersion: must be 2 or '2', got 3",
        "type: must be 'job', got 'service'",
    ]


def test_null_for_optional_field_is_rejected() -> None:
    assert [str(e) for e in validate(doc(description=None))] == ["description: must be a string, got null"]
    assert paths(validate(doc(parameters=None))) == ["parameters"]


def test_non_mapping_document() -> None:
    assert [str(e) for e in validate(["a"])] == ["job protocol must be a mapping, got a list"]


def test_instances_defaults_to_one() -> None:
    d = doc()
    del d["taskRoles"]["worker"]["instances"]
    assert load_dict(d).task_roles["worker"].instances == 1


# ----------------------------------------------------------------------------- semantic checks


def test_duplicate_prerequisite_names_per_type() -> None:
    d = doc()
    d["prerequisites"].append({"name": "img", "type": "dockerimage", "uri": "other"})
    d["prerequisites"].append({"name": "img", "type": "script"})  # same name, other type: fine
    assert [str(e) for e in validate(d)] == [
        "prerequisites[3].name: duplicate dockerimage prerequisite 'img' (already defined at prerequisites[0])"
    ]


def test_unknown_references() -> None:
    d = doc()
    role = d["taskRoles"]["worker"]
    role["dockerImage"] = "code"  # exists, but as a script
    role["output"] = "nowhere"
    role["prerequisites"] = ["code", "ghost"]
    assert paths(validate(d)) == [
        "taskRoles.worker.prerequisites[1]",
        "taskRoles.worker.dockerImage",
        "taskRoles.worker.output",
    ]


def test_deployments_duplicate_and_default() -> None:
    dep = {"name": "d1", "taskRoles": {"worker": {"preCommands": ["echo pre"]}}}
    d = doc(deployments=[dep, copy.deepcopy(dep)], defaults={"deployment": "d2"})
    assert [str(e) for e in validate(d)] == [
        "deployments[1].name: duplicate deployment 'd1' (already defined at deployments[0])",
        "defaults.deployment: no deployment named 'd2'; defined: 'd1'",
    ]


def test_negative_resources_rejected_as_deviation() -> None:
    d = doc()
    d["taskRoles"]["worker"]["resourcePerInstance"]["gpu"] = -1
    assert validate_structure(d) == []  # OpenPAI's schema accepts it...
    assert [str(e) for e in validate(d)] == [
        "taskRoles.worker.resourcePerInstance.gpu: must be an integer ≥ 0, got -1"
    ]


# ----------------------------------------------------------------------------- #5145 prerequisites


def plugin_doc(**requires: list[str]) -> dict[str, Any]:
    d = doc()
    d["prerequisites"] = [d["prerequisites"][0]] + [
        {"name": name, "type": "script", "plugin": "com.microsoft.pai.runtimeplugin.cmd", "require": req}
        for name, req in requires.items()
    ]
    role = d["taskRoles"]["worker"]
    del role["script"], role["data"]
    role["prerequisites"] = list(requires)
    return d


def test_require_in_order_is_valid() -> None:
    assert validate(plugin_doc(a=[], b=["a"], c=["a", "b"])) == []


def test_require_unknown_name() -> None:
    assert [str(e) for e in validate(plugin_doc(a=["zz"]))] == [
        "prerequisites[1].require[0]: unknown prerequisite 'zz'; defined: 'a', 'img'"
    ]


def test_require_cycle_reported_with_path() -> None:
    assert [str(e) for e in validate(plugin_doc(a=["b"], b=["a"]))] == [
        "prerequisites.a.require: cycle a -> b -> a"
    ]


def test_require_longer_cycle_and_self_loop() -> None:
    errors = [str(e) for e in validate(plugin_doc(a=["b"], b=["c"], c=["a"], d=["d"]))]
    assert errors == [
        "prerequisites.a.require: cycle a -> b -> c -> a",
        "prerequisites.d.require: cycle d -> d",
    ]


def test_callbacks_and_failure_policy() -> None:
    d = plugin_doc(a=[])
    d["prerequisites"][1].update(
        callbacks=[
            {"event": "containerStart", "commands": ["echo start"]},
            {"event": "containerExit", "commands": ["echo bye"]},
            {"event": "taskStarts", "commands": []},
        ],
        failurePolicy="ignore",
        customParam={"x": 1},
    )
    job = load_dict(d)
    prereq = job.prerequisites[1]  # type: ignore[index]
    assert prereq.failure_policy == "ignore"
    assert [c.event for c in prereq.callbacks] == ["containerStart", "containerExit", "taskStarts"]
    assert prereq.plugin_parameters == {"customParam": {"x": 1}}

    d["prerequisites"][1]["failurePolicy"] = "retry"
    d["prerequisites"][1]["callbacks"][0]["event"] = "start"
    assert paths(validate(d)) == ["prerequisites[1].callbacks[0].event", "prerequisites[1].failurePolicy"]


def test_load_raises_with_all_errors_and_short_str() -> None:
    d = doc()
    d["taskRoles"] = {f"r{i}": {"dockerImage": "img"} for i in range(15)}
    with pytest.raises(InvalidProtocol) as info:
        load_dict(d)
    assert len(info.value.errors) == 30
    assert str(info.value).endswith("... and 10 more errors")


def test_load_from_text() -> None:
    job = load(
        "protocolVersion: 2\nname: x\ntype: job\ntaskRoles:\n  w:\n    dockerImage: i\n"
        "    resourcePerInstance: {cpu: 1, memoryMB: 1, gpu: 0}\n    commands: [ls]\n"
        "prerequisites:\n  - {name: i, type: dockerimage, uri: busybox}\n"
    )
    assert isinstance(job, JobProtocol)
    assert job.task_roles["w"].docker_image == "i"
