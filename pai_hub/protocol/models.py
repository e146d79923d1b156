"""pydantic v2 models of OpenPAI job protocol v2.

The constraints mirror the Ajv schema that OpenPAI's REST server enforces
(``src/rest-server/src/config/v2/protocol.js``; transcribed in ``protocol-v2.schema.json``) so that
a job accepted there is accepted here and vice versa. Scalars are checked by small validators
instead of pydantic's coercion because the schema is strict: ``"4"`` is not an integer, ``null``
is not a string, ``true`` is not a number. Each validator raises an error whose message is already
written for humans; :mod:`pai_hub.protocol.validate` turns pydantic's error list into
:class:`~pai_hub.protocol.errors.ProtocolError` objects.

Deliberate deviations from OpenPAI (all listed in ``docs/protocol.md``):

* ``instances`` defaults to 1 (OpenPAI computes ``NaN`` GPUs when it is missing);
* ``taskRoles``, ``resourcePerInstance.ports`` and ``deployments[].taskRoles`` must be mappings
  (the server schema gives them no ``type``, so a string or list slips through Ajv);
* the #5145 prerequisite extension is typed: ``callbacks`` is a list of ``{event, commands}`` and
  ``failurePolicy`` is ``ignore``/``fail`` (OpenPAI accepts anything there);
* ``defaults.virtualCluster`` must be a string (not declared by the server schema);
* ``extraContainerOptions`` accepts a key literally named ``additionalProperties`` (rejected by
  OpenPAI only because of a typo in its schema).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag
from pydantic_core import PydanticCustomError

__all__ = [
    "CALLBACK_EVENTS",
    "NAME_PATTERN",
    "PREREQUISITE_TYPES",
    "ROLE_KEY_PATTERN",
    "Callback",
    "Completion",
    "DataPrerequisite",
    "Defaults",
    "Deployment",
    "DeploymentTaskRole",
    "DockerAuth",
    "DockerImagePrerequisite",
    "ExtraContainerOptions",
    "JobProtocol",
    "Prerequisite",
    "ResourcePerInstance",
    "ScriptPrerequisite",
    "TaskRole",
    "describe_value",
]

NAME_PATTERN = r"^[a-zA-Z0-9_-]+$"
ROLE_KEY_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
NAME_MAX_LENGTH = 255
PREREQUISITE_TYPES = ("script", "output", "data", "dockerimage")
#: #5145 event names, plus the names OpenPAI's ``cmd`` runtime plugin uses for the same moments.
CALLBACK_EVENTS = ("containerStart", "containerExit", "taskStarts", "taskSucceeds")

# JavaScript regexes: ``$`` does not match before a trailing newline, so use fullmatch.
_NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")
_ROLE_KEY_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def describe_value(value: Any) -> str:
    """Render a YAML value briefly for an error message (``'two'``, ``null``, ``a list``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    if isinstance(value, int) and abs(value) >= 10**40:
        return f"a {len(str(abs(value)))}-digit number"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__} ({str(value)[:40]})"


def _error(kind: str, message: str) -> PydanticCustomError:
    # The message is passed through a context placeholder so braces in user values stay literal.
    return PydanticCustomError(f"pai_{kind}", "{message}", {"message": message})


#: The largest integer a JavaScript number holds; past it js-yaml reads Infinity, which Ajv's
#: ``integer`` refuses (and arithmetic on it here would overflow a float).
_JS_MAX_INT = int(sys.float_info.max)


