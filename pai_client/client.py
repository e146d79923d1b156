"""The client's public names in one place (``from pai_client.client import PaiClient``).

The API's methods are in :mod:`pai_client.api`, the two transports in :mod:`pai_client.transport`,
settings in :mod:`pai_client.settings`, the event stream in :mod:`pai_client.sse`.
"""

from __future__ import annotations

from .api import API, MARKET, protocol_text
from .errors import PaiError
from .settings import hub_settings
from .sse import SseEvent
from .transport import AsyncPaiClient, PaiClient

__all__ = ["API", "MARKET", "AsyncPaiClient", "PaiClient", "PaiError", "SseEvent", "hub_settings", "protocol_text"]
