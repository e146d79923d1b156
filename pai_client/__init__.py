"""The one Python client of the PAI REST API (OpenPAI v2 and our extensions).

Everything on the client side builds on it: the ``pai`` CLI (:mod:`pai_client.cli`), the ``%pai``
magics and widgets, PaiSpawner and the Jupyter server extension. Every API method is defined once
(:mod:`pai_client.api`) and run by two thin transports (:mod:`pai_client.transport`): ``PaiClient``
(synchronous) and ``AsyncPaiClient`` (asyncio). It depends on httpx and httpx-sse; importing it
never loads a server package. :mod:`pai_client.jobdoc` (one definition of a job document) is
standard library only.
"""

from .client import API, MARKET, AsyncPaiClient, PaiClient, PaiError, SseEvent, hub_settings

__all__ = ["API", "MARKET", "AsyncPaiClient", "PaiClient", "PaiError", "SseEvent", "hub_settings"]
