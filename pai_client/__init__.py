"""The one Python client of the PAI REST API (OpenPAI v2 and our extensions).

Everything on the client side builds on it: the ``pai`` CLI, the ``%pai`` magics and widgets,
PaiSpawner and the Jupyter server extension. It depends on httpx only; importing it never loads a
server package.
"""

from .client import API, MARKET, AsyncPaiClient, PaiClient, PaiError, hub_settings

__all__ = ["API", "MARKET", "AsyncPaiClient", "PaiClient", "PaiError", "hub_settings"]
