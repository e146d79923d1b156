"""The one error of the client: what the server (or the connection) refused, as OpenPAI says it."""

from __future__ import annotations

from typing import Any


class PaiError(Exception):
    """An error answered by the server (or the connection): ``code`` and a one-line ``message``.
    ``status`` is the HTTP status, 0 when no answer came (``ConnectionError``, ``Timeout``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


def raise_for(response: Any) -> None:
    """Raise the :class:`PaiError` an answer of status 400 or more stands for (OpenPAI's
    ``{code, message}`` body, or its text when the body is not JSON)."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        raise PaiError(response.status_code, "Error", response.text.strip() or response.reason_phrase) from None
    if not isinstance(body, dict):
        raise PaiError(response.status_code, "Error", response.text.strip())
    raise PaiError(response.status_code, str(body.get("code", "Error")), str(body.get("message", response.text)))
