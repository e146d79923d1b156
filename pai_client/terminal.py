"""Connecting to a shell in a task: PAI's websocket speaks terminado's JSON messages
(``["stdin", text]``, ``["set_size", rows, cols]`` out; ``["stdout", text]``, ``["disconnect"]`` in).
Used by ``pai job debug`` and the notebook's terminal widget."""

from __future__ import annotations

import json
from typing import Any

from .errors import PaiError


async def connect(url: str, headers: dict[str, str], timeout: float = 15.0) -> Any:
    """The open websocket (tornado's ``WebSocketClientConnection``); a refusal (OpenPAI's
    ``{code, message}``) or an unreachable server is a :class:`PaiError`."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    try:
        return await websocket_connect(HTTPRequest(url, headers=headers, request_timeout=timeout))
    except HTTPClientError as exc:
        body = exc.response.body if exc.response is not None else b""
        try:
            err = json.loads(body)
            raise PaiError(exc.code, str(err["code"]), str(err["message"])) from None
        except (ValueError, KeyError, TypeError):
            raise PaiError(exc.code, "Error", str(exc)) from None
    except OSError as exc:
        raise PaiError(0, "ConnectionError", f"cannot connect to {url}: {exc}") from None


def message(kind: str, *args: Any) -> str:
    """One terminado message."""
    return json.dumps([kind, *args])


def parse(message_text: str) -> tuple[str, list[Any]]:
    """``(kind, arguments)`` of a message from the shell; ``("", [])`` for one that is not."""
    try:
        kind, *rest = json.loads(message_text)
    except (ValueError, TypeError):
        return "", []
    return str(kind), rest
