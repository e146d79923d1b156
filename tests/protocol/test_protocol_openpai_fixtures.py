"""Golden tests ported from OpenPAI's own test-suites (fixtures in data/rest-server/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pai_hub.protocol import load, mask_secrets, parse, render, render_secrets, validate

DATA = Path(__file__).resolve().parent / "data/rest-server"
REFERENCE = Path(__file__).resolve().parents[3] / "shared/reference"
SCHEMA = REFERENCE / "openpai/protocol-v2.schema.json"

# file → (first Ajv message in OpenPAI's test, the path our first matching error must have)
INVALID = {
    "invalid_additional_property_root.yaml": ("should NOT have additional properties", "additionalProp"),
    "invalid_additional_property_task_role_name.yaml": (
        "should NOT have additional properties",
        "taskRoles.invalid-name",
    ),
    "invalid_missing_task_roles.yaml": ("should have required property 'taskRoles'", "taskRoles"),
    "invalid_missing_name.yaml": ("should have required property 'name'", "name"),
    "invalid_missing_gpu.yaml": (
        "should have required property 'gpu'",
        "taskRoles.valid_name.resourcePerInstance.gpu",
    ),
    "invalid_missing_commands.yaml": (
        "should have required property 'commands'",
        "taskRoles.valid_name.commands",
    ),
    # Ajv's first error is the enum of the first oneOf branch at prerequisites[0].type; we know the
    # item is a dockerimage and say what it lacks.
    "invalid_enum_prerequisite.yaml": (
        "should be equal to one of the allowed values",
        "prerequisites[0].uri",
    ),
}
VALID = ["valid_caffe_mnist.yaml", "valid_pytorch_mnist.yaml", "valid_secret_example.yaml"]


@pytest.mark.parametrize("name", VALID)
def test_valid_fixtures_accepted(name: str) -> None:
    assert validate(parse((DATA / name).read_text())) == []


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_fixtures_rejected_at_the_same_field(name: str) -> None:
    errors = validate(parse((DATA / name).read_text()))
    assert errors, name
    expected_path = INVALID[name][1]
    assert errors[0].path == expected_path or expected_path in [e.path for e in errors]
    if name != "invalid_enum_prerequisite.yaml":
        assert len(errors) == 1  # OpenPAI's test also expects exactly one error here
        assert errors[0].path == expected_path


@pytest.mark.needs_reference(SCHEMA)
@pytest.mark.parametrize("name", VALID + sorted(INVALID))
def test_fixture_verdicts_match_server_schema(name: str) -> None:
    import jsonschema  # a test dependency (pyproject [test])

    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    doc = parse((DATA / name).read_text())
    assert validator.is_valid(doc) == (name in VALID)


def test_render_caffe_deployment_pre_commands() -> None:
    job = load((DATA / "valid_caffe_mnist.yaml").read_text())
    role = render(job, username="alice").task_roles["train"]
    # OpenPAI HEAD joins with newlines (older releases used " && ").
    assert role.entrypoint == (
        "./data/mnist/get_mnist.sh\n./examples/mnist/create_mnist.sh\n./examples/mnist/train_lenet.sh"
    )
    assert role.docker_image == "openpai/pai.example.caffe"


def test_render_pytorch_entrypoint() -> None:
    job = load((DATA / "valid_pytorch_mnist.yaml").read_text())
    role = render(job, username="alice").task_roles["worker"]
    assert role.entrypoint == "python pytorch_example/mnist/main.py --epochs 10 --lr 0.01 --batch-size 32"


def test_render_secret_example_auth_and_exit() -> None:
    job = load((DATA / "valid_secret_example.yaml").read_text())
    rendered = render(job, username="alice")
    role = rendered.task_roles["train"]
    assert role.entrypoint == "exit"
    assert role.docker_auth == {"username": "testuser", "password": "testpass", "registryuri": "docker.io"}
    assert rendered.secrets == {"registry": {"username": "testuser", "password": "testpass"}}


@pytest.mark.parametrize("case", ["middle", "end"])
def test_mask_secrets_fixtures(case: str) -> None:
    source = (DATA / f"mask_{case}_input.yaml").read_text()
    expected = (DATA / f"mask_{case}_expected.yaml").read_text()
    masked = mask_secrets(source)
    assert masked.strip() == expected.strip()
    assert "testpass" not in masked
    assert parse(masked)["secrets"] == "******"


SECRET_VECTORS = [
    ("sleep <% $secrets.time %>", "sleep 10"),
    ("sleep <% $secrets.time[0] %>", "sleep 10"),
    ("sleep <% $secrets.time.time1 %>", "sleep 10"),
    (
        "echo <% $secrets.time.date.year %> && sleep <% $secrets.time.date.workingDay.0 %>",
        "echo 2019 && sleep 1",
    ),
]


@pytest.mark.needs_reference(REFERENCE / "openpai/runtime-test-data/render_test_secrets.yaml")
def test_runtime_secret_vectors() -> None:
    text = (REFERENCE / "openpai/runtime-test-data/render_test_secrets.yaml").read_text()
    secrets = list(yaml.safe_load_all(text))
    assert len(secrets) == len(SECRET_VECTORS)
    for (command, expected), secret in zip(SECRET_VECTORS, secrets, strict=True):
        assert render_secrets(command, secret) == expected
