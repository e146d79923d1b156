"""The two transports of the one API (:mod:`pai_client.api`): ``PaiClient`` over ``httpx.Client``
and ``AsyncPaiClient`` over ``httpx.AsyncClient``.

Each only runs plans — send a request, sleep, hand a streamed value to its caller — and reads a
job's event stream (:mod:`pai_client.sse`); every API method comes from :class:`~pai_client.api.Api`.
Both take the server URL and token from arguments or from the environment
(:mod:`pai_client.settings`); every failure is a :class:`~pai_client.errors.PaiError`.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from .api import Api, Emit, Operation, Plan, Request, Sleep
from .errors import PaiError
from .settings import client_settings
from .sse import SseEvent, aiter_events, iter_events


def _unreachable(url: str, exc: Exception) -> PaiError:
    return PaiError(0, "ConnectionError", f"cannot reach {url}: {exc}")


def _unexpected(step: Any) -> TypeError:
    return TypeError(f"a plan yielded {step!r} where it may not")


class _Base(Api):
    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url, self.token = client_settings(url, token)
        self.username: str | None = None

    def _headers(self, extra: Any = None) -> dict[str, str]:
        """This client's credential with a request's own headers (which win: a shared client may
        send another user's token)."""
        return {**self.auth_headers(), **dict(extra or {})}

    def with_token(self, token: str, username: str | None = None) -> Any:
        """The same client (one connection pool) acting with another token: what a server that
        calls PAI for many users (the spawner, the server extension) needs."""
        other = copy.copy(self)
        other.token, other.username = token, username
        return other

    @staticmethod
    def _args(request: Request) -> dict[str, Any]:
        return {"params": request.params, "json": request.json, "content": request.content}


class PaiClient(_Base):
    """The synchronous client (the CLI, the magics). Streaming methods return iterators."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        super().__init__(url, token)
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PaiClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, method: str, path: str, headers: Any = None, **kwargs: Any) -> httpx.Response:
        """The raw answer (any status). Connection errors are :class:`PaiError`."""
        try:
            return self._http.request(method, path, headers=self._headers(headers), **kwargs)
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, exc) from None

    def _step(self, step: Any) -> Any:
        if isinstance(step, Request):
            return step.decode(self.send(step.method, step.path, step.headers, **self._args(step)))
        if isinstance(step, Sleep):
            return time.sleep(step.seconds)
        raise _unexpected(step)

    def _run(self, plan: Plan[Any]) -> Iterator[Any]:
        """Run a plan; yields what it emits, and ends with its result in ``StopIteration``."""
        send, value = plan.send, None
        while True:
            try:
                step = send(value)
            except StopIteration as done:
                return done.value  # the caller finds it in StopIteration.value
            if isinstance(step, Emit):
                yield step.value
                send, value = plan.send, None
                continue
            try:
                send, value = plan.send, self._step(step)
            except PaiError as exc:
                send, value = plan.throw, exc

    def _bind(self, op: Operation[Any]) -> Any:
        if op.streams:
            @functools.wraps(op.plan)
            def iterate(*args: Any, **kwargs: Any) -> Iterator[Any]:
                yield from self._run(op.plan(self, *args, **kwargs))
            return iterate

        @functools.wraps(op.plan)
        def run(*args: Any, **kwargs: Any) -> Any:
            steps = self._run(op.plan(self, *args, **kwargs))
            try:
                emitted = next(steps)
            except StopIteration as done:
                return done.value
            raise _unexpected(Emit(emitted))
        return run

    def framework(self, name: str) -> str:
        """``user~name`` of a job (asks who I am when needed); :meth:`resolve` by its old name."""
        return self.resolve(name)

    def event_stream(self, name: str) -> Iterator[SseEvent]:
        """The job's events as they happen: past ones first, then new ones; the last is
        ``SseEvent("end", {"state": ...})`` once the job has ended."""
        return iter_events(self._http, self.job_path(self.resolve(name)) + "/events", self._headers())


class AsyncPaiClient(_Base):
    """The asynchronous client (servers and kernels' event loops: the server extension, the
    widgets, the spawner). Methods are coroutines; streaming ones are async iterators."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        super().__init__(url, token)
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPaiClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def send(self, method: str, path: str, headers: Any = None, **kwargs: Any) -> httpx.Response:
        """The raw answer (any status): what a proxy passes on. Connection errors are PaiError."""
        try:
            return await self._http.request(method, path, headers=self._headers(headers), **kwargs)
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, exc) from None

    def open_stream(self, method: str, path: str, headers: Any = None, **kwargs: Any) -> Any:
        """``async with client.open_stream(...) as response``: an answer read as it arrives (a
        proxy passing on server-sent events); connection errors surface as ``httpx.HTTPError``."""
        kwargs.setdefault("timeout", httpx.Timeout(30.0, read=None))
        return self._http.stream(method, path, headers=self._headers(headers), **kwargs)

    async def _step(self, step: Any) -> Any:
        if isinstance(step, Request):
            return step.decode(await self.send(step.method, step.path, step.headers, **self._args(step)))
        if isinstance(step, Sleep):
            return await asyncio.sleep(step.seconds)
        raise _unexpected(step)

    async def _run(self, plan: Plan[Any], result: list[Any]) -> AsyncIterator[Any]:
        """Run a plan; yields what it emits and puts its result in ``result``."""
        send, value = plan.send, None
        while True:
            try:
                step = send(value)
            except StopIteration as done:
                result.append(done.value)
                return
            if isinstance(step, Emit):
                yield step.value
                send, value = plan.send, None
                continue
            try:
                send, value = plan.send, await self._step(step)
            except PaiError as exc:
                send, value = plan.throw, exc

    def _bind(self, op: Operation[Any]) -> Any:
        if op.streams:
            @functools.wraps(op.plan)
            async def iterate(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                async for value in self._run(op.plan(self, *args, **kwargs), []):
                    yield value
            return iterate

        @functools.wraps(op.plan)
        async def run(*args: Any, **kwargs: Any) -> Any:
            result: list[Any] = []
            async for emitted in self._run(op.plan(self, *args, **kwargs), result):
                raise _unexpected(Emit(emitted))
            return result[0]
        return run

    def framework(self, name: str) -> str:
        """``user~name`` of a job, with the caller's name known (no request; see :meth:`resolve`)."""
        return self.qualified(name)

    async def event_stream(self, name: str) -> AsyncIterator[SseEvent]:
        """The job's events as they happen: past ones first, then new ones; the last is
        ``SseEvent("end", {"state": ...})`` once the job has ended."""
        path = self.job_path(await self.resolve(name)) + "/events"
        async for event in aiter_events(self._http, path, self._headers()):
            yield event
