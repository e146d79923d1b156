"""A marketplace template item turned into a job: the one recipe under ``pai market use`` and
``%pai market use``. Client side: it reads the item the API answered and needs only the protocol's
pure parser, so a kernel running ``%pai market use`` loads no server code."""

from __future__ import annotations

import secrets
from typing import Any

import yaml

from pai_hub import protocol

ITEM_TYPES = ("template", "data", "script", "dockerimage")  # as the marketplace API names them
REF_KEY = "marketplace"  # a prerequisite's reference to an item, and the job's record in ``extras``


class TemplateError(ValueError):
    """The item cannot be submitted as a job; the message says why and what to do."""


def template_job(item: dict[str, Any], params: list[str] | dict[str, Any] | None = None,
                 name: str | None = None) -> tuple[str, str]:
    """``(job name, protocol YAML)`` for a template item: parameters set, a fresh name (job names are
    unique per user forever), and the item and version recorded in ``extras.marketplace``."""
    if item["type"] != "template":
        raise TemplateError(f"{item['name']} is a {item['type']} item, not a template; reference it from a job's "
                            f"prerequisites: {{name: ..., type: {item['type']}, {REF_KEY}: {item['name']}}}")
    try:
        doc = protocol.parse(item["protocol"])
    except protocol.InvalidProtocol as exc:
        raise TemplateError(str(exc)) from None
    values = doc.get("parameters") or {}
    if isinstance(params, dict):
        values.update(params)
    for entry in params if isinstance(params, list) else []:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise TemplateError(f"--param {entry!r}: expected KEY=VALUE")
        values[key] = yaml.safe_load(value) if value else ""
    if values:
        doc["parameters"] = values
    name = name or f"{doc.get('name') or item['name']}_{secrets.token_hex(4)}"
    doc["name"] = name
    extras = doc.get("extras") if isinstance(doc.get("extras"), dict) else {}
    used = extras.get(REF_KEY) if isinstance(extras.get(REF_KEY), list) else []
    extras[REF_KEY] = [*used, {"item": item["name"], "version": item["version"], "type": "template"}]
    doc["extras"] = extras
    return name, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
