"""Where the next page of a job list starts: OpenPAI's ``offset`` mapped onto a keyset.

Clients page with ``offset``/``limit`` (OpenPAI's parameters). Each page served remembers, for the
same requester and filters, the keyset (submission time, id) of its last row under the offset that
follows it; the next page continues from that row instead of counting ``offset`` rows again. So
paging costs the same at the 500th page as at the first, and jobs submitted meanwhile (which sort
first) neither shift rows onto the next page nor repeat them. An offset no page ended at (a jump)
falls back to OFFSET on the index.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from ..store.history import Keyset

#: Cursors remembered, least recently used dropped first (a cursor is ~200 bytes).
MAX_CURSORS = 10_000


class PageCursors:
    """(requester, query, offset) -> keyset of the row just before that offset."""

    def __init__(self, size: int = MAX_CURSORS) -> None:
        self.size = size
        self._cursors: OrderedDict[tuple[Hashable, int], Keyset] = OrderedDict()

    def before(self, query: Hashable, offset: int) -> Keyset | None:
        cursor = self._cursors.get((query, offset))
        if cursor is not None:
            self._cursors.move_to_end((query, offset))
        return cursor

    def remember(self, query: Hashable, offset: int, cursor: Keyset) -> None:
        self._cursors[(query, offset)] = cursor
        self._cursors.move_to_end((query, offset))
        while len(self._cursors) > self.size:
            self._cursors.popitem(last=False)
