"""Failed-login limits: per client address and per username, over a sliding minute.

A password guesser costs the server an argon2 hash per try (tens of milliseconds of a CPU) and the
user their account; so after ``per_user`` failed logins for one name, or ``per_address`` from one
client address, within ``window`` seconds, further logins for that name (or from that address) are
answered 429 with ``Retry-After`` — before any hash is computed — until the oldest failure leaves
the window. A success does not erase failures (a guesser who knows one account must not unlock
another's counter with it). Memory is bounded: at most ``max_keys`` names and addresses are
tracked, the least recently failed are forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field


@dataclass
class LoginThrottle:
    per_user: int = 10
    per_address: int = 30
    window: float = 60.0
    max_keys: int = 10_000
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def retry_after(self, username: str, address: str, now: float | None = None) -> int:
        """Seconds until a login for ``username`` from ``address`` may be tried (0: now)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key, limit in ((f"user:{username}", self.per_user), (f"addr:{address}", self.per_address)):
            times = self._recent(key, now)
            if times is not None and len(times) >= limit:
                wait = max(wait, times[0] + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, username: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in (f"user:{username}", f"addr:{address}"):
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque()
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times
