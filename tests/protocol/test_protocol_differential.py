"""Differential test: our structural validation vs OpenPAI's server schema (JSON Schema draft-07).

Documents are produced by mutating valid example jobs (delete a key, change a value's type, add
an unknown key, rename a key to a bad name, ...). For each, ``validate_structure()`` must give the
same accept/reject verdict as ``jsonschema.Draft7Validator(protocol-v2.schema.json)`` unless the
mutation touches one of the deliberate deviations listed in ``DEVIATIONS`` (and in docs/protocol.md).
Semantic checks are not part of this comparison (the schema cannot express them).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # a test dependency (pyproject [test]): a plain import, never a skip
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pai_hub.protocol import parse, validate_structure

HERE = Path(__file__).resolve().parent
REFERENCE = Path(__file__).resolve().parents[3] / "shared/reference"
SCHEMA = REFERENCE / "openpai/protocol-v2.schema.json"
JOBS = REFERENCE / "openpai/jobs"

pytestmark = pytest.mark.needs_reference(SCHEMA, JOBS)

SOURCES = [
    JOBS / "marketplace-v2/tensorflow-cifar10.yaml",  # all 4 prerequisite types, deployments, 2 roles
    JOBS / "marketplace-v2/tensorflow-serving-mnist.yaml",  # ports
    JOBS / "docs/prerequisites-example.yaml",  # #5145-style plugin prerequisites with callbacks
    JOBS / "examples/Distributed-example__cifar10-single-mul-DDP-gloo.yaml",  # hived extras
    HERE / "data/rest-server/valid_secret_example.yaml",  # dockerimage auth, secrets
    HERE / "data/rest-server/valid_caffe_mnist.yaml",  # deployments + defaults
]

# Deliberate deviations, as regexes over the mutated path (dotted, indices as [n]); a verdict
# difference is only allowed when the mutation is at (or under) one of these.
DEVIATIONS = {
    # The server schema gives these no `type`, so Ajv accepts e.g. `taskRoles: "x"`; we require mappings.
    "non-mapping taskRoles": r"^taskRoles$",
    "non-mapping ports": r"^taskRoles\.\w+\.resourcePerInstance\.ports$",
    "non-mapping deployment taskRoles": r"^deployments\[\d+\]\.taskRoles$",
    # #5145 fields are typed by us, free-form for OpenPAI.
    "typed callbacks": r"^prerequisites\[\d+\]\.callbacks($|[.\[])",
    "typed failurePolicy": r"^prerequisites\[\d+\]\.failurePolicy$",
    # Not declared by the server schema; we require a string.
    "typed defaults.virtualCluster": r"^defaults\.virtualCluster$",
    # Schema typo makes Ajv reject a key literally named `additionalProperties`; we accept it.
    "extraContainerOptions.additionalProperties": r"^taskRoles\.\w+\.extraContainerOptions\.additionalProperties$",
}
_DEVIATION_RE = re.compile("|".join(f"(?:{p})" for p in DEVIATIONS.values()))

VALUES: list[Any] = [
    None,
    True,
    False,
    -1,
    0,
    1,
    2,
    2.5,
    4.0,
    "two",
    "",
    "a b",
    "x" * 300,
    "job",
    "2",
    "script",
    [],
    ["a"],
    [1],
    {},
    {"k": 1},
    {"a-b": 1},
    {"name": "n", "type": "data"},
]
NEW_KEYS = ["foo", "a-b", "valid_key", "uri", "plugin", "name", "require", "shmMB", "cpu"]


def _load_sources() -> list[dict[str, Any]]:
    return [parse(p.read_text()) for p in SOURCES if p.is_file()]


def _fmt(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _walk(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key), value
            yield from _walk(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index), value
            yield from _walk(value, (*prefix, index))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> tuple[dict[str, Any], str, str]:
    doc = copy.deepcopy(draw(st.sampled_from(_SOURCES)))
    paths = [p for p, _ in _walk(doc)]
    kind = draw(st.sampled_from(["delete", "replace", "replace", "add_key", "rename_key"]))
    path = draw(st.sampled_from(paths))
    parent = _parent(doc, path)
    if kind == "delete":
        del parent[path[-1]]
        touched = path
    elif kind == "replace":
        parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(VALUES)))
        touched = path
    else:
        container = doc if kind == "add_key" and draw(st.booleans()) else parent
        container_path = () if container is doc else path[:-1]
        if not isinstance(container, dict):
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(VALUES)))
            touched = path
        elif kind == "add_key":
            key = draw(st.sampled_from(NEW_KEYS))
            container[key] = copy.deepcopy(draw(st.sampled_from(VALUES)))
            touched = (*container_path, key)
        else:
            old = path[-1]
            new = draw(st.sampled_from(NEW_KEYS))
            container[new] = container.pop(old)
            touched = (*container_path, new)
    return doc, kind, _fmt(touched)


_SOURCES = _load_sources() if SCHEMA.is_file() else [{}]


@pytest.fixture(scope="module")
def schema_validator() -> Any:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def test_sources_are_valid(schema_validator: Any) -> None:
    assert len(_SOURCES) == len(SOURCES)
    for doc in _SOURCES:
        assert schema_validator.is_valid(doc)
        assert validate_structure(doc) == []


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=mutated())
def test_same_verdict_as_server_schema(schema_validator: Any, case: tuple[dict[str, Any], str, str]) -> None:
    doc, kind, touched = case
    theirs = schema_validator.is_valid(doc)
    ours = not validate_structure(doc)
    if ours != theirs:
        assert _DEVIATION_RE.search(touched), (
            f"{kind} at {touched}: schema says {'valid' if theirs else 'invalid'}, we say "
            f"{validate_structure(doc)}"
        )


# Each deviation demonstrated once, so the list above cannot silently go stale.
def _base() -> dict[str, Any]:
    return copy.deepcopy(_SOURCES[0])


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = _base()
    _parent(doc, path)[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("name", "make", "schema_ok", "ours_ok"),
    [
        ("non-mapping taskRoles", lambda: _with(("taskRoles",), "x"), True, False),
        (
            "non-mapping ports",
            lambda: _with(("taskRoles", "worker", "resourcePerInstance", "ports"), 3),
            True,
            False,
        ),
        ("typed failurePolicy", lambda: _with(("prerequisites", 1, "failurePolicy"), "later"), True, False),
        ("typed defaults.virtualCluster", lambda: _with(("defaults", "virtualCluster"), 5), True, False),
    ],
)
def test_documented_deviations(
    schema_validator: Any, name: str, make: Any, schema_ok: bool, ours_ok: bool
) -> None:
    assert name in DEVIATIONS
    doc = make()
    assert schema_validator.is_valid(doc) is schema_ok
    assert (not validate_structure(doc)) is ours_ok
