"""render(): effective values and entrypoints, on OpenPAI's own examples."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pai_hub.protocol import InvalidProtocol, JobProtocol, load, mask_secrets, masked_config, parse, render

REFERENCE = Path(__file__).resolve().parents[3] / "shared/reference"
JOBS = REFERENCE / "openpai/jobs"
needs_reference = pytest.mark.needs_reference(JOBS)

SIMPLE = """
protocolVersion: 2
name: render_me
type: job
jobRetryCount: 2
parameters: {epochs: 3}
secrets: {token: s3cret}
prerequisites:
  - {name: img, type: dockerimage, uri: 'python:3.11'}
  - {name: code, type: script, uri: 'https://git/x', version: 7}
  - {name: out, type: output, uri: '/mnt/out'}
  - {name: ds, type: data, uri: ['https://d/1', 'https://d/2']}
taskRoles:
  worker:
    instances: 4
    completion: {minFailedInstances: 0, minSucceededInstances: null}
    dockerImage: img
    script: code
    output: out
    data: ds
    prerequisites: [ds, code]
    extraContainerOptions: {shmMB: 1024, infiniband: true}
    resourcePerInstance: {cpu: 4, memoryMB: 8192, gpu: 2, ports: {tb: 2, ssh: 3}}
    commands:
      - "  cd <% $script.name %>@<% $script.version %>  "
      - python train.py --epochs <% $parameters.epochs %> --out <% $output.uri %> --data <% $data.uri[1] %>
      - echo <% $secrets.token %>
  ps:
    taskRetryCount: 3
    completion: {minFailedInstances: -1, minSucceededInstances: 1}
    dockerImage: img
    resourcePerInstance: {cpu: 1, memoryMB: 512, gpu: 0}
    commands: [serve]
deployments:
  - name: dep
    taskRoles:
      worker: {preCommands: [pip install -r req.txt], postCommands: [echo done]}
defaults: {deployment: dep, virtualCluster: vc1}
extras:
  gangAllocation: false
  hivedScheduler: {jobPriorityClass: prod}
