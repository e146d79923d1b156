"""OpenPAI job protocol v2: parse, validate, template, render and mask job YAML.

Pure functions only (no I/O, no network, no clock), so the REST API, the CLI, the scheduler and
the tests all share one definition of what a job means::

    from pai_hub.protocol import load, render
    job = load(yaml_text)                 # raises InvalidProtocol listing every problem
    rendered = render(job, username="alice")
    rendered.task_roles["worker"].entrypoint
"""

from __future__ import annotations

from .errors import InvalidProtocol, ProtocolError, ProtocolParseError
from .limits import DEFAULT_LIMITS, NO_LIMITS, Limits, TooLarge
from .models import (
    Callback,
    Completion,
    DataPrerequisite,
    Defaults,
    Deployment,
    DeploymentTaskRole,
    DockerAuth,
    DockerImagePrerequisite,
    ExtraContainerOptions,
    JobProtocol,
    Prerequisite,
    ResourcePerInstance,
    ScriptPrerequisite,
    TaskRole,
)
from .parse import load_document, parse, split_documents
from .render import RenderedJob, RenderedTaskRole, render
from .secrets import MASK, mask_secrets, masked_config
from .template import render_secrets, render_template
from .validate import load_dict, validate, validate_semantics, validate_structure

__all__ = [
    "DEFAULT_LIMITS",
    "MASK",
    "NO_LIMITS",
    "Callback",
    "Completion",
    "DataPrerequisite",
    "Defaults",
    "Deployment",
    "DeploymentTaskRole",
    "DockerAuth",
    "DockerImagePrerequisite",
    "ExtraContainerOptions",
    "InvalidProtocol",
    "JobProtocol",
    "Limits",
    "Prerequisite",
    "ProtocolError",
    "ProtocolParseError",
    "RenderedJob",
    "RenderedTaskRole",
    "ResourcePerInstance",
    "ScriptPrerequisite",
    "TaskRole",
    "TooLarge",
    "check",
    "load",
    "load_dict",
    "load_document",
    "mask_secrets",
    "masked_config",
    "parse",
    "render",
    "render_secrets",
    "render_template",
    "split_documents",
    "validate",
    "validate_semantics",
    "validate_structure",
]


def load(text: str, limits: Limits = DEFAULT_LIMITS) -> JobProtocol:
    """Parse and validate job YAML; raises :class:`InvalidProtocol` (or its subclasses
    :class:`ProtocolParseError` for unreadable YAML, :class:`TooLarge` for a document over
    ``limits``) listing every problem."""
    return load_dict(parse(text, limits), limits)


def check(text: str, *, username: str, limits: Limits = DEFAULT_LIMITS) -> RenderedJob:
    """Every check of a submission that needs no cluster: parse, validate (``extras.hivedScheduler``
    included), render. ``pai job validate`` calls exactly this, and ``POST /api/v2/jobs`` runs the
    same three steps (with marketplace references resolved between parse and validate), so the two
    refuse the same documents; what depends on the cluster (the VC, SKUs, capacity) only the server
    can say (``pai job submit --dry-run``)."""
    return render(load(text, limits), username=username, limits=limits)
