"""Job arrays: one job document, N jobs of a parameter sweep (Slurm's ``--array``), pure.

An array spec names the indices — ``0-9999``, ``0-99:2`` (a step), ``1,3,5-7`` (a list of both),
whitespace ignored — and every index becomes a job of its own, with its own state and retries:

* its name is ``<name>-<index>`` (``sweep-17``);
* ``PAI_ARRAY_INDEX`` (the index), ``PAI_ARRAY_COUNT`` (how many elements) and ``PAI_ARRAY_NAME``
  (the document's own name) reach the commands three ways, so that every habit works:

  1. as environment variables: each task role's commands begin with
     ``export PAI_ARRAY_INDEX=17 PAI_ARRAY_COUNT=100 PAI_ARRAY_NAME=sweep`` (visible in the stored
     config), so ``$PAI_ARRAY_INDEX`` in a command and ``os.environ`` in a program read it;
  2. as text: ``${PAI_ARRAY_INDEX}`` (braces required) in a task role's ``commands`` is replaced
     by the value before the job is stored, so it works inside single quotes too;
  3. as parameters: ``<% $parameters.PAI_ARRAY_INDEX %>`` renders the value, like any parameter.

  Deployments' ``preCommands`` run before the ``export`` line: they see only forms 2 and 3.

Cost: a sweep of 100,000 must be accepted in seconds, so the document is validated and rendered
**once**, for a template element whose index is :data:`INDEX_TOKEN`; each element is then that
template with the token replaced (names, commands, entrypoints, config text): string replaces and
shallow copies, no YAML, no pydantic. What is stored per element (its ``protocol`` mapping) is
exactly what rendering would have produced from scratch, so a restart, which re-renders every job
from its stored mapping, runs the same commands (``tests/protocol/test_arrays.py`` holds this).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import yaml

from .errors import InvalidProtocol, ProtocolError
from .limits import DEFAULT_LIMITS, Limits
from .models import NAME_MAX_LENGTH
from .render import RenderedJob, render
from .secrets import masked_config
from .validate import load_dict

__all__ = [
    "ARRAY_VARIABLES",
    "DEFAULT_MAX_ARRAY_SIZE",
    "INDEX_TOKEN",
    "ArrayElement",
    "InvalidArraySpec",
    "JobArray",
    "element_document",
    "element_name",
    "parse_array_spec",
]

#: The largest array accepted unless the server says otherwise (``PaiHub.max_array_size``).
DEFAULT_MAX_ARRAY_SIZE = 10_000
INDEX, COUNT, NAME = "PAI_ARRAY_INDEX", "PAI_ARRAY_COUNT", "PAI_ARRAY_NAME"
ARRAY_VARIABLES = (INDEX, COUNT, NAME)
#: Stands for the index in the template element; a valid name part, and text no job contains.
INDEX_TOKEN = "__pai_array_index__"

_PART_RE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


class InvalidArraySpec(ValueError):
    """The array spec cannot be read or is too large; the message names the part and the fix."""


def parse_array_spec(spec: str, max_size: int = DEFAULT_MAX_ARRAY_SIZE) -> list[int]:
    """The indices of ``spec`` (``0-9999``, ``0-99:2``, ``1,3,5-7``), ascending, each once.

    The count is computed per range before anything is materialised, so ``0-999999999`` is refused
    at once rather than after building a billion integers."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArraySpec("expected indices such as 0-9999, 0-99:2 or 1,3,5-7")
    ranges: list[range] = []
    total = 0
    for part in spec.replace(" ", "").split(","):
        match = _PART_RE.match(part)
        if match is None:
            raise InvalidArraySpec(f"{part!r} is not an index, a range START-END or a stepped range "
                                   "START-END:STEP (e.g. 0-9999, 0-99:2, 1,3,5-7)")
        start = int(match[1])
        end = int(match[2]) if match[2] is not None else start
        step = int(match[3]) if match[3] is not None else 1
        if end < start:
            raise InvalidArraySpec(f"{part!r}: the range ends before it starts; write {end}-{start}")
        if step < 1:
            raise InvalidArraySpec(f"{part!r}: the step must be at least 1")
        indices = range(start, end + 1, step)
        total += len(indices)
        if total > max_size:
            raise InvalidArraySpec(f"more than {max_size} elements; submit at most {max_size} per array "
                                   "(the server's PaiHub.max_array_size) and split the rest")
        ranges.append(indices)
    if len(ranges) == 1:
        return list(ranges[0])
    return sorted({i for r in ranges for i in r})


def element_name(name: str, index: int | str) -> str:
    """An element's job name: ``<name>-<index>``, as Slurm's ``<jobid>_<index>``."""
    return f"{name}-{index}"


