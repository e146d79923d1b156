"""``PaiExtensionApp``: the server extension's configuration, routes and its one PAI client."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode

from pai_client import AsyncPaiClient
from pai_client.settings import client_settings
from pai_client.shared import close_shared, shared_client

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

    def initialize_handlers(self) -> None:
        self.handlers.extend([
            (r"/pai/api/context", handlers.ContextHandler),
            (r"/pai/api/(?:v2/)?jobs/([^/]+)/tasks/([A-Za-z0-9_]+)/(\d+)/terminal", handlers.TerminalProxyHandler),
            (r"/pai/api/(?:v2/)?(.*)", handlers.ProxyHandler),
            (r"/pai/nni/([^/]+)(/.*|)", handlers.ExperimentUiHandler),
        ])

    @property
    def client(self) -> AsyncPaiClient:
        """The one PAI client of the running event loop (the server has one): every handler and
        request shares its connection pool. Made on first use, on that loop."""
        url, token = client_settings(self.pai_url or None, self.pai_token or None)
        return shared_client(url, token)

    async def stop_extension(self) -> None:
        await close_shared()