"""


def test_render_all_fields() -> None:
    rendered = render(load(SIMPLE), username="alice")
    assert rendered.name == "render_me"
    assert rendered.framework_name == "alice~render_me"
    assert rendered.virtual_cluster == "vc1"
    assert rendered.job_retry_count == 2
    assert rendered.gang_allocation is False
    assert rendered.priority_class == "prod"
    assert rendered.secrets == {"token": "s3cret"}
    assert list(rendered.task_roles) == ["worker", "ps"]
    worker = rendered.task_roles["worker"]
    assert (worker.instances, worker.cpu, worker.memory_mb, worker.gpu, worker.shm_mb) == (
        4,
        4,
        8192,
        2,
        1024,
    )
    assert worker.ports == {"tb": 2, "ssh": 3, "http": 1}
    assert (worker.min_failed, worker.min_succeeded, worker.task_retry_count) == (1, 4, 0)
    assert worker.prerequisites == ["ds", "code"]
    assert worker.docker_image == "python:3.11"
    assert worker.infiniband is True
    assert worker.entrypoint == (
        "pip install -r req.txt\n"
        "cd code@7\n"
        "python train.py --epochs 3 --out /mnt/out --data https://d/2\n"
        "echo <% $secrets.token %>\n"
        "echo done"
    )
    ps = rendered.task_roles["ps"]
    assert (ps.instances, ps.shm_mb, ps.min_failed, ps.min_succeeded, ps.task_retry_count) == (
        1,
        512,
        -1,
        1,
        3,
    )
    assert ps.ports == {"ssh": 1, "http": 1}
    assert ps.entrypoint == "serve"


def test_render_defaults() -> None:
    text = (
        SIMPLE.replace("defaults: {deployment: dep, virtualCluster: vc1}", "")
        .replace("  gangAllocation: false\n  hivedScheduler: {jobPriorityClass: prod}\n", "  {}\n")
        .replace("extras:\n  {}\n", "")
    )
    rendered = render(load(text), username="bob")
    assert rendered.virtual_cluster == "default"
    assert rendered.gang_allocation is True
    assert rendered.priority_class is None
    assert rendered.task_roles["worker"].entrypoint.startswith("cd code@7\n")  # no deployment applied


def test_render_rejects_semantically_invalid_job() -> None:
    job = load(SIMPLE)
    data = job.model_dump(by_alias=True, exclude_unset=True)
    del data["prerequisites"]
    broken = JobProtocol.model_validate(data)
    with pytest.raises(InvalidProtocol):
        render(broken, username="alice")


def test_masked_config() -> None:
    job = load(SIMPLE)
    config = masked_config(job)
    assert config["secrets"] == "******"
    assert config["taskRoles"]["worker"]["resourcePerInstance"]["memoryMB"] == 8192
    assert "instances" not in config["taskRoles"]["ps"]  # as submitted, defaults not invented
    assert job.secrets == {"token": "s3cret"}  # the job itself is untouched


def test_masked_config_without_secrets() -> None:
    job = load(SIMPLE.replace("secrets: {token: s3cret}\n", ""))
    assert "secrets" not in masked_config(job)


def test_mask_secrets_variants() -> None:
    text = "name: a\nsecrets:\n  pw: x\n  nested:\n\n    - 1\n# comment\nsecrets_other: keep\n"
    assert mask_secrets(text) == 'name: a\nsecrets: "******"\nsecrets_other: keep\n'
    assert mask_secrets("a: 1\r\nsecrets: {pw: x}\r\nb: 2\r\n") == 'a: 1\r\nsecrets: "******"\r\nb: 2\r\n'
    assert mask_secrets("a:\n  secrets: nested-not-top-level\n") == "a:\n  secrets: nested-not-top-level\n"
    assert mask_secrets("secrets:\n- a\n- b\n") == 'secrets: "******"\n'
    assert parse(mask_secrets(SIMPLE))["secrets"] == "******"


@needs_reference
def test_tensorflow_cifar10_example() -> None:
    job = load((JOBS / "marketplace-v2/tensorflow-cifar10.yaml").read_text())
    rendered = render(job, username="alice")
    assert set(rendered.task_roles) == {"worker", "psserver"}
    worker = rendered.task_roles["worker"]
    assert worker.docker_image == "openpai/pai.example.tensorflow"
    lines = worker.entrypoint.split("\n")
    assert lines[1] == (
        "wget -qO- https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz | tar xvz && mv cifar-10-batches-py data_cifar10"
    )  # deployment preCommand rendered with $data.uri[0] and $data.name
    assert lines[3] == "cd script_tensorflow_cnnbenchmarks/scripts/tf_cnn_benchmarks"
    assert lines[4].endswith(
        "--train_dir=$PAI_WORK_DIR/output_tensorflow_cifar10_model --model=resnet20 --batch_size=32"
    )
    assert "<%" not in worker.entrypoint


@needs_reference
def test_pytorch_mnist_example_has_no_unresolved_parameters() -> None:
    job = load((JOBS / "marketplace-v2/pytorch-mnist.yaml").read_text())
    for role in render(job, username="alice").task_roles.values():
        assert "$parameters" not in role.entrypoint


@needs_reference
@pytest.mark.parametrize(
    "rel", ["docs/prerequisites-example.yaml", "openpai-runtime-tests/cmd_with_prerequisites_test_job.yaml"]
)
def test_prerequisite_plugin_examples(rel: str) -> None:
    job = load((JOBS / rel).read_text())
    plugin_prereqs = [p for p in job.prerequisites or [] if getattr(p, "plugin", None)]
    assert plugin_prereqs and all(p.callbacks for p in plugin_prereqs)  # type: ignore[union-attr]
    role = next(iter(render(job, username="u").task_roles.values()))
    assert role.prerequisites


def test_render_does_not_mutate_job() -> None:
    job = load(SIMPLE)
    before = copy.deepcopy(job.model_dump())
    render(job, username="alice")
    assert job.model_dump() == before
