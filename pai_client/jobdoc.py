"""One definition of an OpenPAI job document (protocol v2), built from a small description.

Every front door that writes a job instead of taking one from the user builds it here: the
``%%pai submit`` magic (:mod:`pai_magics.jobspec`), the experiments' trial launcher
(``pai_hub/experiments/launcher.py``), and the notebook job of PaiSpawner; the Lab's TypeScript
builder is held to the same golden cases (``tests/data/job_documents.json``).

Standard library only, and importable by file path without the rest of :mod:`pai_client`: the
trial launcher runs inside NNI's own virtual environment, where httpx and pai_client are absent
(it loads this file with ``importlib.util.spec_from_file_location``).

The description, as data (``JobDescription.from_json``; the golden file's ``description``)::

    {"name": "hello",                      # the job's name
     "image": "python:3.11",               # the image's URI (prerequisite "image"), or
     "imageItem": "my-image@2",            # a marketplace dockerimage item instead
     "virtualCluster": "default",          # -> defaults.virtualCluster
     "retries": 0,                         # -> jobRetryCount (left out when not given)
     "parameters": {}, "secrets": {},      # as in the protocol (left out when empty)
     "prerequisites": [{...}],             # more prerequisites, as written in a job
     "extras": {},                         # merged into extras
     "debugMinutes": 5,                    # -> extras.debugReservation.minutes
     "roles": [{"name": "worker", "instances": 1, "commands": ["..."], "cpu": 1, "memoryMB": 1024,
                "gpu": 0, "ports": {"http": 1}, "sku": "V100",   # -> extras.hivedScheduler
                "prerequisites": ["data-name"]}]}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

IMAGE = "image"  # the name of the job's docker image prerequisite


@dataclass
class RoleDescription:
    """One task role: ``instances`` tasks (one gang) running ``commands`` with these resources."""

    name: str
    commands: list[str]
    instances: int = 1
    cpu: int = 1
    memory_mb: int = 1024
    gpu: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    sku: str | None = None  # HiveD skuType of the role's tasks
    prerequisites: list[str] = field(default_factory=list)  # names of the job's data/script prerequisites

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoleDescription:
        return cls(name=data["name"], commands=list(data["commands"]), instances=int(data.get("instances", 1)),
                   cpu=int(data.get("cpu", 1)), memory_mb=int(data.get("memoryMB", 1024)), gpu=int(data.get("gpu", 0)),
                   ports=dict(data.get("ports") or {}), sku=data.get("sku"),
                   prerequisites=list(data.get("prerequisites") or []))


@dataclass
class JobDescription:
    """What a job is made of; :func:`build` writes it as a protocol v2 document."""

    name: str
    roles: list[RoleDescription]
    image: str = "python:3.11"
    image_item: str | None = None  # a marketplace dockerimage item (``name[@version]``) instead of ``image``
    virtual_cluster: str | None = None
    retries: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)
    prerequisites: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    debug_minutes: float = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobDescription:
        return cls(name=data["name"], roles=[RoleDescription.from_json(r) for r in data["roles"]],
                   image=data.get("image", "python:3.11"), image_item=data.get("imageItem"),
                   virtual_cluster=data.get("virtualCluster"), retries=data.get("retries"),
                   parameters=dict(data.get("parameters") or {}), secrets=dict(data.get("secrets") or {}),
                   prerequisites=list(data.get("prerequisites") or []), extras=dict(data.get("extras") or {}),
                   debug_minutes=data.get("debugMinutes", 0))


def _role(role: RoleDescription) -> dict[str, Any]:
    resources: dict[str, Any] = {"cpu": role.cpu, "memoryMB": role.memory_mb, "gpu": role.gpu}
    if role.ports:
        resources["ports"] = dict(role.ports)
    out: dict[str, Any] = {"instances": role.instances, "dockerImage": IMAGE, "resourcePerInstance": resources,
                           "commands": list(role.commands)}
    if role.prerequisites:
        out["prerequisites"] = list(role.prerequisites)
    return out


def build(job: JobDescription) -> dict[str, Any]:
    """The protocol v2 document (a mapping, keys in the order a person reads them)."""
    image: dict[str, Any] = {"name": IMAGE, "type": "dockerimage"}
    image.update({"marketplace": job.image_item} if job.image_item else {"uri": job.image})
    doc: dict[str, Any] = {"protocolVersion": 2, "name": job.name, "type": "job"}
    if job.retries is not None:
        doc["jobRetryCount"] = job.retries
    if job.parameters:
        doc["parameters"] = copy.deepcopy(job.parameters)
    doc["prerequisites"] = [image, *copy.deepcopy(job.prerequisites)]
    doc["taskRoles"] = {role.name: _role(role) for role in job.roles}
    if job.virtual_cluster:
        doc["defaults"] = {"virtualCluster": job.virtual_cluster}
    if job.secrets:
        doc["secrets"] = copy.deepcopy(job.secrets)
    extras = copy.deepcopy(job.extras)
    skus = {role.name: {"skuType": role.sku} for role in job.roles if role.sku}
    if skus:
        extras["hivedScheduler"] = {**extras.get("hivedScheduler", {}), "taskRoles": skus}
    if job.debug_minutes:
        extras["debugReservation"] = {"minutes": job.debug_minutes}
    if extras:
        doc["extras"] = extras
    return doc
