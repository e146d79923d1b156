"""What one user document may cost: the bounds every YAML/JSON document a user sends is held to.

A 250-byte job can ask for a billion instances and a 642-byte YAML "billion laughs" expands to a
billion nodes, so the size of the text says nothing about the cost of handling it. Every bound here
is checked on something cheap to count (parser events, the task-role mapping's integers, the length
of a template's pieces) *before* the expensive thing (constructed objects, pydantic models, one
object per task, a concatenated string) is built. A refusal is an :class:`InvalidProtocol` whose
message names what was too large and the limit, which the API answers as a 400.

The limits are one frozen :class:`Limits` value; :data:`DEFAULT_LIMITS` is what callers get unless
they pass their own (the server builds its own from configuration).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InvalidProtocol, ProtocolError

__all__ = ["DEFAULT_LIMITS", "NO_LIMITS", "Limits", "RenderBudget", "TooLarge", "check_object", "name_list", "too_large"]


@dataclass(frozen=True)
class Limits:
    """Bounds on one user document (defaults sized for a 1 MiB job protocol)."""

    #: Largest document text, in bytes (UTF-8).
    max_bytes: int = 4 << 20
    #: Nodes (scalars, sequences, mappings) after alias expansion. A real job has hundreds; PyYAML
    #: builds about 100,000 nodes a second, so this also bounds the time one document may take.
    max_nodes: int = 50_000
    #: Characters of all scalars after alias expansion.
    max_expanded_chars: int = 8 << 20
    #: Nesting depth of sequences and mappings.
    max_depth: int = 64
    #: Task roles in one job.
    max_task_roles: int = 100
    #: ``instances`` of one task role.
    max_instances: int = 1_000
    #: Tasks of one job (the sum of ``instances``).
    max_total_tasks: int = 10_000
    #: Characters ``<% %>`` templates may render to, for the whole job.
    max_rendered_chars: int = 4 << 20
    #: Names an error message lists before saying "… and K more".
    max_listed_names: int = 10


DEFAULT_LIMITS = Limits()
_HUGE = 1 << 62
#: For documents the platform already accepted (a stored job re-rendered at restart, whatever the
#: limits were then): nothing refused.
NO_LIMITS = Limits(max_bytes=_HUGE, max_nodes=_HUGE, max_expanded_chars=_HUGE, max_depth=_HUGE,
                   max_task_roles=_HUGE, max_instances=_HUGE, max_total_tasks=_HUGE, max_rendered_chars=_HUGE)


class TooLarge(InvalidProtocol):
    """A document (or what it expands or renders to) exceeds one of the :class:`Limits`."""


def too_large(path: str, message: str) -> TooLarge:
    """The refusal for one exceeded bound; ``message`` names what and the limit."""
    return TooLarge([ProtocolError(path, message)])


def name_list(names: Iterable[object], limit: int = DEFAULT_LIMITS.max_listed_names) -> str:
    """``'a', 'b', … and 3 more``: at most ``limit`` names of a possibly huge collection, quoted."""
    shown: list[str] = []
    hidden = 0
    for name in names:
        if len(shown) < limit:
            text = repr(name) if isinstance(name, str) else str(name)
            shown.append(text if len(text) <= 80 else text[:77] + "...")
        else:
            hidden += 1
    if not shown:
        return "none"
    return ", ".join(shown) + (f" … and {hidden} more" if hidden else "")


class RenderBudget:
    """Characters ``<% %>`` templates may still render to; shared by every template of one job.

    :meth:`spend` is called with a piece's length *before* the piece is built, so a parameter of
    800 KB referenced 8,000 times is refused after the fifth reference, not after 6 GB.
    """

    def __init__(self, limit: int = DEFAULT_LIMITS.max_rendered_chars) -> None:
        self.limit = limit
        self.remaining = limit

    def spend(self, chars: int, where: str = "") -> None:
        """Take ``chars`` from the budget; raises :class:`TooLarge` naming ``where`` when it runs out."""
        self.remaining -= chars
        if self.remaining < 0:
            raise too_large(where, f"templates render to more than {self.limit} characters "
                                   "(a large parameter referenced many times?)")


def check_object(value: object, limits: Limits = DEFAULT_LIMITS, *, what: str = "document") -> None:
    """Refuse an already-built document (a JSON body, a mapping from another loader) that expands to
    more than ``limits`` allow: nodes, scalar characters, depth, all counted as if every shared
    reference were a copy (what ``json.dumps`` or a pydantic model would make of it).

    Each container is measured once (shared ones are memoised by identity) and without recursion,
    so a 100,000-deep list or a graph of 2^30 shared paths costs its number of distinct objects.
    """
    sizes: dict[int, tuple[int, int, int]] = {}  # id -> (nodes, chars, depth) as expanded
    on_path: set[int] = set()
    keep: list[object] = []  # ids stay valid while their objects are alive
    stack: list[tuple[object, bool]] = [(value, False)]
    while stack:
        item, done = stack.pop()
        if not isinstance(item, (dict, list, tuple)):
            continue
        key = id(item)
        if done:
            on_path.discard(key)
            nodes, chars, depth = 1, 0, 0
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else list(item)
            for child in children:
                if isinstance(child, (dict, list, tuple)):
                    c_nodes, c_chars, c_depth = sizes[id(child)]
                else:
                    c_nodes, c_chars, c_depth = 1, len(child) if isinstance(child, str) else 0, 0
                nodes, chars, depth = nodes + c_nodes, chars + c_chars, max(depth, c_depth)
            sizes[key] = (nodes, chars, depth + 1)
            if depth + 1 > limits.max_depth:
                raise too_large("", f"{what} is nested more than {limits.max_depth} levels deep")
            if nodes > limits.max_nodes:
                raise too_large("", f"{what} expands to more than {limits.max_nodes} nodes "
                                    "(shared references counted at their expanded size)")
            if chars > limits.max_expanded_chars:
                raise too_large("", f"{what} expands to more than {limits.max_expanded_chars} characters "
                                    "of text (shared references counted at their expanded size)")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise too_large("", f"{what} is recursive: it contains itself")
        if len(on_path) >= limits.max_depth:
            raise too_large("", f"{what} is nested more than {limits.max_depth} levels deep")
        on_path.add(key)
        keep.append(item)
        stack.append((item, True))
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, False) for child in children if isinstance(child, (dict, list, tuple)))
