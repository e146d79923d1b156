"""What one call costs this process: wall time and peak resident memory (Linux).

The peak is the kernel's own high-water mark (``VmHWM``), reset before the call through
``/proc/self/clear_refs``, so it counts every byte the call touched — Python objects, libyaml's and
pydantic-core's allocations alike — not a sample that could miss a short spike.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1 << 20


def _status_kb(field: str, pid: int | str = "self") -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert match, f"/proc/{pid}/status has no {field} (these tests measure memory on Linux)"
    return int(match.group(1)) * 1024


def peak_rss(pid: int | str = "self") -> int:
    """The process's peak resident set size in bytes since start (or the last reset)."""
    return _status_kb("VmHWM", pid)


def rss(pid: int | str = "self") -> int:
    return _status_kb("VmRSS", pid)


@dataclass
class Cost:
    seconds: float
    #: CPU time of the calling thread (what the call itself cost, whatever else the machine runs)
    cpu_seconds: float
    #: peak resident memory during the call above what the process held before it
    growth: int
    error: BaseException | None
    result: Any = None


def cost(fn: Callable[[], Any]) -> Cost:
    """Run ``fn`` once; its time, its peak memory growth, and what it returned or raised.

    The collector runs first: in a long test run the process holds many objects, and a full collection
    falling inside ``fn`` would charge it a second of CPU that is the test run's, not ``fn``'s."""
    gc.collect()
    gc.freeze()  # and a collection inside fn walks fn's objects only, not the whole test run's
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now
    before = rss()
    start, cpu_start = time.perf_counter(), time.thread_time()
    result: Any = None
    error: BaseException | None = None
    try:
        result = fn()
    except Exception as exc:  # the caller asserts on what was raised
        error = exc
    seconds, cpu_seconds = time.perf_counter() - start, time.thread_time() - cpu_start
    gc.unfreeze()
    return Cost(seconds, cpu_seconds, max(peak_rss() - before, 0), error, result)
