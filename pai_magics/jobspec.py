"""A notebook cell as an OpenPAI protocol v2 job (``%%pai submit``).

The cell's code travels in the job itself: each task's command writes it to ``pai_cell.py`` in the
task's working directory with a quoted heredoc (readable in ``GET /jobs/{fw}/config``), writes the
working files named with ``--file`` beside it the same way, exports ``--param`` values as
environment variables, and runs ``<python> pai_cell.py``. Text the protocol's template engine
would touch (``<%``) or that contains the heredoc's end marker is carried base64-encoded instead.
Pure: no network, no disk except reading the named files.
"""

from __future__ import annotations

import base64
import re
import secrets
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pai_client import jobdoc
from pai_client.jobdoc import JobDescription, RoleDescription

ROLE = "worker"
CELL_FILE = "pai_cell.py"
MAX_FILE_BYTES = 256 * 1024  # a job's protocol is at most max_job_bytes (1 MiB by default)
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SpecError(ValueError):
    """A bad option or file: one line for the user."""


@dataclass
class CellJob:
    """What ``%%pai submit`` was asked for."""

    code: str
    name: str = ""
    vc: str | None = None
    sku: str | None = None
    gpu: int = 0
    cpu: int = 1
    memory_mb: int = 1024
    instances: int = 1
    image: str = "python:3.11"
    python: str = "python3"
    prereqs: list[dict[str, Any]] = field(default_factory=list)  # marketplace references, resolved by type
    params: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    debug_minutes: float = 0.0
    retries: int = 0
    cwd: str = "."


def default_name() -> str:
    return f"nb-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def parse_params(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not _ENV.match(key):
            raise SpecError(f"--param {item!r}: expected NAME=VALUE with NAME a variable name")
        out[key] = value
    return out


def _write_file(target: str, data: bytes) -> str:
    """A shell fragment that creates ``target`` with ``data``."""
    text = data.decode("utf-8", "strict") if _is_text(data) else None
    quoted = shlex.quote(target)
    mkdir = f"mkdir -p {shlex.quote(str(Path(target).parent))} && " if "/" in target else ""
    if text is not None and "<%" not in text and "%>" not in text:
        marker = "PAI_EOF"
        while marker in text:
            marker += "_" + secrets.token_hex(2)
        body = text if text.endswith("\n") else text + "\n"
        return f"{mkdir}cat > {quoted} <<'{marker}'\n{body}{marker}"
    encoded = base64.b64encode(data).decode()
    return f"{mkdir}echo {encoded} | base64 -d > {quoted}"


def _is_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\x00" not in text


def _files(job: CellJob) -> list[str]:
    out = []
    base = Path(job.cwd)
    for item in job.files:
        path = (base / item).resolve() if not Path(item).is_absolute() else Path(item)
        if not path.is_file():
            raise SpecError(f"--file {item}: no such file")
        data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            raise SpecError(f"--file {item}: {len(data)} bytes; at most {MAX_FILE_BYTES} travel with a job "
                            "(put larger data in a data prerequisite)")
        target = item if not Path(item).is_absolute() and ".." not in Path(item).parts else path.name
        out.append(_write_file(target, data))
    return out


def build(job: CellJob) -> dict[str, Any]:
    """The protocol document (a mapping) for ``job``, written by the one job-document builder
    (:mod:`pai_client.jobdoc`). A marketplace docker image item becomes the job's image."""
    name = job.name or default_name()
    if not _NAME.match(name):
        raise SpecError(f"--name {name!r}: letters, digits, '_' and '-' only")
    for value, flag, low in ((job.instances, "--instances", 1), (job.gpu, "--gpu", 0), (job.cpu, "--cpu", 1),
                             (job.memory_mb, "--memory", 1)):
        if value < low:
            raise SpecError(f"{flag} {value}: must be at least {low}")
    if not job.code.strip():
        raise SpecError("the cell is empty: write the code the job should run below %%pai submit")
    image_item: str | None = None
    prerequisites: list[dict[str, Any]] = []
    for ref in job.prereqs:
        kind = ref.get("type")
        if kind == "dockerimage":
            image_item = ref["marketplace"]
            continue
        prerequisites.append({"name": ref["name"], "marketplace": ref["marketplace"], **({"type": kind} if kind else {})})
    commands = [f"export {k}={shlex.quote(v)}" for k, v in job.params.items()]
    commands += _files(job)
    commands.append(_write_file(CELL_FILE, job.code.encode()))
    commands.append(f"exec {shlex.quote(job.python)} {CELL_FILE}")
    role = RoleDescription(ROLE, commands, instances=job.instances, cpu=job.cpu, memory_mb=job.memory_mb,
                           gpu=job.gpu, sku=job.sku, prerequisites=[p["name"] for p in prerequisites])
    return jobdoc.build(JobDescription(
        name=name, roles=[role], image=job.image, image_item=image_item, virtual_cluster=job.vc,
        retries=job.retries, parameters=dict(job.params), prerequisites=prerequisites,
        extras={"paiHub": {"submitFrom": "notebook"}}, debug_minutes=job.debug_minutes))
