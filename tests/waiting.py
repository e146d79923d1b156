"""Waiting on a condition with a deadline, instead of sleeping and hoping it has happened.

A test that sleeps a fixed time and then asserts is slow when the machine is fast and flaky when it
is busy. These wait exactly as long as the condition needs, up to ``timeout``, and fail with a
message saying what did not happen. (A sleep that is part of a workload, or that deliberately waits
to prove something did NOT happen, stays a sleep, with a comment saying so.)
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def _fail(message: str | Callable[[], str], timeout: float) -> None:
    text = message() if callable(message) else message
    pytest.fail(f"waited {timeout:g} s: {text or 'the condition never held'}", pytrace=False)


def wait_for(predicate: Callable[[], T], timeout: float = 10, message: str | Callable[[], str] = "",
             interval: float = 0.02) -> T:
    """Call ``predicate`` until it returns something true, and return that; fail after ``timeout`` s.

    ``message`` says what was awaited (a callable is evaluated at the failure, to show the last state).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            _fail(message, timeout)
        time.sleep(interval)


async def wait_for_async(predicate: Callable[[], T | Awaitable[T]], timeout: float = 10,
                         message: str | Callable[[], str] = "", interval: float = 0.02) -> T:
    """:func:`wait_for` on an event loop: ``predicate`` may be a plain or an async function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            _fail(message, timeout)
        await asyncio.sleep(interval)
