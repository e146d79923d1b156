"""Turn a validated job into what the platform runs (OpenPAI's ``protocolRender`` + k8s.js defaults).

:func:`render` computes, once and in one place, every effective value that OpenPAI derives at
submission time — framework name, virtual cluster, gang allocation, completion thresholds, shm
size, reserved ports and above all each role's entrypoint — so that backends and schedulers never
re-interpret the raw protocol. ``$secrets`` references are deliberately left in the entrypoint: the
runtime resolves them inside the container (:func:`pai_runtime.render.render_command`), so
secret values never appear in stored commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidProtocol
from .limits import DEFAULT_LIMITS, Limits, RenderBudget
from .models import JobProtocol, TaskRole
from .prerequisites import plugin_invocations
from .template import render_template
from .validate import validate_semantics

__all__ = ["DEFAULT_SHM_MB", "DEFAULT_VIRTUAL_CLUSTER", "RenderedJob", "RenderedTaskRole", "render"]

DEFAULT_SHM_MB = 512
DEFAULT_VIRTUAL_CLUSTER = "default"
#: Ports OpenPAI always reserves for every task role (ssh plugin, http services).
ALWAYS_RESERVED_PORTS = ("ssh", "http")


@dataclass(frozen=True)
class RenderedTaskRole:
    """One task role with every OpenPAI default applied."""

    name: str
    instances: int
    cpu: int
    memory_mb: int
    gpu: int
    shm_mb: int
    ports: dict[str, int]
    #: Failed instances that fail the role; ``-1`` means never.
    min_failed: int
    #: Succeeded instances that succeed the role; ``-1`` means wait for all.
    min_succeeded: int
    task_retry_count: int
    entrypoint: str
    prerequisites: list[str]
    docker_image: str | None
    #: Registry credentials of the role's docker image with ``$secrets`` resolved, if any.
    docker_auth: dict[str, str] | None = None
    infiniband: bool = False


@dataclass(frozen=True)
class RenderedJob:
    """A job ready for scheduling: effective values plus the validated protocol it came from."""

    name: str
    username: str
    framework_name: str
    virtual_cluster: str
    job_retry_count: int
    gang_allocation: bool
    priority_class: str | None
    task_roles: dict[str, RenderedTaskRole]
    secrets: dict[str, Any]
    protocol: JobProtocol = field(repr=False)


def _dump(model: Any) -> dict[str, Any] | None:
    return model.model_dump(by_alias=True, exclude_unset=True) if model is not None else None


def _template_context(job: JobProtocol, role: TaskRole) -> dict[str, Any]:
    context: dict[str, Any] = {"$parameters": job.parameters or {}}
    for kind, name in (("script", role.script), ("output", role.output), ("data", role.data)):
        if name is not None:
            context[f"${kind}"] = _dump(job.prerequisites_of_type(kind).get(name))
    return context


def _entrypoint(job: JobProtocol, role_name: str, role: TaskRole, budget: RenderBudget) -> str:
    deployment = job.deployment()
    extra = deployment.task_roles.get(role_name) if deployment is not None else None
    commands = [*(extra.pre_commands or [] if extra else []), *role.commands]
    if extra is not None:
        commands += extra.post_commands or []
    script = "\n".join(command.strip() for command in commands)
    return render_template(script, _template_context(job, role), budget=budget, where=f"taskRoles.{role_name}.commands")


def _docker_auth(job: JobProtocol, role: TaskRole, budget: RenderBudget) -> tuple[str | None, dict[str, str] | None]:
    image = job.prerequisites_of_type("dockerimage").get(role.docker_image)
    if image is None:
        return None, None
    auth = image.auth  # type: ignore[union-attr]
    if auth is None:
        return image.uri, None  # type: ignore[union-attr]
    context = {"$secrets": job.secrets or {}}
    rendered = {
        key: render_template(value, context, budget=budget, where=f"prerequisites.{role.docker_image}.auth")
        for key, value in _dump(auth).items()  # type: ignore[union-attr]
        if isinstance(value, str)
    }
    return image.uri, rendered  # type: ignore[union-attr]


def _task_role(job: JobProtocol, name: str, role: TaskRole, budget: RenderBudget) -> RenderedTaskRole:
    resources = role.resource_per_instance
    ports = dict(resources.ports or {})
    for port in ALWAYS_RESERVED_PORTS:
        ports.setdefault(port, 1)
    completion = role.completion
    min_failed = completion.min_failed_instances if completion else None
    min_succeeded = completion.min_succeeded_instances if completion else None
    options = role.extra_container_options
    uri, auth = _docker_auth(job, role, budget)
    plugin_invocations(job, name, budget=budget)  # refused now, not when a task starts
    return RenderedTaskRole(
        name=name,
        instances=role.instances,
        cpu=resources.cpu,
        memory_mb=resources.memory_mb,
        gpu=resources.gpu,
        shm_mb=(options.shm_mb if options and options.shm_mb is not None else DEFAULT_SHM_MB),
        ports=ports,
        min_failed=min_failed or 1,  # OpenPAI: `value || 1`, so 0/null mean 1
        min_succeeded=min_succeeded or role.instances,  # `value || taskNumber`
        task_retry_count=role.task_retry_count or 0,
        entrypoint=_entrypoint(job, name, role, budget),
        prerequisites=list(role.prerequisites or []),
        docker_image=uri,
        docker_auth=auth,
        infiniband=bool(options and options.infiniband),
    )


def render(job: JobProtocol, *, username: str, limits: Limits = DEFAULT_LIMITS) -> RenderedJob:
    """Apply OpenPAI's submission-time rendering and defaults to a validated job.

    Raises :class:`InvalidProtocol` if the job fails the semantic checks (e.g. it was built by
    hand rather than through :func:`pai_hub.protocol.load`), and its subclass
    :class:`~pai_hub.protocol.limits.TooLarge` when the job's templates (commands, registry
    credentials, runtime plugin parameters, all roles together) render to more than
    ``limits.max_rendered_chars``.
    """
    budget = RenderBudget(limits.max_rendered_chars)
    errors = validate_semantics(job)
    if errors:
        raise InvalidProtocol(errors)
    extras = job.extras or {}
    hived = extras.get("hivedScheduler")
    priority = hived.get("jobPriorityClass") if isinstance(hived, dict) else None
    return RenderedJob(
        name=job.name,
        username=username,
        framework_name=f"{username}~{job.name}",
        virtual_cluster=(job.defaults.virtual_cluster if job.defaults else None) or DEFAULT_VIRTUAL_CLUSTER,
        job_retry_count=job.job_retry_count or 0,
        gang_allocation=extras.get("gangAllocation") is not False,  # OpenPAI: `=== false` disables
        priority_class=priority if isinstance(priority, str) else None,
        task_roles={name: _task_role(job, name, role, budget) for name, role in job.task_roles.items()},
        secrets=dict(job.secrets or {}),
        protocol=job,
    )
