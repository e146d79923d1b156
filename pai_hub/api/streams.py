"""How many long-lived connections one user may hold open: event streams, terminals, log streams.

Each open server-sent event stream, debug terminal (a websocket and a shell) or streamed log read
holds a socket, a file descriptor or two and some memory for as long as the client keeps it, so
one user opening thousands would take the server's descriptors from everyone. Each user gets at
most ``ServerSettings.max_streams_per_user`` at a time; the next one is answered 429 (naming the
limit) until one of theirs ends. A slot is taken before anything is opened and given back exactly
once, whichever way the stream ends (finished, client gone, error).
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError


class StreamSlots:
    """Open streams per username, bounded by ``per_user``."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self.open: dict[str, int] = {}

    def take(self, username: str, what: str) -> Slot:
        """A slot for one more stream of ``username``; 429 when they hold ``per_user`` already."""
        held = self.open.get(username, 0)
        if held >= self.per_user:
            raise ApiError(429, "TooManyRequestsError",
                           f"{username} already has {held} open streams (event streams, terminals, log "
                           f"reads), the limit per user (PaiHub.max_streams_per_user); close one before "
                           f"opening this {what}")
        self.open[username] = held + 1
        return Slot(self, username)

    def _give_back(self, username: str) -> None:
        held = self.open.get(username, 0) - 1
        if held > 0:
            self.open[username] = held
        else:
            self.open.pop(username, None)


class Slot:
    """One open stream; :meth:`release` may be called any number of times, it counts once."""

    def __init__(self, slots: StreamSlots, username: str) -> None:
        self._slots: StreamSlots | None = slots
        self.username = username

    def release(self) -> None:
        if self._slots is not None:
            self._slots._give_back(self.username)
            self._slots = None


def stream_slots(settings: dict[str, Any], per_user: int) -> StreamSlots:
    """The application's one :class:`StreamSlots` (kept in its tornado settings), made on first use."""
    slots = settings.get("pai_stream_slots")
    if slots is None:
        slots = settings["pai_stream_slots"] = StreamSlots(per_user)
    return slots