def _is_int(value: Any) -> bool:
    """JSON-schema ``integer`` as OpenPAI's Ajv sees it: an int or an integral float, never a bool,
    never one past a JavaScript number's range."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_JS_MAX_INT <= value <= _JS_MAX_INT
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _integer(minimum: int | None = None, nullable: bool = False) -> Callable[[Any], Any]:
    expected = "an integer" if minimum is None else f"an integer ≥ {minimum}"
    if nullable:
        expected += " or null"

    def check(value: Any) -> int | None:
        if value is None and nullable:
            return None
        if not _is_int(value):
            raise _error("int", f"must be {expected}, got {describe_value(value)}")
        number = int(value)
        if minimum is not None and number < minimum:
            raise _error("int", f"must be {expected}, got {describe_value(value)}")
        return number

    return check


def _of_type(kind: str, expected: str, *types: type) -> Callable[[Any], Any]:
    """A check for JSON-schema ``type``: the value must be one of ``types`` as it is, with no coercion
    (``true`` is a boolean, never a number)."""

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, types):
            raise _error(kind, f"must be {expected}, got {describe_value(value)}")
        return value

    return check


_string = _of_type("str", "a string", str)
_string_or_number = _of_type("str_or_number", "a string or a number", str, int, float)
_mapping = _of_type("mapping", "a mapping", dict)
_list = _of_type("list", "a list", list)


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise _error("name", f"must be a string, got {describe_value(value)}")
    if len(value) > NAME_MAX_LENGTH:
        raise _error("name", f"must be at most {NAME_MAX_LENGTH} characters long, got {len(value)}")
    if not _NAME_RE.fullmatch(value):
        raise _error(
            "name",
            f"must match {NAME_PATTERN} (letters, digits, '_' and '-'), got {describe_value(value)}",
        )
    return value


def _role_key(value: Any) -> str:
    if not isinstance(value, str) or not _ROLE_KEY_RE.fullmatch(value):
        raise _error(
            "key",
            f"name {describe_value(value)} must match {ROLE_KEY_PATTERN} "
            "(a letter or '_' followed by letters, digits and '_')",
        )
    return value


def _protocol_version(value: Any) -> str | int:
    if value == "2" or (_is_int(value) and value == 2):
        return "2" if isinstance(value, str) else 2
    raise _error("enum", f"must be 2 or '2', got {describe_value(value)}")


def _not_null(expected: str) -> Callable[[Any], Any]:
    """Absent is fine, explicit ``null`` is not (Ajv checks the type of every present key)."""

    def check(value: Any) -> Any:
        if value is None:
            raise _error("null", f"must be {expected}, got null")
        return value

    return check


Str = Annotated[str, BeforeValidator(_string)]
OptStr = Annotated[str | None, BeforeValidator(_string)]
OptStrOrNumber = Annotated[str | int | float | None, BeforeValidator(_string_or_number)]
Name = Annotated[str, BeforeValidator(_name)]
RoleKey = Annotated[str, BeforeValidator(_role_key)]
ProtocolVersion = Annotated[str | int | None, BeforeValidator(_protocol_version)]
StrList = Annotated[list[Str], BeforeValidator(_list)]
OptStrList = Annotated[list[Str] | None, BeforeValidator(_list)]
NonEmptyStrList = Annotated[list[Str], BeforeValidator(_list), Field(min_length=1)]
OptNonEmptyStrList = Annotated[list[Str] | None, BeforeValidator(_list), Field(min_length=1)]
AnyMapping = Annotated[dict[Any, Any] | None, BeforeValidator(_mapping)]


def _opt_model(expected: str = "a mapping") -> BeforeValidator:
    return BeforeValidator(_not_null(expected))


class _Model(BaseModel):
    """Common configuration: camelCase aliases as in the YAML, unknown keys forbidden."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", validate_default=False)


class _OpenModel(_Model):
    """A model whose schema object has no ``additionalProperties: false``: extra keys are kept."""

    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------- prerequisites


class Callback(_Model):
    """#5145: commands a prerequisite's plugin runs at a lifecycle event of the container."""

    event: Literal["containerStart", "containerExit", "taskStarts", "taskSucceeds"]
    commands: StrList = Field(default_factory=list)


class _PrerequisiteBase(_OpenModel):
    protocol_version: ProtocolVersion = Field(None, alias="protocolVersion")
    name: Name
    version: OptStrOrNumber = None
    contributor: OptStr = None
    description: OptStr = None


class _PluginPrerequisite(_PrerequisiteBase):
    """Fields of the #5145 extension shared by script/output/data prerequisites."""

    plugin: OptStr = None
    require: OptStrList = None
    callbacks: Annotated[list[Callback] | None, BeforeValidator(_list)] = None
    failure_policy: Annotated[Literal["ignore", "fail"] | None, _opt_model("'ignore' or 'fail'")] = Field(
        None, alias="failurePolicy"
    )

    @property
    def plugin_parameters(self) -> dict[str, Any]:
        """Free keys given to the runtime plugin besides the declared ones."""
        return dict(self.model_extra or {})


class ScriptPrerequisite(_PluginPrerequisite):
    """A ``script`` or ``output`` prerequisite: ``uri`` is a single string."""

    type: Literal["script", "output"]
    uri: OptStr = None


class DataPrerequisite(_PluginPrerequisite):
    """A ``data`` prerequisite: ``uri`` is a list of strings."""

    type: Literal["data"]
    uri: OptStrList = None


class DockerAuth(_OpenModel):
    """Registry credentials; the strings may reference ``<% $secrets.x %>``."""

    username: OptStr = None
    password: OptStr = None
    registryuri: OptStr = None


