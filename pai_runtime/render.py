"""OpenPAI's ``<% ... %>`` template grammar, and resolving ``<% $secrets.x %>`` in a task's command.

The runtime owns this rule: it resolves a task's secret references inside the task, where the
server is not importable, and the server's job-protocol renderer (:mod:`pai_hub.protocol.template`)
imports the same tokenizer and lookup from here. One implementation, so a command renders the same
whichever side renders it.

The grammar is mustache's with ``<%``/``%>`` delimiters. :func:`render_secrets` is OpenPAI's
runtime renderer, with only ``$secrets`` in scope: lists are reachable by index (``x[0]`` is
``x.0``) and missing names render as the empty string, as with pystache. Unlike pystache, values
are **not** HTML-escaped (a password containing ``&`` stays intact) — a deliberate deviation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CLOSE", "OPEN", "Tag", "lookup", "normalize_name", "render_command", "render_secrets", "tokenize"]

OPEN, CLOSE = "<%", "%>"
_INDEX_RE = re.compile(r"\[\s*(\d+)\s*\]")
_MISSING = object()


@dataclass(frozen=True)
class Tag:
    """One token of a template: ``kind`` is ``"text"``, ``"name"`` or the mustache sigil."""

    kind: str
    value: str


def normalize_name(name: str) -> str:
    """Trim a tag name and rewrite ``[n]`` indices to ``.n`` (``a[0].b`` → ``a.0.b``)."""
    return _INDEX_RE.sub(r".\1", name.strip())


def tokenize(text: str) -> list[Tag]:
    """Split a template into text and tag tokens, following mustache's tag grammar.

    An opening ``<%`` without a matching ``%>`` is kept as literal text (mustache would raise;
    a shell command is more useful than an error here).
    """
    tokens: list[Tag] = []
    open_tag, close_tag = OPEN, CLOSE
    pos = 0
    while pos < len(text):
        start = text.find(open_tag, pos)
        if start < 0:
            tokens.append(Tag("text", text[pos:]))
            break
        if start > pos:
            tokens.append(Tag("text", text[pos:start]))
        cursor = start + len(open_tag)
        sigil = text[cursor] if cursor < len(text) and text[cursor] in "#^/>{&=!" else ""
        cursor += len(sigil)
        closing = "}" + close_tag if sigil == "{" else ("=" + close_tag if sigil == "=" else close_tag)
        end = text.find(closing, cursor)
        if end < 0:
            tokens.append(Tag("text", text[start:]))
            break
        body = text[cursor:end].strip()
        pos = end + len(closing)
        if sigil == "=":
            parts = body.split()
            if len(parts) == 2:
                open_tag, close_tag = parts
        tokens.append(Tag(sigil or "name", body))
    return tokens


def lookup(context: Mapping[str, Any], name: str) -> Any:
    """Resolve a dotted name (``$data.uri.0``); returns ``None`` when any step is missing."""
    value: Any = context
    for part in name.split("."):
        if isinstance(value, Mapping):
            found = value.get(part, _MISSING)
            if found is _MISSING:  # YAML may give non-string keys (``1: x``); JS sees "1"
                found = next((v for k, v in value.items() if str(k) == part), _MISSING)
            value = found
        elif isinstance(value, (list, tuple)) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else _MISSING
        elif isinstance(value, (list, tuple, str)) and part == "length":
            value = len(value)
        else:
            value = _MISSING
        if value is _MISSING or value is None:
            return None
    return value


def render_secrets(command: str, secrets: Mapping[str, Any] | None) -> str:
    """Render ``$secrets`` references the way OpenPAI's runtime does before running the command.

    ``secrets`` is the job's ``secrets`` mapping; ``None`` (no secrets file) leaves the command
    unchanged. Names outside ``$secrets`` and missing secrets render as the empty string.
    Values are converted with Python's ``str()`` (the runtime is Python) and not HTML-escaped.
    """
    if secrets is None:
        return command
    context = {"$secrets": secrets}
    out: list[str] = []
    for token in tokenize(command):
        if token.kind == "text":
            out.append(token.value)
        elif token.kind in ("name", "&", "{"):
            value = lookup(context, normalize_name(token.value))
            out.append("" if value is None else str(value))
    return "".join(out)


def render_command(command: str, secrets: Mapping[str, Any] | None) -> str:
    """The command a task runs, its secret references resolved (no work at all when it has none).

    A task always has a secrets scope: without a secrets file it is empty, so a reference to a
    secret that does not exist renders as the empty string, as in OpenPAI's runtime.
    """
    if OPEN not in command:
        return command
    return render_secrets(command, secrets or {})
