"""YAML text → mapping, the way OpenPAI's REST server reads a submitted job.

OpenPAI reads the request body with js-yaml's ``safeLoad``. Three of its behaviours matter for
users and are reproduced here so that a job accepted by OpenPAI reads the same in PAI Hub:

* duplicate mapping keys are an error (PyYAML would silently keep the last one);
* only ``true``/``false`` (any case) are booleans — YAML 1.1's ``yes``/``no``/``on``/``off`` stay
  strings, so ``password: no`` is not turned into ``False``;
* one document only: a stream with several documents is rejected.

Every failure raises :class:`~pai_hub.protocol.errors.ProtocolParseError` with a one-line message
that names the line and column (1-based); no YAML traceback ever reaches the user.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import ProtocolError, ProtocolParseError

__all__ = ["parse", "split_documents"]

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# YAML 1.2 core-schema booleans (what js-yaml accepts), instead of YAML 1.1's yes/no/on/off.
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _JobLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader with js-yaml-like booleans and duplicate-key detection."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base constructor reports unhashable keys itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_JobLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_JobLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_RE, list("tTfF"))


def _fail(message: str) -> ProtocolParseError:
    return ProtocolParseError([ProtocolError("", message)])


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _describe(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = _one_line(exc.problem) or _one_line(exc.context) or "malformed YAML"
        if exc.context and exc.problem and exc.context_mark is not None:
            problem = f"{problem} ({_one_line(exc.context)} at line {exc.context_mark.line + 1})"
        if mark is not None:
            return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
        return f"invalid YAML: {problem}"
    return f"invalid YAML: {_one_line(str(exc)) or type(exc).__name__}"


def split_documents(text: str) -> list[Any]:
    """Load every document of a YAML stream with the job loader (used for job+secrets streams)."""
    try:
        return list(yaml.load_all(text, Loader=_JobLoader))
    except yaml.YAMLError as exc:
        raise _fail(_describe(exc)) from None


def parse(text: str) -> dict[str, Any]:
    """Read a job protocol from YAML text and return the top-level mapping.

    Raises :class:`ProtocolParseError` for malformed YAML (with line and column), an empty body,
    a document that is not a mapping, or a stream of more than one document.
    """
    if not isinstance(text, str):
        raise _fail(f"job protocol must be YAML text, got {type(text).__name__}")
    if not text.strip():
        raise _fail("empty job protocol: expected a YAML mapping with protocolVersion, name, type, taskRoles")
    loader = _JobLoader(text)
    try:
        node = loader.get_single_node()
        doc = loader.construct_document(node) if node is not None else None
    except yaml.composer.ComposerError as exc:
        if "single document" in (exc.context or "") and exc.problem_mark is not None:
            line = exc.problem_mark.line + 1
            raise _fail(
                f"invalid YAML at line {line}, column {exc.problem_mark.column + 1}: "
                "found a second document; a job protocol must be a single YAML document"
            ) from None
        raise _fail(_describe(exc)) from None
    except yaml.YAMLError as exc:
        raise _fail(_describe(exc)) from None
    except RecursionError:
        raise _fail("invalid YAML: document is nested too deeply") from None
    finally:
        loader.dispose()
    if doc is None:
        raise _fail("empty job protocol: expected a YAML mapping with protocolVersion, name, type, taskRoles")
    if not isinstance(doc, dict):
        kind = "a list" if isinstance(doc, list) else f"a scalar ({type(doc).__name__})"
        raise _fail(f"job protocol must be a YAML mapping at the top level, got {kind}")
    return doc
