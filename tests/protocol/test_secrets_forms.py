"""Secrets masked in every form a job can be written in (issue 17): what is secret is decided on the
parsed document, so the stored config shown to admins never holds a secret value, however the
``secrets`` key was spelled. Each form also keeps everything else in the document unchanged."""

from __future__ import annotations

import json

import pytest

from pai_hub.protocol import MASK, load, mask_secrets, parse

PASSWORD = "hunter2-Zq8"

JOB = {
    "protocolVersion": 2, "name": "j", "type": "job",
    "prerequisites": [{"name": "image", "type": "dockerimage", "uri": "python:3.11"}],
    "taskRoles": {"worker": {"instances": 1, "dockerImage": "image", "commands": ["echo <% $secrets.pw %>"],
                             "resourcePerInstance": {"cpu": 1, "memoryMB": 64, "gpu": 0}}},
}
BODY = """protocolVersion: 2
name: j
type: job
prerequisites:
  - {name: image, type: dockerimage, uri: python:3.11}
taskRoles:
  worker:
    instances: 1
    dockerImage: image
    resourcePerInstance: {cpu: 1, memoryMB: 64, gpu: 0}
    commands: ["echo <% $secrets.pw %>"]
"""

FORMS = {
    "block": BODY + f"secrets:\n  pw: {PASSWORD}\n",
    "block-middle": BODY.replace("type: job\n", f"type: job\nsecrets:\n  pw: {PASSWORD}\n  # a comment\n"),
    "json": json.dumps({**JOB, "secrets": {"pw": PASSWORD}}),
    "json-pretty": json.dumps({"secrets": {"pw": PASSWORD}, **JOB}, indent=2),
    "flow": BODY + f"secrets: {{pw: {PASSWORD}}}\n",
    "flow-multiline": BODY + f"secrets: {{\n    pw:\n      {PASSWORD}}}\n",
    "double-quoted-key": BODY + f'"secrets":\n  pw: {PASSWORD}\n',
    "single-quoted-key": BODY + f"'secrets': {{pw: {PASSWORD}}}\n",
    "escaped-key": BODY + f'"secr\\x65ts": {{pw: {PASSWORD}}}\n',
    "tagged-key": BODY + f"!!str secrets:\n  pw: {PASSWORD}\n",
    "explicit-key": BODY + f"? secrets\n: pw: {PASSWORD}\n",
    "bom": "\ufeff" + f"secrets:\n  pw: {PASSWORD}\n" + BODY,
    "crlf": (BODY + f"secrets:\n  pw: {PASSWORD}\n").replace("\n", "\r\n"),
    "crlf-flow": (BODY + f"secrets: {{pw: {PASSWORD}}}\n").replace("\n", "\r\n"),
    "anchor-reused": BODY.replace("type: job\n", f"type: job\nsecrets: &s\n  pw: &p {PASSWORD}\n")
    + "description: *p\nextras: {copy: *s}\n",
    "anchor-before": f"parameters: {{pw: &p {PASSWORD}}}\n" + BODY + "secrets: {pw: *p}\n",
    "merge-key": BODY + f"extras:\n  base: &b {{secrets: {{pw: {PASSWORD}}}}}\n<<: *b\n",
    "document-marker": "--- \n" + BODY + f"secrets:\n  pw: {PASSWORD}\n...\n",
    "indented-document": "".join("  " + line + "\n" for line in (BODY + f"secrets:\n  pw: {PASSWORD}").splitlines()),
    "nested-secrets": BODY + f"secrets:\n  registry:\n    - user: u\n      password: {PASSWORD}\n",
    "literal-block": BODY + f"secrets:\n  pw: |\n    {PASSWORD}\n",
}


@pytest.mark.parametrize("form", FORMS)
def test_secret_masked(form: str) -> None:
    text = FORMS[form]
    job = load(text)
    assert job.secrets, "the form must really carry a secret"
    masked = mask_secrets(text)
    assert PASSWORD not in masked
    assert parse(masked)["secrets"] == MASK
    before, after = parse(text), parse(masked)
    for key in before:
        if key != "secrets" and PASSWORD not in json.dumps(before[key]):
            assert after[key] == before[key], f"{key} changed"


def test_plain_block_keeps_the_users_text() -> None:
    text = BODY.replace("type: job\n", "type: job  # mine\nsecrets:\n  pw: x\n")
    assert mask_secrets(text) == BODY.replace("type: job\n", f'type: job  # mine\nsecrets: "{MASK}"\n')


def test_text_without_secrets_is_unchanged() -> None:
    text = BODY + "description: 'secrets: none here'\nextras: {secrets: nested-is-not-top-level}\n"
    assert mask_secrets(text) == text


def test_the_parsed_document_can_be_handed_in() -> None:
    text = FORMS["json"]
    assert mask_secrets(text, parsed=parse(text)) == mask_secrets(text)
    assert PASSWORD not in mask_secrets(text, parsed=parse(text))
