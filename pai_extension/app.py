"""``PaiExtensionApp``: the server extension's configuration and routes."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode

from pai_client.client import AsyncPaiClient, hub_settings

from . import handlers


class PaiExtensionApp(ExtensionApp):
    """PAI inside a Jupyter server: REST proxy, task terminals, this server's own job."""

    name = "pai_extension"
    load_other_extensions = True

    pai_url = Unicode(
        "", help="URL of the PAI service. Default: $PAI_URL, else (in a hub-spawned server) "
        "<hub>/services/pai from $JUPYTERHUB_API_URL, else http://127.0.0.1:9186.",
    ).tag(config=True)
    pai_token = Unicode(
        "", help="Token the server calls PAI with (as its user). Default: $PAI_TOKEN, else "
        "$JUPYTERHUB_API_TOKEN (the hub token of this server, which PAI accepts).",
    ).tag(config=True)

    _client: AsyncPaiClient | None = None

    def initialize_handlers(self) -> None:
        self.handlers.extend([
            (r"/pai/api/context", handlers.ContextHandler),
            (r"/pai/api/(?:v2/)?jobs/([^/]+)/tasks/([A-Za-z0-9_]+)/(\d+)/terminal", handlers.TerminalProxyHandler),
            (r"/pai/api/(?:v2/)?(.*)", handlers.ProxyHandler),
            (r"/pai/nni/([^/]+)(/.*|)", handlers.ExperimentUiHandler),
        ])

    @property
    def client(self) -> AsyncPaiClient:
        """One HTTP client for the server's life (made on the server's event loop)."""
        if self._client is None:
            env_url, env_token = hub_settings()
            self._client = AsyncPaiClient(self.pai_url or env_url or None, self.pai_token or env_token or None)
        return self._client

    async def stop_extension(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
