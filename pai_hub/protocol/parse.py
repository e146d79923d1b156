"""YAML text → mapping, the way OpenPAI's REST server reads a submitted job.

OpenPAI reads the request body with js-yaml's ``safeLoad``. Three of its behaviours matter for
users and are reproduced here so that a job accepted by OpenPAI reads the same in PAI Hub:

* duplicate mapping keys are an error (PyYAML would silently keep the last one);
* only ``true``/``false`` (any case) are booleans — YAML 1.1's ``yes``/``no``/``on``/``off`` stay
  strings, so ``password: no`` is not turned into ``False``;
* one document only: a stream with several documents is rejected;
* every value is JSON's, as OpenPAI stores and shows it (js-yaml's object through ``JSON.stringify``):
  dates and timestamps are ISO strings, ``!!binary`` its base64 text, NaN/infinity null, ``!!set``
  and ``!!omap``/``!!pairs`` mappings and lists, mapping keys strings (:mod:`.jsvalues`). Nothing
  after the loader (validation, rendering, the store's JSON columns, the config shown) ever sees a
  ``date``, ``bytes``, ``set``, tuple or NaN.

Every failure raises :class:`~pai_hub.protocol.errors.ProtocolParseError` with a one-line message
that names the line and column (1-based); no YAML traceback ever reaches the user.

This is the one loader for every document a user sends (job protocols, marketplace items,
experiment requests): :func:`load_document`. Before anything is constructed it walks the parser's
events once and refuses (:class:`~pai_hub.protocol.limits.TooLarge`) a document whose text, node
count or scalar characters *after alias expansion*, or nesting depth, exceed the
:class:`~pai_hub.protocol.limits.Limits`. An alias costs what its anchor expands to (measured when
the anchor's node ends), so a "billion laughs" is refused after a few hundred events, in
microseconds and without memory, however far it would expand; an alias to an anchor still open
(a recursive document) is refused too.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from .errors import ProtocolError, ProtocolParseError
from .jsvalues import binary_text, iso_timestamp, js_key
from .limits import DEFAULT_LIMITS, Limits, too_large

__all__ = ["check_events", "load_document", "parse", "split_documents"]

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"

# YAML 1.2 core-schema booleans (what js-yaml accepts), instead of YAML 1.1's yes/no/on/off.
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _JobLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader with js-yaml-like booleans and duplicate-key detection."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Keys as JavaScript holds them (strings: ``1`` and ``"1"`` are one key, ``1`` and ``true``
        two); a key written twice is an error, one from a merge (``<<``) is overridden."""
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep=deep)  # reports the wrong node kind
        mapping: dict[Any, Any] = {}
        own = node.value
        if any(key_node.tag == _MERGE_TAG for key_node, _ in own):
            own = [pair for pair in own if pair[0].tag != _MERGE_TAG]
            self.flatten_mapping(node)  # the merged pairs first, then the mapping's own
            for key_node, value_node in node.value[: len(node.value) - len(own)]:
                mapping[self._key(key_node)] = self.construct_object(value_node, deep=deep)
            own = node.value[len(node.value) - len(own):]
        seen: set[Any] = set()
        for key_node, value_node in own:
            key = self.construct_object(key_node, deep=True)
            if type(key) is not str:
                key = self._key(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def _key(self, key_node: yaml.Node) -> Any:
        key = js_key(self.construct_object(key_node, deep=True))
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", None, "found a list or mapping as a key", key_node.start_mark,
            ) from None
        return key

    # -- values JSON has no form for, built as OpenPAI ends up with them (see jsvalues.py)

    def construct_js_timestamp(self, node: yaml.ScalarNode) -> str:
        text = self.construct_scalar(node)
        iso = iso_timestamp(text) if isinstance(text, str) else None
        if iso is None:
            raise yaml.constructor.ConstructorError(None, None, f"not a YAML timestamp: {str(text)[:40]!r}",
                                                    node.start_mark)
        return iso

    def construct_js_binary(self, node: yaml.ScalarNode) -> str:
        text = self.construct_scalar(node)
        compact = binary_text(text) if isinstance(text, str) else None
        if compact is None:
            raise yaml.constructor.ConstructorError(None, None, "!!binary value is not base64", node.start_mark)
        return compact

    def construct_js_float(self, node: yaml.ScalarNode) -> float | None:
        value = _at_node(node, self.construct_yaml_float, "a number")
        return value if math.isfinite(value) else None  # JSON.stringify(NaN) is null

    def construct_js_int(self, node: yaml.ScalarNode) -> int:
        return _at_node(node, self.construct_yaml_int, "an integer")

    def construct_js_set(self, node: yaml.MappingNode) -> Any:
        data: dict[Any, Any] = {}
        yield data
        data.update({key: None for key in self.construct_mapping(node)})

    def _pairs(self, node: yaml.Node, tag: str) -> list[tuple[Any, Any]]:
        if not isinstance(node, yaml.SequenceNode):
            raise yaml.constructor.ConstructorError(None, None, f"!!{tag} must be a sequence", node.start_mark)
        pairs = []
        for item in node.value:
            if not isinstance(item, yaml.MappingNode) or len(item.value) != 1:
                raise yaml.constructor.ConstructorError(None, None, f"!!{tag} items must be one-key mappings",
                                                        item.start_mark)
            ((key, value),) = self.construct_mapping(item, deep=True).items()
            pairs.append((key, value))
        return pairs

    def construct_js_omap(self, node: yaml.Node) -> Any:
        data: list[Any] = []
        yield data
        data.extend({key: value} for key, value in self._pairs(node, "omap"))

    def construct_js_pairs(self, node: yaml.Node) -> Any:
        data: list[Any] = []
        yield data
        data.extend([key, value] for key, value in self._pairs(node, "pairs"))


