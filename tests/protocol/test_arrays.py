"""Job arrays (pai_hub/protocol/arrays.py): the spec grammar, its bound, and elements that are
exactly what rendering each element from scratch would give (a restart re-renders them)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from pai_hub import protocol
from pai_hub.protocol.arrays import (
    InvalidArraySpec,
    JobArray,
    element_document,
    parse_array_spec,
)


def sweep(commands: list[str], **top: object) -> dict:
    return {
        "protocolVersion": 2, "name": "sweep", "type": "job",
        "prerequisites": [{"name": "img", "type": "dockerimage", "uri": "ubuntu:22.04"}],
        "taskRoles": {"worker": {"instances": 1, "dockerImage": "img",
                                 "resourcePerInstance": {"cpu": 1, "memoryMB": 64, "gpu": 0},
                                 "commands": commands}},
        **top,
    }


@pytest.mark.parametrize(("spec", "expected"), [
    ("0-4", [0, 1, 2, 3, 4]),
    ("7", [7]),
    ("0-9:3", [0, 3, 6, 9]),
    ("1,3,5-7", [1, 3, 5, 6, 7]),
    (" 5-6 , 1 ", [1, 5, 6]),
    ("3,3,1-3", [1, 2, 3]),
])
def test_array_specs_read_as_slurm_writes_them(spec, expected):
    assert parse_array_spec(spec) == expected


@pytest.mark.parametrize(("spec", "says"), [
    ("", "expected indices"),
    ("a-b", "'a-b' is not an index"),
    ("-1", "is not an index"),
    ("9-3", "write 3-9"),
    ("0-9:0", "step must be at least 1"),
    ("0-10000", "more than 10000 elements"),
])
def test_bad_specs_say_what_to_write(spec, says):
    with pytest.raises(InvalidArraySpec, match=says):
        parse_array_spec(spec)


def test_the_bound_is_checked_before_anything_is_built():
    with pytest.raises(InvalidArraySpec, match="more than 100 elements"):
        parse_array_spec("0-999999999999", max_size=100)
    assert len(parse_array_spec("0-99,200-299", max_size=200)) == 200


def test_each_element_is_named_and_gets_its_index_three_ways():
    doc = sweep(["echo ${PAI_ARRAY_INDEX} of ${PAI_ARRAY_COUNT}", "python train.py --seed <% $parameters.PAI_ARRAY_INDEX %>"])
    array = JobArray(doc, parse_array_spec("0-2"), username="alice")
    element = array.element(2)
    assert element.name == "sweep-2" and element.plan.framework_name == "alice~sweep-2"
    assert element.plan.task_roles["worker"].entrypoint == (
        "export PAI_ARRAY_INDEX=2 PAI_ARRAY_COUNT=3 PAI_ARRAY_NAME=sweep\necho 2 of 3\npython train.py --seed 2")
    assert element.protocol["parameters"]["PAI_ARRAY_INDEX"] == 2
    assert yaml.safe_load(element.config_yaml) == element.protocol
    assert doc["name"] == "sweep" and "parameters" not in doc  # the caller's document is untouched


@pytest.mark.parametrize("doc", [
    sweep(["echo ${PAI_ARRAY_INDEX}", "echo '${PAI_ARRAY_NAME}' $PAI_ARRAY_INDEX"]),
    sweep(["echo <% $parameters.lr %> <% $parameters.PAI_ARRAY_INDEX %> <% $secrets.key %>"],
          parameters={"lr": 0.1}, secrets={"key": "s3cret"}),
    {**sweep(["run"]), "deployments": [{"name": "d", "taskRoles": {"worker": {
        "preCommands": ["echo pre <% $parameters.PAI_ARRAY_INDEX %>"], "postCommands": ["echo post"]}}}],
     "defaults": {"deployment": "d", "virtualCluster": "vc1"}, "extras": {"gangAllocation": False}},
])
def test_an_element_equals_rendering_it_from_its_stored_mapping(doc):
    """What a restart does (PaiHub._plan_of): render the stored mapping with the job's secrets."""
    array = JobArray(doc, parse_array_spec("0-11:5"), username="bob")
    for element in array:
        stored = dict(element.protocol)
        if doc.get("secrets"):
            assert stored["secrets"] == protocol.MASK
            stored["secrets"] = doc["secrets"]
        again = protocol.render(protocol.load_dict(stored), username="bob")
        fast = dataclasses.replace(element.plan, protocol=again.protocol)
        assert fast == again
        assert element.protocol == element_document(protocol.masked_config(protocol.load_dict(doc)),
                                                    element.index, len(array))


def test_the_document_is_validated_once_with_its_own_field_names():
    with pytest.raises(protocol.InvalidProtocol, match=r"taskRoles\.worker\.commands"):
        JobArray(sweep("not a list"), [0, 1], username="alice")  # type: ignore[arg-type]


def test_reserved_parameters_and_too_long_names_are_refused():
    with pytest.raises(protocol.InvalidProtocol, match=r"parameters\.PAI_ARRAY_INDEX: is set for each"):
        JobArray(sweep(["true"], parameters={"PAI_ARRAY_INDEX": 3}), [0], username="alice")
    long = sweep(["true"], name="n" * 250)
    JobArray(long, parse_array_spec("0-999"), username="alice")  # n…n-999: 254 characters
    with pytest.raises(protocol.InvalidProtocol, match="longer than 255 characters"):
        JobArray(long, parse_array_spec("0-99999", max_size=100_000), username="alice")
