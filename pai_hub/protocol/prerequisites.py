"""Prerequisites of a task role and the runtime plugins they turn into (OpenPAI #5145, notes §4.5).

* :func:`prerequisite_closure` — the prerequisites a task role uses: those it lists in
  ``prerequisites``, those its old-style ``data``/``script``/``output`` fields name, and everything
  they ``require``, required ones first.
* :func:`plugin_invocations` — what the runtime runs for a task of the role: one invocation per
  prerequisite of the closure that names a runtime plugin (or has callbacks: ``cmd`` is the default
  plugin), then each item of ``extras["com.microsoft.pai.runtimeplugin"]`` that applies to the role
  (OpenPAI's ``collect_plugin_configs`` order). The result is JSON-able and goes into the task spec
  (``TaskSpec.plugins``) unchanged.

References in parameters and callback commands are rendered here: ``<% $parameters.x %>`` (job
parameters), ``<% this.x %>`` (a field of the prerequisite or extras item itself, e.g. ``this.uri[0]``,
``this.name``; ``this.parameters.k`` is the item's ``parameters.k`` or, for a prerequisite, its free
key ``k``), and ``<% $script.x %>``/``<% $output.x %>``/``<% $data.x %>`` (the role's selections).
``<% $secrets.x %>`` references are kept: the runtime resolves them inside the task, so secret values
never enter stored specs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .limits import NO_LIMITS, RenderBudget
from .models import JobProtocol, Prerequisite
from .template import lookup, normalize_name, render_template

__all__ = [
    "PLUGIN_PREFIX",
    "RUNTIME_PLUGIN_EXTRAS_KEY",
    "plugin_invocations",
    "prerequisite_closure",
]

PLUGIN_PREFIX = "com.microsoft.pai.runtimeplugin."
RUNTIME_PLUGIN_EXTRAS_KEY = "com.microsoft.pai.runtimeplugin"
DEFAULT_PLUGIN = "cmd"
#: Keys of a prerequisite that are not plugin parameters (OpenPAI pops plugin/failurePolicy/type;
#: callbacks become the invocation's own field).
_NOT_PARAMETERS = ("plugin", "failurePolicy", "type", "callbacks")
_SINGLE_REF = re.compile(r"^\s*<%\s*([^%#^/>{&=!][^%]*?)\s*%>\s*$")


def _by_name(job: JobProtocol) -> dict[str, list[Prerequisite]]:
    found: dict[str, list[Prerequisite]] = {}
    for prereq in job.prerequisites or []:
        found.setdefault(prereq.name, []).append(prereq)
    return found


def _resolve(index: dict[str, list[Prerequisite]], name: str, kind: str | None = None) -> Prerequisite | None:
    """The prerequisite called ``name`` (names are unique per type): of type ``kind`` when given,
    else the first one that is not a docker image, else the docker image."""
    candidates = index.get(name) or []
    if kind is not None:
        return next((p for p in candidates if p.type == kind), None)
    return next((p for p in candidates if p.type != "dockerimage"), candidates[0] if candidates else None)


def prerequisite_closure(job: JobProtocol, role: str) -> list[Prerequisite]:
    """The prerequisites task role ``role`` uses, in dependency order.

    Starting points, in this order: the role's ``prerequisites`` list, then its ``data``, ``script``
    and ``output`` fields (each prerequisite once). Each is preceded by its ``require`` closure
    (depth first, ``require`` lists in their order), so a prerequisite always comes after what it
    requires and otherwise keeps the order in which it was listed. ``require`` cycles and unknown
    names are rejected by validation; here an unknown name is skipped and a cycle is cut.
    """
    task_role = job.task_roles[role]
    index = _by_name(job)
    starts: list[Prerequisite] = []
    for name in task_role.prerequisites or []:
        prereq = _resolve(index, name)
        if prereq is not None:
            starts.append(prereq)
    for kind in ("data", "script", "output"):
        name = getattr(task_role, kind)
        if name is not None:
            prereq = _resolve(index, name, kind)
            if prereq is not None:
                starts.append(prereq)
    ordered: list[Prerequisite] = []
    seen: set[int] = set()
    visiting: set[int] = set()

    def visit(prereq: Prerequisite) -> None:
        key = id(prereq)
        if key in seen or key in visiting:
            return
        visiting.add(key)
        for name in getattr(prereq, "require", None) or []:
            required = _resolve(index, name)
            if required is not None:
                visit(required)
        visiting.discard(key)
        seen.add(key)
        ordered.append(prereq)

    for prereq in starts:
        visit(prereq)
    return ordered


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True)


def _role_selections(job: JobProtocol, role: str) -> dict[str, Any]:
    task_role = job.task_roles[role]
    context: dict[str, Any] = {}
    for kind in ("script", "output", "data"):
        name = getattr(task_role, kind)
        if name is not None:
            prereq = job.prerequisites_of_type(kind).get(name)
            if prereq is not None:
                context[f"${kind}"] = _dump(prereq)
    return context


def _render(value: Any, context: Mapping[str, Any], budget: RenderBudget, where: str) -> Any:
    """Render references in every string of ``value``. A string that is exactly one reference to a
    non-string value becomes that value (``"<% $parameters.epochs %>"`` → ``10``), as OpenPAI's
    runtime re-reads rendered parameters as YAML."""
    if isinstance(value, str):
        if "<%" not in value:
            return value
        single = _SINGLE_REF.match(value)
        if single:
            resolved = lookup(context, normalize_name(single.group(1)))
            if resolved is not None and not isinstance(resolved, str):
                return resolved
        return render_template(value, context, strip=False, budget=budget, where=where)
    if isinstance(value, list):
        return [_render(v, context, budget, where) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, context, budget, where) for k, v in value.items()}
    return value


def _callbacks(raw: Any, context: Mapping[str, Any], budget: RenderBudget, where: str) -> list[dict[str, Any]]:
    out = []
    for callback in raw or []:
        if isinstance(callback, Mapping):
            out.append({"event": callback.get("event"),
                        "commands": [_render(str(c), context, budget, where)
                                     for c in callback.get("commands") or []]})
    return out


def _plugin_name(name: str) -> str:
    return name[len(PLUGIN_PREFIX):] if name.startswith(PLUGIN_PREFIX) else name


def plugin_invocations(job: JobProtocol, role: str, *, budget: RenderBudget | None = None) -> list[dict[str, Any]]:
    """The runtime plugin invocations of a task of ``role``, in the order the runtime starts them::

        [{"plugin": "cmd", "name": "install-git", "source": "prerequisite",
          "parameters": {...}, "failurePolicy": "fail", "callbacks": [{"event": ..., "commands": [...]}]}]

    * every prerequisite of :func:`prerequisite_closure` with a ``plugin`` (prefix
      ``com.microsoft.pai.runtimeplugin.`` removed) or with ``callbacks`` (plugin ``cmd``); its
      parameters are all its keys but ``plugin``, ``failurePolicy``, ``type`` and ``callbacks``;
    * then each item of ``extras["com.microsoft.pai.runtimeplugin"]`` whose ``taskroles`` (if any)
      contains ``role``; its ``callbacks`` parameter (cmd plugin) becomes the invocation's callbacks.

    ``failurePolicy`` defaults to ``fail``. Docker images and prerequisites without plugin or
    callbacks (plain data for templates) give no invocation. Rendering takes from ``budget`` when
    given (:func:`~pai_hub.protocol.render` passes the job's, so a huge parameter referenced many
    times is refused at submission); without one (a task starting) nothing is refused.
    """
    budget = budget if budget is not None else RenderBudget(NO_LIMITS.max_rendered_chars)
    base = {"$parameters": job.parameters or {}, **_role_selections(job, role)}
    invocations: list[dict[str, Any]] = []
    for prereq in prerequisite_closure(job, role):
        if prereq.type == "dockerimage":
            continue
        plugin = getattr(prereq, "plugin", None)
        raw_callbacks = [_dump(c) for c in getattr(prereq, "callbacks", None) or []]
        if plugin is None and not raw_callbacks:
            continue
        data = _dump(prereq)
        parameters = {k: v for k, v in data.items() if k not in _NOT_PARAMETERS}
        this = dict(data)
        if "parameters" not in this:
            this["parameters"] = {k: v for k, v in parameters.items()}
        context = {**base, "this": this}
        invocations.append({
            "plugin": _plugin_name(plugin or DEFAULT_PLUGIN),
            "name": prereq.name,
            "source": "prerequisite",
            "parameters": _render(parameters, context, budget, f"prerequisites.{prereq.name}"),
            "failurePolicy": getattr(prereq, "failure_policy", None) or "fail",
            "callbacks": _callbacks(raw_callbacks, context, budget, f"prerequisites.{prereq.name}.callbacks"),
        })
    extras = (job.extras or {}).get(RUNTIME_PLUGIN_EXTRAS_KEY) or []
    for i, item in enumerate(extras if isinstance(extras, list) else []):
        if not isinstance(item, Mapping) or not item.get("plugin"):
            continue
        roles = item.get("taskroles")
        if roles is not None and role not in roles:
            continue
        parameters = dict(item.get("parameters") or {})
        raw_callbacks = parameters.pop("callbacks", None) or item.get("callbacks") or []
        context = {**base, "this": dict(item)}
        plugin = _plugin_name(str(item["plugin"]))
        invocations.append({
            "plugin": plugin,
            "name": str(item.get("name") or f"extras.runtimeplugin[{i}]"),
            "source": "extras",
            "parameters": _render(parameters, context, budget, f"extras.{RUNTIME_PLUGIN_EXTRAS_KEY}[{i}]"),
            "failurePolicy": "ignore" if item.get("failurePolicy") == "ignore" else "fail",
            "callbacks": _callbacks(raw_callbacks, context, budget, f"extras.{RUNTIME_PLUGIN_EXTRAS_KEY}[{i}]"),
        })
    return invocations
