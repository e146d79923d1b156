"""pydantic's validation errors as ``(path, reason)`` pairs a person can act on.

Every validator of a user-written document (the job protocol, the HiveD cluster config, experiment
requests, alert rules) is a set of pydantic models; this module is the one place that turns
pydantic's error list into messages that name the field by its full path
(``virtualClusters.vc1.virtualCells[0].cellNumber``) and say what is expected instead of
pydantic's wording (``Input should be a valid integer``). Callers wrap the pairs in their own
error type (:class:`~pai_hub.scheduler.hived.HivedConfigError`, ``RuleError``, ...).

It also holds the "before" validators those models share, so that a YAML quirk (a mapping keyed by
a number) is read the same way in every document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .models import describe_value

__all__ = ["FieldErrors", "field_errors", "format_path", "keys_and_values_as_text", "keys_as_text"]

Loc = tuple[Any, ...]
FieldErrors = list[tuple[str, str]]


def format_path(loc: Loc) -> str:
    """``('taskRoles', 'w', 'commands', 0)`` → ``taskRoles.w.commands[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _reason(err: Mapping[str, Any], hints: Mapping[str, str]) -> str:
    kind: str = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    field = next((str(p) for p in reversed(err["loc"]) if not isinstance(p, int)), "")
    hint = hints.get(field)
    if kind.startswith("pai_") or kind == "value_error":
        message = str(ctx.get("message") or ctx.get("error") or err["msg"])
        return message.removeprefix("Value error, ")
    if kind == "missing":
        return f"is required ({hint})" if hint else "is required"
    if kind == "extra_forbidden":
        return f"unknown key {err['loc'][-1]!r}" + (f"; allowed: {hint}" if hint else "")
    suffix = f" ({hint})" if hint else ""
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping, got {_type_name(value)}{suffix}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {_type_name(value)}{suffix}"
    if kind == "string_pattern_mismatch":
        expected = hint or f"text matching {ctx.get('pattern')}"
        return f"must be {expected}, got {describe_value(value)}"
    if kind.startswith("int_"):
        expected = "an integer"
    elif kind.startswith("float_"):
        expected = "a number"
    elif kind.startswith("bool_"):
        expected = "true or false"
    elif kind == "string_too_short":
        expected = "a non-empty string"
    elif kind.startswith("string_"):
        expected = "a string"
    elif kind == "literal_error":
        expected = f"one of {ctx.get('expected')}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {"greater_than_equal": "at least", "greater_than": "more than",
                 "less_than_equal": "at most", "less_than": "less than"}[kind]
        bound = next(iter(ctx.values()))
        expected = f"{words} {bound}"
    elif kind == "too_short":
        expected = f"at least {ctx.get('min_length', 1)} item(s)"
    else:
        expected = err["msg"][0].lower() + err["msg"][1:]
        return f"{expected}, got {describe_value(value)}{suffix}"
    return f"must be {expected}, got {describe_value(value)}{suffix}"


def field_errors(exc: ValidationError, hints: Mapping[str, str] | None = None) -> FieldErrors:
    """Each error of ``exc`` as ``(path, reason)``, in pydantic's order, duplicates dropped.

    ``hints`` maps a field name to what it should hold (``"childCellType": "the type of the
    child cells"``); it is added to "is required" and "must be ..." reasons so the message says
    the fix, not only the fault.
    """
    out: FieldErrors = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if p != "[key]")
        pair = (format_path(loc), _reason(err, hints or {}))
        if pair not in out:
            out.append(pair)
    return out


def _mapping_as_text(value: Any, values_too: bool) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        return value  # left for the field's own type check to report
    return {str(k): str(v) if values_too else v for k, v in value.items()}


def keys_as_text(value: Any) -> Any:
    """A pydantic "before" validator for a mapping keyed by names: YAML reads ``1:`` as a number, but
    the name a person wrote is text (a VC named ``1``). ``null`` is an empty mapping."""
    return _mapping_as_text(value, values_too=False)


def keys_and_values_as_text(value: Any) -> Any:
    """:func:`keys_as_text` for a mapping of text to text (labels): ``severity: 2`` means ``"2"``."""
    return _mapping_as_text(value, values_too=True)
