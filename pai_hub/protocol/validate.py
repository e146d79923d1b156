"""Validation of a parsed job protocol: schema errors, then OpenPAI's semantic checks.

Two stages, as in OpenPAI's REST server (``protocolValidate``):

1. :func:`validate_structure` — the pydantic models (which mirror the server's Ajv schema) with
   pydantic's error list rewritten into :class:`ProtocolError` objects that name the field in
   dotted form and say what was expected;
2. :func:`validate_semantics` — what a schema cannot express: unique prerequisite names per type,
   unique deployment names, references from task roles to prerequisites, the default deployment,
   plus the #5145 ``require`` checks (known names, no cycles) and PAI Hub's own check that
   resource counts are not negative, and the cluster-independent checks of
   ``extras.hivedScheduler`` (:mod:`.hived`).

Stage 2 only runs on a structurally valid document, exactly like OpenPAI; :func:`validate` returns
the errors of the first stage that fails, or ``[]``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .errors import InvalidProtocol, ProtocolError
from .field_errors import format_path
from .hived import hived_errors
from .limits import DEFAULT_LIMITS, Limits, name_list
from .models import (
    PREREQUISITE_TAGS,
    PREREQUISITE_TYPES,
    Callback,
    Completion,
    DeploymentTaskRole,
    DockerImagePrerequisite,
    JobProtocol,
    ResourcePerInstance,
    TaskRole,
    describe_value,
)

__all__ = ["count_errors", "format_path", "load_dict", "validate", "validate_semantics", "validate_structure"]

Loc = tuple[Any, ...]

# Shapes of error locations (role names / indices replaced by "*") whose model forbids extra keys.
_FORBIDDING_MODELS: dict[Loc, type] = {
    (): JobProtocol,
    ("taskRoles", "*"): TaskRole,
    ("taskRoles", "*", "resourcePerInstance"): ResourcePerInstance,
    ("taskRoles", "*", "completion"): Completion,
    ("prerequisites", "*", "dockerimage"): DockerImagePrerequisite,
    ("prerequisites", "*", "script", "callbacks", "*"): Callback,
    ("prerequisites", "*", "data", "callbacks", "*"): Callback,
    ("deployments", "*", "taskRoles", "*"): DeploymentTaskRole,
}


def _shape(loc: Loc) -> Loc:
    shape: list[Any] = []
    for i, part in enumerate(loc):
        parent = loc[i - 1] if i else None
        wildcard = isinstance(part, int) or (parent == "taskRoles" and i in (1, 3))
        shape.append("*" if wildcard else part)
    return tuple(shape)


def _allowed_fields(model: type) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]  # type: ignore[attr-defined]


def _strip_tag(loc: Loc) -> Loc:
    """Drop the union tag pydantic inserts after ``prerequisites[i]``."""
    if len(loc) > 2 and loc[0] == "prerequisites" and loc[2] in PREREQUISITE_TAGS:
        return loc[:2] + loc[3:]
    return loc


def _convert(err: dict[str, Any]) -> ProtocolError:
    kind: str = err["type"]
    loc: Loc = tuple(err["loc"])
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
    if kind == "extra_forbidden":
        model = _FORBIDDING_MODELS.get(_shape(loc[:-1]))
        allowed = f"; allowed: {', '.join(_allowed_fields(model))}" if model else ""
        return ProtocolError(format_path(_strip_tag(loc)), f"unknown field {loc[-1]!r}{allowed}")
    path = format_path(_strip_tag(loc))
    if kind.startswith("pai_"):
        return ProtocolError(path, str(ctx.get("message", err["msg"])))
    if kind == "missing":
        return ProtocolError(path, "required field missing")
    if kind == "literal_error":
        return ProtocolError(path, f"must be {ctx.get('expected')}, got {describe_value(value)}")
    if kind in ("list_type", "tuple_type"):
        return ProtocolError(path, f"must be a list, got {describe_value(value)}")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return ProtocolError(path, f"must be a mapping, got {describe_value(value)}")
    if kind == "too_short":
        noun = "entry" if isinstance(value, dict) else "item"
        plural = "entries" if noun == "entry" else "items"
        minimum = int(ctx.get("min_length", 1))
        return ProtocolError(path, f"must contain at least {minimum} {noun if minimum == 1 else plural}")
    allowed_types = ", ".join(repr(t) for t in PREREQUISITE_TYPES)
    if kind == "union_tag_not_found":
        if not isinstance(value, dict):
            return ProtocolError(path, f"must be a mapping, got {describe_value(value)}")
        return ProtocolError(f"{path}.type", f"required field missing (one of {allowed_types})")
    if kind == "union_tag_invalid":
        got = value.get("type") if isinstance(value, dict) else value
        return ProtocolError(f"{path}.type", f"must be one of {allowed_types}, got {describe_value(got)}")
    return ProtocolError(path, f"invalid value {describe_value(value)}: {err['msg']}")


def _declared_instances(role: Any) -> int | None:
    """A role's ``instances`` when it is an integer (or integral float / digit string, which the
    model accepts); ``None`` for anything the model itself will refuse."""
    value = role.get("instances", 1) if isinstance(role, dict) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 30:
        return int(value.strip())
    return None


def count_errors(doc: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> list[ProtocolError]:
    """Task roles, instances per role and total tasks over ``limits``: checked on the raw mapping by
    arithmetic, before any model (or one object per task) is built."""
    roles = doc.get("taskRoles")
    if not isinstance(roles, dict):
        return []
    if len(roles) > limits.max_task_roles:
        return [ProtocolError("taskRoles", f"{len(roles)} task roles, more than the limit of "
                                           f"{limits.max_task_roles} per job")]
    errors: list[ProtocolError] = []
    total = 0
    for name, role in roles.items():
        instances = _declared_instances(role)
        if instances is None:
            continue
        if instances > limits.max_instances:
            shown = f"{instances}" if instances < 10**15 else f"a {len(str(instances))}-digit number"
            errors.append(ProtocolError(f"taskRoles.{str(name)[:80]}.instances",
                                        f"{shown} instances, more than the limit of {limits.max_instances} "
                                        "per task role"))
        total += max(instances, 0)
    if not errors and total > limits.max_total_tasks:
        errors.append(ProtocolError("taskRoles", f"{total} tasks in all, more than the limit of "
                                                 f"{limits.max_total_tasks} per job"))
    return errors


def _structure(doc: Any, limits: Limits = DEFAULT_LIMITS) -> tuple[JobProtocol | None, list[ProtocolError]]:
    if not isinstance(doc, dict):
        return None, [ProtocolError("", f"job protocol must be a mapping, got {describe_value(doc)}")]
    too_many = count_errors(doc, limits)
    if too_many:
        return None, too_many
    try:
        return JobProtocol.model_validate(doc), []
    except ValidationError as exc:
        errors: list[ProtocolError] = []
        for err in exc.errors(include_url=False):
            converted = _convert(dict(err))
            if converted not in errors:
                errors.append(converted)
        return None, errors


def validate_structure(doc: Any, limits: Limits = DEFAULT_LIMITS) -> list[ProtocolError]:
    """Schema-level errors only (the pydantic models ≈ OpenPAI's Ajv schema), after the size limits."""
    return _structure(doc, limits)[1]


# --------------------------------------------------------------------------- semantic checks


def _prerequisite_errors(job: JobProtocol) -> list[ProtocolError]:
    errors: list[ProtocolError] = []
    first_seen: dict[tuple[str, str], int] = {}
    for i, prereq in enumerate(job.prerequisites or []):
        key = (prereq.type, prereq.name)
        if key in first_seen:
            errors.append(
                ProtocolError(
                    f"prerequisites[{i}].name",
                    f"duplicate {prereq.type} prerequisite {prereq.name!r} "
                    f"(already defined at prerequisites[{first_seen[key]}])",
                )
            )
        else:
            first_seen[key] = i
    return errors


def _require_errors(job: JobProtocol) -> list[ProtocolError]:
    """#5145: every ``require`` entry names a prerequisite, and ``require`` has no cycle."""
    prereqs = job.prerequisites or []
    known = {p.name for p in prereqs}
    errors: list[ProtocolError] = []
    graph: dict[str, list[str]] = {}
    for i, prereq in enumerate(prereqs):
        required = getattr(prereq, "require", None) or []
        edges = graph.setdefault(prereq.name, [])
        for k, name in enumerate(required):
            if name not in known:
                errors.append(
                    ProtocolError(
                        f"prerequisites[{i}].require[{k}]",
                        f"unknown prerequisite {name!r}; defined: {name_list(sorted(known))}",
                    )
                )
            elif name not in edges:
                edges.append(name)
    # Depth-first search; each cycle is reported once, at the first prerequisite (in file order) on it.
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    reported: set[frozenset[str]] = set()

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                members = frozenset(cycle)
                if members not in reported:
                    reported.add(members)
                    errors.append(
                        ProtocolError(f"prerequisites.{nxt}.require", f"cycle {' -> '.join(cycle)}")
                    )
            elif state.get(nxt) is None:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for prereq in prereqs:
        if state.get(prereq.name) is None:
            visit(prereq.name, [])
    return errors


def _deployment_errors(job: JobProtocol) -> list[ProtocolError]:
    errors: list[ProtocolError] = []
    first_seen: dict[str, int] = {}
    for i, deployment in enumerate(job.deployments or []):
        if deployment.name in first_seen:
            errors.append(
                ProtocolError(
                    f"deployments[{i}].name",
                    f"duplicate deployment {deployment.name!r} "
                    f"(already defined at deployments[{first_seen[deployment.name]}])",
                )
            )
        else:
            first_seen[deployment.name] = i
    wanted = job.defaults.deployment if job.defaults else None
    if wanted is not None and wanted not in first_seen:
        defined = name_list(first_seen)
        errors.append(
            ProtocolError("defaults.deployment", f"no deployment named {wanted!r}; defined: {defined}")
        )
    return errors


def _task_role_errors(job: JobProtocol) -> list[ProtocolError]:
    errors: list[ProtocolError] = []
    all_names = {p.name for p in job.prerequisites or []}
    by_type = {kind: set(job.prerequisites_of_type(kind)) for kind in PREREQUISITE_TYPES}
    for role_name, role in job.task_roles.items():
        base = f"taskRoles.{role_name}"
        for k, name in enumerate(role.prerequisites or []):
            if name not in all_names:
                defined = name_list(sorted(all_names))
                errors.append(
                    ProtocolError(
                        f"{base}.prerequisites[{k}]", f"unknown prerequisite {name!r}; defined: {defined}"
                    )
                )
        for field, kind in (
            ("dockerImage", "dockerimage"),
            ("script", "script"),
            ("output", "output"),
            ("data", "data"),
        ):
            name = getattr(role, "docker_image" if field == "dockerImage" else field)
            if name is not None and name not in by_type[kind]:
                defined = name_list(sorted(by_type[kind]))
                errors.append(
                    ProtocolError(
                        f"{base}.{field}", f"no {kind} prerequisite named {name!r}; defined: {defined}"
                    )
                )
        resources = role.resource_per_instance
        for field, value in (
            ("cpu", resources.cpu),
            ("memoryMB", resources.memory_mb),
            ("gpu", resources.gpu),
        ):
            if value < 0:
                errors.append(
                    ProtocolError(
                        f"{base}.resourcePerInstance.{field}", f"must be an integer ≥ 0, got {value}"
                    )
                )
        for port, count in (resources.ports or {}).items():
            if count < 0:
                errors.append(
                    ProtocolError(
                        f"{base}.resourcePerInstance.ports.{port}", f"must be an integer ≥ 0, got {count}"
                    )
                )
    return errors


def validate_semantics(job: JobProtocol) -> list[ProtocolError]:
    """OpenPAI's post-schema checks plus the #5145 ``require`` checks, on a typed job."""
    return [
        *_prerequisite_errors(job),
        *_require_errors(job),
        *_deployment_errors(job),
        *_task_role_errors(job),
        *hived_errors(job.extras, job.task_roles),
    ]


def validate(doc: Any, limits: Limits = DEFAULT_LIMITS) -> list[ProtocolError]:
    """Every problem of a parsed job document; ``[]`` means OpenPAI-valid (modulo documented deviations)."""
    job, errors = _structure(doc, limits)
    if job is None:
        return errors
    return validate_semantics(job)


def load_dict(doc: Any, limits: Limits = DEFAULT_LIMITS) -> JobProtocol:
    """Validate a parsed document and return the typed job, or raise :class:`InvalidProtocol`
    (refusals of ``limits`` before any model is built)."""
    job, errors = _structure(doc, limits)
    if job is not None:
        errors = validate_semantics(job)
    if errors or job is None:
        raise InvalidProtocol(errors)
    return job