def element_document(doc: dict[str, Any], index: int | str, count: int) -> dict[str, Any]:
    """One element's job document: ``doc`` with its name, parameters and commands for ``index``.

    ``doc`` is not changed; only the parts that differ are copied (the rest is shared)."""
    base = str(doc["name"])
    values = {INDEX: str(index), COUNT: str(count), NAME: base}
    out = dict(doc)
    out["name"] = element_name(base, index)
    out["parameters"] = {**(doc.get("parameters") or {}), INDEX: index, COUNT: count, NAME: base}
    export = "export " + " ".join(f"{k}={v}" for k, v in values.items())
    roles = {}
    for role_name, role in (doc.get("taskRoles") or {}).items():
        role = dict(role)
        role["commands"] = [export, *(_substitute(c, values) for c in role.get("commands") or [])]
        roles[role_name] = role
    out["taskRoles"] = roles
    return out


def _substitute(command: Any, values: dict[str, str]) -> Any:
    if not isinstance(command, str) or "${PAI_ARRAY_" not in command:
        return command
    for key, value in values.items():
        command = command.replace(f"${{{key}}}", value)
    return command


@dataclasses.dataclass(frozen=True)
class ArrayElement:
    """What the API needs to store one element: its name, the masked document (``JobRecord.protocol``),
    the config text shown by ``GET .../config`` and the rendered plan the scheduler and launcher use."""

    index: int
    name: str
    protocol: dict[str, Any]
    config_yaml: str
    plan: RenderedJob


class JobArray:
    """A job document validated once, and its elements derived from it cheaply.

    Raises :class:`InvalidProtocol` (errors name the document's own fields) when the document is
    invalid, uses a reserved parameter name, or gives elements names longer than allowed."""

    def __init__(self, doc: dict[str, Any], indices: list[int], *, username: str,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        parsed = load_dict(doc, limits)  # the user's document: errors name their fields, not the template's
        _check_array_fits(parsed.name, parsed.parameters or {}, indices)
        self.indices = indices
        self.count = len(indices)
        secrets = dict(parsed.secrets or {})
        masked = masked_config(parsed)
        self.template_protocol = element_document(masked, INDEX_TOKEN, self.count)
        # the template element is rendered with its secrets, as a single job is; only the
        # masked mapping is stored
        full = dict(self.template_protocol, name=parsed.name)  # names are set per element, not rendered
        if secrets:
            full["secrets"] = secrets
        self.template_plan = render(load_dict(full, limits), username=username, limits=limits)
        self.name = parsed.name
        self.template_config = yaml.dump(self.template_protocol, Dumper=_Dumper, sort_keys=False,
                                         allow_unicode=True, width=1 << 16)

    def template_document(self) -> dict[str, Any]:
        """The template element under the document's own name, secrets included: the one document
        the server's per-job checks (virtual cluster, priority, capacity) need to see for the array."""
        doc = dict(self.template_protocol, name=self.name)
        doc.pop("secrets", None)
        if self.template_plan.secrets:
            doc["secrets"] = dict(self.template_plan.secrets)
        return doc

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[ArrayElement]:
        return (self.element(i) for i in self.indices)

    def element(self, index: int) -> ArrayElement:
        token, value = INDEX_TOKEN, str(index)
        plan = self.template_plan
        name = element_name(self.name, index)
        roles = {
            key: dataclasses.replace(role, entrypoint=role.entrypoint.replace(token, value))
            for key, role in plan.task_roles.items()
        }
        element_plan = dataclasses.replace(plan, name=name, framework_name=f"{plan.username}~{name}", task_roles=roles)
        protocol = _replace_token(self.template_protocol, value, index)
        return ArrayElement(index, name, protocol, self.template_config.replace(token, value), element_plan)


def _replace_token(template: dict[str, Any], value: str, index: int) -> dict[str, Any]:
    """The template element's mapping for ``index``: the token replaced where
    :func:`element_document` put it (name, the index parameter, every role's commands)."""
    out = dict(template)
    out["name"] = template["name"].replace(INDEX_TOKEN, value)
    out["parameters"] = {**template["parameters"], INDEX: index}
    out["taskRoles"] = {
        key: {**role, "commands": [c.replace(INDEX_TOKEN, value) if isinstance(c, str) else c
                                   for c in role["commands"]]}
        for key, role in template["taskRoles"].items()
    }
    return out


def _check_array_fits(name: str, parameters: dict[str, Any], indices: list[int]) -> None:
    errors = []
    longest = element_name(name, indices[-1]) if indices else name
    if len(longest) > NAME_MAX_LENGTH:
        errors.append(ProtocolError("name", f"array element names such as {longest[:40]}... would be longer than "
                                            f"{NAME_MAX_LENGTH} characters; shorten the name"))
    for key in ARRAY_VARIABLES:
        if key in parameters:
            errors.append(ProtocolError(f"parameters.{key}", "is set for each array element by the platform; "
                                                             "rename this parameter"))
    if errors:
        raise InvalidProtocol(errors)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """The config text of elements: the C dumper when present (one dump per array, not per element)."""
