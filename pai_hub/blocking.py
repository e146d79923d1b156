"""Synchronous work (SQLAlchemy sessions, password hashing) run off the event loop.

The control plane serves every request from one event loop: a handler that hashes a password or
waits for a database answer on it stalls every other request (and the orchestrator's turns) for
that long. Handlers, pages, hub-token resolution and the experiments service hand such calls to
the one :class:`BlockingPool` of the server, ``await pool.run(fn, *args)``, and wait without
blocking. The pool is small (``PaiHub.blocking_threads``): SQLite has one writer, an argon2 hash
already keeps four cores busy, and every thread running Python competes with the loop for the GIL.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_WORKERS = 2


class BlockingPool:
    """A small thread pool for the synchronous calls of request handlers."""

    def __init__(self, workers: int = DEFAULT_WORKERS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pai-blocking")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in the pool; the caller's coroutine waits, the loop does not."""
        call = functools.partial(fn, *args, **kwargs) if kwargs else functools.partial(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