class DockerImagePrerequisite(_PrerequisiteBase):
    """A ``dockerimage`` prerequisite: ``uri`` is required and no other key is allowed."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["dockerimage"]
    uri: Str
    auth: Annotated[DockerAuth | None, _opt_model()] = None


def _prerequisite_tag(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None if not hasattr(value, "type") else _tag_for(value.type)
    if "type" not in value:
        return None
    return _tag_for(value["type"])


def _tag_for(kind: Any) -> str:
    if kind in ("script", "output") and isinstance(kind, str):
        return "script"
    if kind == "data" and isinstance(kind, str):
        return "data"
    if kind == "dockerimage" and isinstance(kind, str):
        return "dockerimage"
    return "invalid"


#: Union tag (as it appears in pydantic error locations) → variant model.
PREREQUISITE_TAGS: dict[str, type[_PrerequisiteBase]] = {
    "script": ScriptPrerequisite,
    "data": DataPrerequisite,
    "dockerimage": DockerImagePrerequisite,
}

Prerequisite = Annotated[
    Annotated[ScriptPrerequisite, Tag("script")]
    | Annotated[DataPrerequisite, Tag("data")]
    | Annotated[DockerImagePrerequisite, Tag("dockerimage")],
    Discriminator(_prerequisite_tag),
]

# --------------------------------------------------------------------------- task roles


class Completion(_Model):
    """When a task role counts as failed/succeeded (``null``/0 mean the defaults)."""

    min_failed_instances: Annotated[int | None, BeforeValidator(_integer(nullable=True))] = Field(
        None, alias="minFailedInstances"
    )
    min_succeeded_instances: Annotated[int | None, BeforeValidator(_integer(nullable=True))] = Field(
        None, alias="minSucceededInstances"
    )


class ExtraContainerOptions(_OpenModel):
    """Container tweaks; only ``shmMB`` is typed, other keys (``infiniband``) pass through."""

    shm_mb: Annotated[int | None, BeforeValidator(_integer())] = Field(None, alias="shmMB")

    @property
    def infiniband(self) -> bool:
        return bool((self.model_extra or {}).get("infiniband"))


class ResourcePerInstance(_Model):
    """Resources of one instance; ``ports`` maps a port label to how many ports to reserve."""

    cpu: Annotated[int, BeforeValidator(_integer())]
    memory_mb: Annotated[int, BeforeValidator(_integer())] = Field(alias="memoryMB")
    gpu: Annotated[int, BeforeValidator(_integer())]
    ports: Annotated[
        dict[RoleKey, Annotated[int, BeforeValidator(_integer())]] | None,
        BeforeValidator(_mapping),
        Field(min_length=1),
    ] = None


class TaskRole(_Model):
    """One ``taskRoles.<name>`` entry."""

    protocol_version: ProtocolVersion = Field(None, alias="protocolVersion")
    instances: Annotated[int, BeforeValidator(_integer(minimum=1))] = 1
    completion: Annotated[Completion | None, _opt_model()] = None
    task_retry_count: Annotated[int | None, BeforeValidator(_integer())] = Field(None, alias="taskRetryCount")
    prerequisites: OptStrList = None
    docker_image: Str = Field(alias="dockerImage")
    data: OptStr = None
    output: OptStr = None
    script: OptStr = None
    extra_container_options: Annotated[ExtraContainerOptions | None, _opt_model()] = Field(
        None, alias="extraContainerOptions"
    )
    resource_per_instance: Annotated[ResourcePerInstance, _opt_model()] = Field(alias="resourcePerInstance")
    commands: NonEmptyStrList


# --------------------------------------------------------------------------- deployments / defaults


class DeploymentTaskRole(_Model):
    """Commands a deployment adds before/after a task role's own ``commands``."""

    pre_commands: OptNonEmptyStrList = Field(None, alias="preCommands")
    post_commands: OptNonEmptyStrList = Field(None, alias="postCommands")


class Deployment(_OpenModel):
    """A named set of per-role pre/post commands; ``defaults.deployment`` picks the one applied."""

    protocol_version: ProtocolVersion = Field(None, alias="protocolVersion")
    name: Name
    task_roles: Annotated[
        dict[RoleKey, Annotated[DeploymentTaskRole, _opt_model()]],
        BeforeValidator(_mapping),
        Field(min_length=1),
    ] = Field(alias="taskRoles")


class Defaults(_OpenModel):
    """Submission defaults; keys other than these two are kept."""

    deployment: OptStr = None
    virtual_cluster: OptStr = Field(None, alias="virtualCluster")


# --------------------------------------------------------------------------- the job


class JobProtocol(_Model):
    """A whole OpenPAI protocol v2 job."""

    protocol_version: ProtocolVersion = Field(alias="protocolVersion")
    name: Name
    type: Annotated[Literal["job"], BeforeValidator(_string)]
    version: OptStrOrNumber = None
    contributor: OptStr = None
    description: OptStr = None
    prerequisites: Annotated[list[Prerequisite] | None, BeforeValidator(_list), Field(min_length=1)] = None
    parameters: AnyMapping = None
    secrets: AnyMapping = None
    job_retry_count: Annotated[int | None, BeforeValidator(_integer(minimum=0))] = Field(
        None, alias="jobRetryCount"
    )
    task_roles: Annotated[dict[RoleKey, TaskRole], BeforeValidator(_mapping), Field(min_length=1)] = Field(
        alias="taskRoles"
    )
    deployments: Annotated[list[Deployment] | None, BeforeValidator(_list), Field(min_length=1)] = None
    defaults: Annotated[Defaults | None, _opt_model()] = None
    extras: AnyMapping = None

    # ------------------------------------------------------------------ lookups used by render

    def prerequisites_of_type(self, kind: str) -> dict[str, Prerequisite]:
        """Prerequisites of one ``type`` keyed by name (OpenPAI's dict-by-type form)."""
        return {p.name: p for p in self.prerequisites or [] if p.type == kind}

    def deployment(self, name: str | None = None) -> Deployment | None:
        """The deployment called ``name`` (default: ``defaults.deployment``), or ``None``."""
        wanted = name if name is not None else (self.defaults.deployment if self.defaults else None)
        if wanted is None:
            return None
        return next((d for d in self.deployments or [] if d.name == wanted), None)
