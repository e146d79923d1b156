"""What an item holds, checked with the job protocol's own validator.

* ``template``: a protocol v2 job (YAML text), stored as published. Its prerequisites may
  themselves reference marketplace items (``marketplace: <item>[@<version>]``); the check resolves
  them as the publisher sees them, then validates the resolved job, so a template that can never
  be submitted is refused.
* ``data``, ``script``, ``dockerimage``: one prerequisite (a YAML mapping, as it would appear in a
  job's ``prerequisites`` list). ``type`` may be left out (it is the item's type) and so may
  ``name`` (the item's name, made a valid prerequisite name); the check validates it inside a
  minimal job, so it obeys exactly the rules of a job's prerequisite.

Items are readable by others, so literal secrets are refused: a template with a ``secrets``
mapping, a docker image whose ``auth.password`` is not a ``<% $secrets.x %>`` reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from .. import protocol
from ..protocol.limits import check_object

ITEM_TYPES = ("template", "data", "script", "dockerimage")
PREREQUISITE_ITEM_TYPES = ("data", "script", "dockerimage")
REF_KEY = "marketplace"
_SECRET_REF = re.compile(r"^\s*<%\s*\$secrets\.[^%]+%>\s*$")
_PREREQ_PATH = re.compile(r"^prerequisites\[0\]\.?")


class InvalidContent(ValueError):
    """The content of an item is refused; the message names each problem (field paths)."""


def _load(text: str) -> Any:
    """The item's YAML through the protocol's one bounded loader (alias bombs, depth, size refused)."""
    try:
        return protocol.parse(text)
    except protocol.InvalidProtocol as exc:
        raise InvalidContent(str(exc)) from None


def prerequisite_name(item_name: str) -> str:
    """An item name as a valid prerequisite name (letters, digits, ``_`` and ``-``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", item_name) or "item"


def check_template(text: str, resolve: Callable[[dict], dict] | None = None) -> dict[str, Any]:
    """The parsed job of a template; raises :class:`InvalidContent`."""
    doc = _load(text)
    if not isinstance(doc, dict):
        raise InvalidContent("a template must be a job protocol (a YAML mapping)")
    if doc.get("secrets"):
        raise InvalidContent("secrets: a template must not carry secrets (every reader would see them); "
                             "reference <% $secrets.x %> and give the values when submitting")
    resolved = doc
    if resolve is not None:
        try:
            resolved = resolve(doc)
        except ValueError as exc:
            raise InvalidContent(str(exc)) from None
    try:
        protocol.load_dict(resolved)
    except protocol.InvalidProtocol as exc:
        raise InvalidContent(str(exc)) from None
    return doc


def check_prerequisite(item_type: str, item_name: str, text: str) -> dict[str, Any]:
    """The prerequisite an item of ``item_type`` holds (``type`` and ``name`` filled in)."""
    doc = _load(text)
    if not isinstance(doc, dict):
        raise InvalidContent(f"a {item_type} item must be one prerequisite (a YAML mapping with type and uri)")
    if "taskRoles" in doc or ("protocolVersion" in doc and "prerequisites" in doc):
        raise InvalidContent(f"this is a job protocol; publish it as a template, or publish one of its "
                             f"prerequisites as a {item_type} item")
    if REF_KEY in doc:
        raise InvalidContent(f"{REF_KEY}: an item cannot reference another item")
    kind = doc.get("type", item_type)
    if kind != item_type:
        raise InvalidContent(f"type: the prerequisite is {kind!r} but the item type is {item_type!r}")
    prereq = {"name": doc.get("name") or prerequisite_name(item_name), "type": item_type,
              **{k: v for k, v in doc.items() if k not in ("name", "type")}}
    if item_type == "dockerimage":
        password = (prereq.get("auth") or {}).get("password") if isinstance(prereq.get("auth"), dict) else None
        if password is not None and not (isinstance(password, str) and _SECRET_REF.match(password)):
            raise InvalidContent("auth.password: must be a <% $secrets.x %> reference, not a literal password "
                                 "(every reader of the item would see it)")
        image_name, extra = prereq["name"], []
    else:
        image_name = "__image__"
        extra = [{"name": image_name, "type": "dockerimage", "uri": "busybox"}]
    role: dict[str, Any] = {"instances": 1, "dockerImage": image_name, "commands": ["true"],
                            "resourcePerInstance": {"cpu": 1, "memoryMB": 1, "gpu": 0}}
    job = {"protocolVersion": 2, "name": "item_check", "type": "job", "prerequisites": [prereq, *extra],
           "taskRoles": {"check": role}}
    errors = [e for e in protocol.validate(job) if e.path.startswith("prerequisites[0]")]
    if errors:
        raise InvalidContent("; ".join(
            f"{_PREREQ_PATH.sub('', e.path)}: {e.message}" if _PREREQ_PATH.sub("", e.path) else e.message
            for e in errors))
    return prereq


def check_content(item_type: str, item_name: str, text: str,
                  resolve: Callable[[dict], dict] | None = None) -> dict[str, Any]:
    if item_type == "template":
        return check_template(text, resolve)
    return check_prerequisite(item_type, item_name, text)


def as_text(content: Any) -> str:
    """Content given as YAML text or as a mapping (JSON clients) → YAML text."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        try:  # bounded before it is written out as text
            check_object(content, what="the item's content")
        except protocol.InvalidProtocol as exc:
            raise InvalidContent(str(exc)) from None
        return yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
    raise InvalidContent("protocol: must be YAML text or a mapping")
