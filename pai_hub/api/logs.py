"""Bounded log reads: a log is measured, then sent in chunks, never read whole into memory.

A task's log may be gigabytes. ``GET .../logs/{name}`` used to read from ``offset`` to the end in
one call and then keep the last 16 KiB for ``tail-mode``: a 16 KiB tail of a 1 GB log cost 1 GB
of memory and seconds of a blocking thread. Here the handler first finds the log's size (the
backend's ``log_size`` when it has one, otherwise by probing ``read_log`` with one-byte reads at
doubling offsets, which every backend serves with a seek), fixes the range to send, and then
streams that range in :data:`CHUNK`-sized reads, each one off the event loop, flushing each to the
client before reading the next. Memory per request is one chunk, whatever the log's size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

#: Bytes per read (and per write to the client).
CHUNK = 256 << 10
#: What ``tail-mode=true`` sends: the last 16 KiB (OpenPAI's log manager's tail).
TAIL_BYTES = 16 << 10

Blocking = Callable[..., Awaitable[Any]]


async def log_size(blocking: Blocking, backend: Any, task_id: str, name: str) -> int:
    """The log's size in bytes now. Probing costs about 2·log2(size) one-byte reads, each a seek."""
    sized = getattr(backend, "log_size", None)
    if callable(sized):
        size = await blocking(sized, task_id, name)
        if size is not None:
            return int(size)

    async def has_byte(at: int) -> bool:
        return bool(await blocking(backend.read_log, task_id, name, at, 1))

    if not await has_byte(0):
        return 0
    low, high = 0, 1  # a byte at ``low``; ``high`` to be found past the end
    while await has_byte(high):
        low, high = high, high * 2
    while high - low > 1:  # invariant: a byte at low, none at high
        middle = (low + high) // 2
        if await has_byte(middle):
            low = middle
        else:
            high = middle
    return high


def byte_range(size: int, offset: int, tail: bool) -> tuple[int, int]:
    """``[start, end)`` to send: from ``offset`` to the end, or only its last :data:`TAIL_BYTES`."""
    end = max(size, offset)
    start = max(offset, end - TAIL_BYTES) if tail else offset
    return min(start, end), end


async def chunks(blocking: Blocking, backend: Any, task_id: str, name: str, start: int, end: int
                 ) -> AsyncIterator[bytes]:
    """The bytes of ``[start, end)`` in reads of at most :data:`CHUNK`; stops early if the log
    shrank meanwhile (a backend that rotates or compacts)."""
    position = start
    while position < end:
        data = await blocking(backend.read_log, task_id, name, position, min(CHUNK, end - position))
        if not data:
            return
        position += len(data)
        yield data
