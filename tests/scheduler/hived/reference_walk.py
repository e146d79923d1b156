"""The HiveD scheduler's turn as it was before the waiting queue was indexed
(pai_hub/scheduler/hived/queue.py): every turn sorts every waiting gang and walks them all.

Kept only as the reference the indexed queue is compared against (test_queue.py); not used by the
platform. Everything but the walk is :class:`HivedScheduler`'s own, so that the comparison isolates
what the index changed: which gangs a turn visits, in what order, and which searches it skips.
"""

from __future__ import annotations

from pai_hub.scheduler.hived import HivedScheduler
from pai_hub.scheduler.hived.turn import Turn


class _Forgetful(dict):
    """A memory that keeps nothing: every opportunistic shape is searched itself."""

    def __setitem__(self, key: object, value: object) -> None:
        pass


class FullWalkHivedScheduler(HivedScheduler):
    """HiveD's walk: every waiting gang in (priority desc, submitted_at, submission sequence) order,
    searched unless a gang of its shape already failed in this turn (free cells only shrink within
    a turn). No shape is followed only to its first failure, no shape's heads are merged, and no
    failure of an earlier turn is trusted: the first gang of every shape is searched afresh."""

    def _walk(self, turn: Turn) -> None:
        for sq in self._shapes:
            sq.marker = None  # the indexed queue's memory of earlier failures: the full walk has none
        turn.opportunistic_failed = _Forgetful()  # nor does it share one VC's opportunistic failure with another
        for key in sorted(w.key for w in self._waiting.values()):
            gid = key[3]
            if gid in self._preempting:
                turn.preempting(gid, key)  # held a reservation: kept, placed, or given up and searched
                continue
            sq = self._shapes.of.get(gid)
            if sq is None:
                continue  # placed, cancelled or an invalid request (its own reason stands)
            if sq.shape in turn.failed:
                continue  # a gang of its shape failed earlier in this turn: it would fail too
            turn.visit(gid, sq)
