"""Hub pages, served by the PAI service behind Hub OAuth when it runs under JupyterHub.

``hub_routes`` is called at the end of ``pai_hub.app.routes()``: with ``$JUPYTERHUB_SERVICE_PREFIX``
set (the hub sets it for its services, e.g. ``/services/pai/``), it mounts the REST API a second
time below the prefix (the proxy forwards ``/services/pai/api/v2/...`` unchanged) and the pages;
without it (standalone ``pai server``) it mounts nothing.
"""

from __future__ import annotations

import os
import re


def hub_routes(api_routes: list[tuple[str, type]]) -> list[tuple[str, type]]:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "").rstrip("/")
    if not prefix:
        return []
    from . import pages

    p = re.escape(prefix)
    out = [(p + path, handler) for path, handler in api_routes]
    out += [(p + path, handler) for path, handler in pages.page_routes()]
    return out
