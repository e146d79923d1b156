"""Resolving ``<% $secrets.x %>`` references left in a task's command.

The control plane owns the template language (``pai_hub.protocol.template.render_secrets``); the
runtime uses it when it is importable and falls back to the minimal renderer below otherwise, so the
runtime also works on its own. The import is lazy and only happens for commands that contain ``<%``,
keeping the launch path free of imports.
"""

from __future__ import annotations

import re
from typing import Any

_REF = re.compile(r"<%\s*\$secrets((?:\.[^\s.\[%]+|\[\d+\])+)\s*%>")
_PART = re.compile(r"\.([^\s.\[%]+)|\[(\d+)\]")


def _lookup(secrets: Any, path: str) -> Any:
    value = secrets
    for m in _PART.finditer(path):
        key = m.group(1) if m.group(1) is not None else m.group(2)
        if isinstance(value, dict):
            if key not in value:
                return None
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def render_secrets_fallback(command: str, secrets: dict[str, Any]) -> str:
    """Replace each resolvable ``<% $secrets.a.b[0] %>`` by its value; leave others as they are.

    Values are inserted verbatim (no HTML escaping, unlike OpenPAI's pystache-based renderer).
    """

    def sub(m: re.Match[str]) -> str:
        value = _lookup(secrets, m.group(1))
        return m.group(0) if value is None or isinstance(value, (dict, list)) else str(value)

    return _REF.sub(sub, command)


def render_command(command: str, secrets: dict[str, Any] | None) -> str:
    """The command with its secret references resolved (no work at all when it has none)."""
    if "<%" not in command:
        return command
    try:
        from pai_hub.protocol.template import render_secrets  # type: ignore[import-not-found]
    except ImportError:
        return render_secrets_fallback(command, secrets or {})
    return render_secrets(command, secrets or {})
