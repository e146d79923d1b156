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

In both, ``x[0]`` inside a tag is the same as ``x.0``. The grammar (:func:`tokenize`,
:func:`lookup`) and :func:`render_secrets` belong to the runtime (:mod:`pai_runtime.render`), which
renders inside tasks where this package is not importable; they are imported from there so that
both sides render alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pai_runtime.render import CLOSE, OPEN, Tag, lookup, normalize_name, render_secrets, tokenize

from .limits import NO_LIMITS, RenderBudget

__all__ = ["Tag", "js_length", "js_string", "lookup", "normalize_name", "render_secrets", "render_template",
           "tokenize"]


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


def js_length(value: Any, cap: int) -> int:
    """``len(js_string(value))`` without building it; stops counting once past ``cap`` (a list of
    thousands of references to one large string costs its count, not its concatenation)."""
    if isinstance(value, (list, tuple)):
        total = max(len(value) - 1, 0)
        for item in value:
            if total > cap:
                break
            total += js_length(item, cap - total)
        return total
    if isinstance(value, str):
        return len(value)
    return len(js_string(value))


def render_template(
    text: str, context: Mapping[str, Any], *, keep_unresolved: bool = True, strip: bool = True,
    budget: RenderBudget | None = None, where: str = "",
) -> str:
    """Render like OpenPAI's REST server (see module docstring). The result is stripped like JS ``trim()``.

    With a ``budget`` each piece's length is taken from it before the piece is built; running out
    raises :class:`~pai_hub.protocol.limits.TooLarge` naming ``where``. Without one nothing is
    refused: a job's templates are bounded once, at submission (:func:`~pai_hub.protocol.render`).
    """
    if budget is None:
        budget = RenderBudget(NO_LIMITS.max_rendered_chars)
    out: list[str] = []
    for token in tokenize(text):
        if token.kind == "text":
            budget.spend(len(token.value), where)
            out.append(token.value)
        elif token.kind == "name":
            name = normalize_name(token.value)
            value = lookup(context, name)
            if value is not None:
                budget.spend(js_length(value, max(budget.remaining, 0)), where)
                out.append(js_string(value))
            elif keep_unresolved:
                budget.spend(len(name) + 6, where)
                out.append(f"{OPEN} {name} {CLOSE}")
        # every other tag kind is silently dropped, as OpenPAI does
    rendered = "".join(out)
    return rendered.strip() if strip else rendered
