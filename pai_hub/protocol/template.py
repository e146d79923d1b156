"""OpenPAI's ``<% ... %>`` templates (mustache grammar with ``<%``/``%>`` delimiters).

Two renderers exist in OpenPAI and both are reproduced:

* :func:`render_template` — the REST server's renderer, run at submission on every task role's
  commands with ``$parameters``, ``$script``, ``$output`` and ``$data``. Only plain variable tags
  produce output; every other tag (sections ``#``/``^``/``/``, ``&``, ``{``, comments ``!``,
  partials ``>``, set-delimiter ``=``) is dropped. A name that does not resolve is written back
  normalised (``<%$secrets.pw%>`` → ``<% $secrets.pw %>``) so that ``$secrets`` references survive
  until the container starts. Values are converted like JavaScript's ``String()`` (``true``,
  ``1`` for ``1.0``, arrays joined with ``,``) and never HTML-escaped.
* :func:`render_secrets` — the runtime's renderer, run inside the container on the command the
  server produced, with only ``$secrets`` in scope. Lists are reachable by index and missing
  names render as the empty string, as with pystache. Unlike pystache, values are **not**
  HTML-escaped (a password containing ``&`` stays intact) — a deliberate deviation.

In both, ``x[0]`` inside a tag is the same as ``x.0``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Tag", "js_string", "lookup", "normalize_name", "render_secrets", "render_template", "tokenize"]

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


def js_string(value: Any) -> str:
    """JavaScript ``String(value)`` for YAML values (what the REST server concatenates)."""
    if value is None:
        return ""  # inside arrays; a top-level null never resolves
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            sign = "-" if exponent.startswith("-") else "+"
            text = f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
        return text
    if isinstance(value, (list, tuple)):
        return ",".join(js_string(v) for v in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


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


def render_template(
    text: str, context: Mapping[str, Any], *, keep_unresolved: bool = True, strip: bool = True
) -> str:
    """Render like OpenPAI's REST server (see module docstring). The result is stripped like JS ``trim()``."""
    out: list[str] = []
    for token in tokenize(text):
        if token.kind == "text":
            out.append(token.value)
        elif token.kind == "name":
            name = normalize_name(token.value)
            value = lookup(context, name)
            if value is not None:
                out.append(js_string(value))
            elif keep_unresolved:
                out.append(f"{OPEN} {name} {CLOSE}")
        # every other tag kind is silently dropped, as OpenPAI does
    rendered = "".join(out)
    return rendered.strip() if strip else rendered


def _python_string(value: Any) -> str:
    return "" if value is None else str(value)


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
            out.append(_python_string(lookup(context, normalize_name(token.value))))
    return "".join(out)