def _at_node(node: yaml.ScalarNode, build: Any, what: str) -> Any:
    """``build(node)``, its ValueError (``!!int 1.5``, an integer of 5,000 digits) given the node's line."""
    try:
        return build(node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"not {what}: {' '.join(str(exc).split())[:120]}", node.start_mark) from None


for _tag, _constructor in (
    ("timestamp", _JobLoader.construct_js_timestamp),
    ("binary", _JobLoader.construct_js_binary),
    ("float", _JobLoader.construct_js_float),
    ("int", _JobLoader.construct_js_int),
    ("set", _JobLoader.construct_js_set),
    ("omap", _JobLoader.construct_js_omap),
    ("pairs", _JobLoader.construct_js_pairs),
):
    _JobLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _constructor)


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


def check_events(text: str, limits: Limits = DEFAULT_LIMITS, *, what: str = "document") -> int:
    """Refuse ``text`` if it is, or expands to, more than ``limits`` allow; constructs nothing.
    Returns how many aliases the text uses.

    Counts the parser's events: every scalar is one node plus its characters, every sequence or
    mapping one node, every alias what its anchor expanded to. Malformed YAML is left for the
    loader to report (with its line and column).
    """
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > limits.max_bytes else len(text)
    if size > limits.max_bytes:
        raise too_large("", f"{what} is {size} bytes, more than the limit of {limits.max_bytes} bytes")
    loader = _JobLoader(text)
    nodes = chars = aliases = 0
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, chars) it expands to
    open_: list[tuple[str | None, int, int]] = []  # collections being read: (anchor, nodes, chars) at start
    open_anchors: set[str] = set()
    try:
        while True:
            event = loader.get_event()
            if event is None or isinstance(event, yaml.StreamEndEvent):
                break
            if isinstance(event, yaml.ScalarEvent):
                nodes += 1
                chars += len(event.value)
                if event.anchor is not None:
                    anchors[event.anchor] = (1, len(event.value))
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if event.anchor in open_anchors:
                    line = event.start_mark.line + 1 if event.start_mark is not None else 0
                    raise too_large("", f"{what} is recursive: alias *{event.anchor} at line {line} "
                                        "refers to a node that contains it")
                add_nodes, add_chars = anchors.get(event.anchor, (1, 0))
                nodes += add_nodes
                chars += add_chars
            elif isinstance(event, yaml.CollectionStartEvent):
                nodes += 1
                open_.append((event.anchor, nodes - 1, chars))
                if event.anchor is not None:
                    open_anchors.add(event.anchor)
                if len(open_) > limits.max_depth:
                    raise too_large("", f"{what} is nested more than {limits.max_depth} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent) and open_:
                anchor, nodes_before, chars_before = open_.pop()
                if anchor is not None:
                    open_anchors.discard(anchor)
                    anchors[anchor] = (nodes - nodes_before, chars - chars_before)
            if nodes > limits.max_nodes:
                raise too_large("", f"{what} expands to more than {limits.max_nodes} YAML nodes "
                                    "(aliases counted at their expanded size)")
            if chars > limits.max_expanded_chars:
                raise too_large("", f"{what} expands to more than {limits.max_expanded_chars} characters "
                                    "of text (aliases counted at their expanded size)")
    except yaml.YAMLError:
        pass  # malformed: the loader reports it with line and column
    finally:
        loader.dispose()
    return aliases


def _construct(text: str, *, several: bool) -> Any:
    try:
        if several:
            return list(yaml.load_all(text, Loader=_JobLoader))
        loader = _JobLoader(text)
        try:
            node = loader.get_single_node()
            return loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
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
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise _fail(f"invalid YAML: {_one_line(str(exc))[:200]}") from None


def load_document(text: str, limits: Limits = DEFAULT_LIMITS, *, what: str = "document") -> Any:
    """Any single YAML (or JSON) document a user sent, checked against ``limits`` before it is built.

    Raises :class:`~pai_hub.protocol.limits.TooLarge` (``what`` names the document in the message)
    or :class:`ProtocolParseError`; returns ``None`` for an empty document.
    """
    if not isinstance(text, str):
        raise _fail(f"{what} must be YAML or JSON text, got {type(text).__name__}")
    check_events(text, limits, what=what)
    return _construct(text, several=False)


def split_documents(text: str, limits: Limits = DEFAULT_LIMITS) -> list[Any]:
    """Load every document of a YAML stream with the job loader (used for job+secrets streams)."""
    check_events(text, limits, what="YAML stream")
    return _construct(text, several=True)


def parse(text: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Read a job protocol from YAML text and return the top-level mapping.

    Raises :class:`ProtocolParseError` for malformed YAML (with line and column), an empty body,
    a document that is not a mapping, or a stream of more than one document, and
    :class:`~pai_hub.protocol.limits.TooLarge` for one that exceeds ``limits``.
    """
    if not isinstance(text, str):
        raise _fail(f"job protocol must be YAML text, got {type(text).__name__}")
    if not text.strip():
        raise _fail("empty job protocol: expected a YAML mapping with protocolVersion, name, type, taskRoles")
    doc = load_document(text, limits, what="job protocol")
    if doc is None:
        raise _fail("empty job protocol: expected a YAML mapping with protocolVersion, name, type, taskRoles")
    if not isinstance(doc, dict):
        kind = "a list" if isinstance(doc, list) else f"a scalar ({type(doc).__name__})"
        raise _fail(f"job protocol must be a YAML mapping at the top level, got {kind}")
    return doc
