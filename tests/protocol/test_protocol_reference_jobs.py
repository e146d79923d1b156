"""Every example job shipped with OpenPAI gets the verdict OpenPAI gives it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pai_hub.protocol import InvalidProtocol, ProtocolParseError, load, load_dict, parse, split_documents

REFERENCE = Path(__file__).resolve().parents[3] / "shared/reference"
JOBS = REFERENCE / "openpai/jobs"

pytestmark = pytest.mark.needs_reference(JOBS)

# Published files that are not valid YAML (see reference/openpai/README.md).
INVALID_YAML = {
    "docs/infiniband-horovod-example.yaml",
    "openpaimarketplace/cifar10-single-mul-DDP-nccl-Apex-mixed.yaml",
    "openpaimarketplace/cifar10-single-mul-DDP-nccl.yaml",
    "openpaimarketplace/cifar10-single-node-gpus-cpu-DP.yaml",
}
# Loadable, but rejected by OpenPAI's semantic checks.
SEMANTIC_FAILURES = {"openpai-runtime-tests/git_repo_test_job.yaml"}
# Two-document streams: job + secrets.
JOB_PLUS_SECRETS = {
    "openpai-runtime-tests/docker_image_auth.yaml",
    "openpai-runtime-tests/docker_image_acr_registry.yaml",
}
JINJA_TEMPLATE = "contrib/api-stress-test__job.yml"


def _job_files() -> list[str]:
    if not JOBS.is_dir():
        return []
    return sorted(str(p.relative_to(JOBS)) for p in JOBS.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_reference_folder_has_all_jobs() -> None:
    assert len(_job_files()) == 68


@pytest.mark.parametrize("rel", _job_files())
def test_reference_job_verdict(rel: str) -> None:
    text = (JOBS / rel).read_text()
    if rel == JINJA_TEMPLATE:
        text = text.replace("{{jobname}}", "stress_test_1").replace("{{vc}}", "default")
    if rel in INVALID_YAML:
        with pytest.raises(ProtocolParseError) as info:
            load(text)
        message = str(info.value)
        assert "line" in message and "column" in message and "\n" not in message
        return
    if rel in JOB_PLUS_SECRETS:
        docs = split_documents(text)
        assert len(docs) == 2
        with pytest.raises(ProtocolParseError, match="single YAML document"):
            parse(text)
        load_dict(docs[0])
        return
    if rel in SEMANTIC_FAILURES:
        with pytest.raises(InvalidProtocol) as info:
            load(text)
        assert any("prerequisite" in e.message for e in info.value.errors)
        return
    job = load(text)
    assert job.task_roles


def test_git_repo_job_errors_name_the_fields() -> None:
    with pytest.raises(InvalidProtocol) as info:
        load((JOBS / "openpai-runtime-tests/git_repo_test_job.yaml").read_text())
    paths = {e.path for e in info.value.errors}
    assert "taskRoles.worker.dockerImage" in paths
