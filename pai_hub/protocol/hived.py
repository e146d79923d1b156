"""``extras.hivedScheduler``: the checks that need no cluster, as OpenPAI's REST server makes them.

OpenPAI checks this block in two places (``config/v2/hived.js``, a JSON schema, then
``middlewares/v2/hived.js``); both run on every submission. What depends on the cluster (is the SKU
known, does the VC have it, is the pinned cell the VC's) stays with the scheduler's request mapping
(:mod:`pai_hub.scheduler.requests`); everything else is here, in the pure protocol, so that
``pai job validate`` (no server) and ``POST /api/v2/jobs`` refuse exactly the same documents.

As in OpenPAI, unknown keys are allowed at both levels (the schema has no
``additionalProperties: false`` there), and ``skuNum`` (which OpenPAI's web portal writes into every
job it generates) and ``skuNumber`` are accepted and do not decide the cells a task takes: OpenPAI
computes HiveD's ``leafCellNumber`` from ``resourcePerInstance`` and the SKU
(``max(ceil(gpu/sku.gpu), ceil(cpu/sku.cpu), ceil(memoryMB/sku.memory))``), overwriting any
``skuNumber``; the portal writes ``resourcePerInstance`` as ``skuNum`` × the SKU, so the two agree
on the jobs it generates, and where they do not (marketplace items edited by hand: ``skuNum: 1``
with ``gpu: 2``) the resources win, in OpenPAI and here.
"""

from __future__ import annotations

from typing import Any

from .errors import ProtocolError
from .limits import name_list
from .models import describe_value

__all__ = ["PRIORITY_CLASSES", "hived_errors", "hived_scheduler"]

#: OpenPAI's priority classes and HiveD priorities (``crit`` is in the REST server's map, not its schema).
PRIORITY_CLASSES = {"crit": 120, "prod": 100, "test": 10, "oppo": -1}
_STRING_OR_NULL = ("skuType", "pinnedCellId", "affinityGroupName")
_WHERE = "extras.hivedScheduler"


def hived_scheduler(extras: Any) -> dict[str, Any]:
    """The ``extras.hivedScheduler`` mapping of a job's ``extras`` (``{}`` when absent or null)."""
    value = extras.get("hivedScheduler") if isinstance(extras, dict) else None
    return value if isinstance(value, dict) else {}


def hived_errors(extras: Any, task_roles: dict[str, Any]) -> list[ProtocolError]:
    """What is wrong with ``extras.hivedScheduler`` whatever the cluster; ``[]`` when nothing is."""
    if not isinstance(extras, dict) or extras.get("hivedScheduler") is None:
        return []
    block = extras["hivedScheduler"]
    if not isinstance(block, dict):
        return [ProtocolError(_WHERE, f"must be a mapping, got {describe_value(block)}")]
    errors: list[ProtocolError] = []
    cls = block.get("jobPriorityClass")
    if cls is not None and (not isinstance(cls, str) or cls not in PRIORITY_CLASSES):
        errors.append(ProtocolError(f"{_WHERE}.jobPriorityClass",
                                    f"must be one of {', '.join(PRIORITY_CLASSES)}, got {describe_value(cls)}"))
    roles = block.get("taskRoles")
    if roles is None:
        return errors
    if not isinstance(roles, dict):
        return [*errors, ProtocolError(f"{_WHERE}.taskRoles", f"must be a mapping, got {describe_value(roles)}")]
    groups: dict[str, tuple[Any, Any, str]] = {}  # affinity group -> (skuType, pinnedCellId, first role)
    for role, spec in roles.items():
        where = f"{_WHERE}.taskRoles.{str(role)[:80]}"
        if role not in task_roles:
            errors.append(ProtocolError(where, f"no such task role; the job has {name_list(task_roles)}"))
            continue
        if not isinstance(spec, dict):
            errors.append(ProtocolError(where, f"must be a mapping, got {describe_value(spec)}"))
            continue
        bad = [key for key in _STRING_OR_NULL if spec.get(key) is not None and not isinstance(spec[key], str)]
        for key in bad:
            errors.append(ProtocolError(f"{where}.{key}", f"must be a string or null, got {describe_value(spec[key])}"))
        if bad:
            continue
        sku, pinned, group = spec.get("skuType"), spec.get("pinnedCellId"), spec.get("affinityGroupName")
        if sku is not None and pinned is not None:
            errors.append(ProtocolError(where, "give skuType or pinnedCellId, not both"))
            continue
        if group is not None:
            first = groups.setdefault(group, (sku, pinned, role))
            if first[:2] != (sku, pinned):
                errors.append(ProtocolError(f"{where}.affinityGroupName",
                                            f"affinity group {group!r} asks for other SKUs or pinned cells in task "
                                            f"role {first[2]!r}: give its roles the same skuType and pinnedCellId"))
    return errors
