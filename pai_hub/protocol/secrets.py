"""Keeping secrets out of stored job configs (OpenPAI ``utils/protocolSecret.js``).

The raw YAML a user submitted is what OpenPAI stores and shows back (``GET /jobs/{fw}/config``),
so its top-level ``secrets`` must be masked before it is stored. What is secret is decided on the
*parsed* document, never by matching text: a JSON body, flow style, a quoted, tagged or explicit
(``? secrets``) key, a byte-order mark, CRLF line ends, merge keys and anchors all name the same
``secrets`` key, and text matching missed ten of those eleven forms.

:func:`mask_secrets` still prefers the user's own text (comments, order and formatting kept): it
masks the block-style ``secrets:`` block line by line, then re-parses the result and keeps it only
if it reads as the submitted document with ``secrets: "******"`` and nothing else changed, and the
text uses no aliases. Any other form falls back to the parsed node graph: the ``secrets`` value, and every other place an
alias reuses one of its nodes, become ``"******"`` and the graph is written back as YAML.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from .errors import InvalidProtocol
from .limits import DEFAULT_LIMITS, Limits
from .models import JobProtocol
from .parse import _JobLoader, check_events, load_document

__all__ = ["MASK", "mask_secrets", "masked_config"]

MASK = "******"
SECRETS_KEY = "secrets"
_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+")
_SECRETS_KEY_RE = re.compile(r"^secrets[ \t]*:")
_DOCUMENT_MARKER_RE = re.compile(r"^(?:---|\.\.\.)(?:[ \t]|\r?$)")
_STR_TAG = "tag:yaml.org,2002:str"


def _ends_block(line: str) -> bool:
    """A line that starts a new top-level entry (or document) ends the ``secrets:`` block.

    Indented lines, blank lines, comments and ``- item`` lines at column 0 (a compact YAML list
    under ``secrets:``) stay inside the block.
    """
    if not line.strip():
        return False
    if _DOCUMENT_MARKER_RE.match(line):
        return True
    return line[0] not in " \t#-\r\n"


def _mask_lines(yaml_text: str) -> str:
    """The block-style ``secrets:`` block replaced, line by line (a candidate, checked by the caller)."""
    out: list[str] = []
    masking = False
    for line in _LINE_RE.findall(yaml_text.lstrip("\ufeff")):
        if masking:
            if not _ends_block(line):
                continue
            masking = False
        if _SECRETS_KEY_RE.match(line):
            newline = "\r\n" if line.endswith("\r\n") else ("\n" if line.endswith("\n") else "")
            out.append(f'secrets: "{MASK}"{newline}')
            masking = True
            continue
        out.append(line)
    return "".join(out)


def _same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to itself (a document with ``.nan`` is still the same)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _only_secrets_masked(original: dict[str, Any], candidate_text: str, limits: Limits) -> bool:
    try:
        candidate = load_document(candidate_text, limits)
    except InvalidProtocol:
        return False
    if not isinstance(candidate, dict) or candidate.get(SECRETS_KEY) != MASK:
        return False
    rest = {k: v for k, v in original.items() if k != SECRETS_KEY}
    return _same(rest, {k: v for k, v in candidate.items() if k != SECRETS_KEY})


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _reachable(root: yaml.Node) -> set[int]:
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) not in seen:
            seen.add(id(node))
            todo.extend(_children(node))
    return seen


def _mask_graph(text: str) -> str:
    """The document re-written from its node graph with every node of ``secrets`` replaced."""
    loader = _JobLoader(text)
    try:
        root = loader.get_single_node()
        if not isinstance(root, yaml.MappingNode):
            return text
        loader.flatten_mapping(root)  # merge keys (``<<: *x``) become plain pairs
        secret: set[int] = set()
        for key, value in root.value:
            if isinstance(key, yaml.ScalarNode) and loader.construct_object(key, deep=True) == SECRETS_KEY:
                secret |= _reachable(value)
    finally:
        loader.dispose()
    def hide(node: yaml.Node) -> yaml.Node:
        return yaml.ScalarNode(_STR_TAG, MASK, style='"') if id(node) in secret else node

    seen: set[int] = set()
    todo: list[yaml.Node] = [root]
    while todo:  # every place that holds a secret node now holds the mask instead
        node = todo.pop()
        if id(node) in seen or id(node) in secret:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
            node.value = [hide(item) for item in node.value]
        elif isinstance(node, yaml.MappingNode):
            todo.extend(_children(node))
            node.value = [(hide(k), hide(v)) for k, v in node.value]
    return yaml.serialize(root, Dumper=yaml.SafeDumper, allow_unicode=True, width=1 << 16)


def mask_secrets(yaml_text: str, limits: Limits = DEFAULT_LIMITS, *, parsed: Any = None) -> str:
    """The job's text with its top-level ``secrets`` shown as ``"******"``, in whatever form it was
    written; text whose parsed document has no ``secrets`` key is returned unchanged.

    The user's own text is kept when line masking provably changed nothing but ``secrets``;
    otherwise the document is written back from its masked node graph (comments are lost then).
    Unreadable text (never stored: the job is refused) gets the line masking only. ``parsed``, the
    document already read from this very text, saves reading it again.
    """
    doc = parsed
    if doc is None:
        try:
            doc = load_document(yaml_text, limits)
        except InvalidProtocol:
            return _mask_lines(yaml_text)
    if not isinstance(doc, dict) or SECRETS_KEY not in doc:
        return yaml_text
    if not check_events(yaml_text, limits):  # with aliases, a secret may be reused elsewhere
        candidate = _mask_lines(yaml_text)
        if _only_secrets_masked(doc, candidate, limits):
            return candidate
    return _mask_graph(yaml_text.lstrip("\ufeff"))


def masked_config(job: JobProtocol) -> dict[str, Any]:
    """The job as a plain mapping (as submitted, camelCase keys) with ``secrets`` = ``"******"``."""
    config = job.model_dump(by_alias=True, exclude_unset=True)
    if "secrets" in config:
        config["secrets"] = MASK
    return config
