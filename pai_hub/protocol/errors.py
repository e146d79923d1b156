"""Error types of the protocol package.

Validation never stops at the first problem: every check produces a :class:`ProtocolError`
naming the offending field in dotted form, so that a CLI, the REST API and the web UI can all
show the user the complete list at once. :class:`InvalidProtocol` is the single exception type
that carries such a list out of :func:`pai_hub.protocol.load` and :func:`pai_hub.protocol.parse`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_ERROR_CHARS", "MAX_SHOWN_ERRORS", "InvalidProtocol", "ProtocolError", "ProtocolParseError"]

#: How many errors ``str(InvalidProtocol)`` shows before summarising the rest.
MAX_SHOWN_ERRORS = 20
#: The longest one error may be in the summary (a field path can hold a user's 100 KB key).
MAX_ERROR_CHARS = 1_000


@dataclass(frozen=True)
class ProtocolError:
    """One problem in a job protocol.

    ``path`` names the field in dotted form (``taskRoles.worker.resourcePerInstance.gpu``,
    ``prerequisites[2].uri``); it is ``""`` for problems with the document as a whole
    (malformed YAML, a document that is not a mapping). ``message`` says what was expected.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else f"{text[:MAX_ERROR_CHARS - 1]}…"


class InvalidProtocol(Exception):
    """A job protocol was rejected; ``errors`` lists every problem found."""

    def __init__(self, errors: list[ProtocolError]) -> None:
        self.errors: list[ProtocolError] = list(errors)
        super().__init__(self._summary())

    def _summary(self) -> str:
        shown = [_clip(str(e)) for e in self.errors[:MAX_SHOWN_ERRORS]]
        hidden = len(self.errors) - len(shown)
        if hidden > 0:
            shown.append(f"... and {hidden} more error{'s' if hidden != 1 else ''}")
        return "; ".join(shown) if shown else "invalid job protocol"

    def __str__(self) -> str:
        return self._summary()


class ProtocolParseError(InvalidProtocol):
    """The text could not be read as a single YAML mapping (bad YAML, empty, several documents)."""
