"""Where the client finds PAI and its token: arguments, else ``PAI_URL`` / ``PAI_TOKEN``, else the
JupyterHub environment of a hub-spawned notebook (docs/notebook.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_URL = "http://127.0.0.1:9186"


def hub_settings(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """The PAI URL and token of this process: ``PAI_URL`` / ``PAI_TOKEN`` when set; else, inside a
    hub-spawned notebook, the PAI service under the hub (``<hub>/services/<PAI_SERVICE_NAME or pai>``,
    the hub's public URL when known, else the base of ``JUPYTERHUB_API_URL``) with the user's
    ``JUPYTERHUB_API_TOKEN``. ``(None, None)`` when neither is there."""
    env = os.environ if environ is None else environ
    token = env.get("PAI_TOKEN") or env.get("JUPYTERHUB_API_TOKEN") or None
    if env.get("PAI_URL"):
        return env["PAI_URL"], token
    hub = env.get("JUPYTERHUB_PUBLIC_HUB_URL") or env.get("JUPYTERHUB_API_URL")
    if not hub:
        return None, token
    base = hub.rstrip("/")
    for suffix in ("/hub/api", "/hub"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return f"{base}/services/{env.get('PAI_SERVICE_NAME') or 'pai'}", token


def client_settings(url: str | None, token: str | None) -> tuple[str, str | None]:
    """The URL (no trailing slash) and token a client uses: the arguments win over the environment."""
    env_url, env_token = hub_settings()
    return (url or env_url or DEFAULT_URL).rstrip("/"), token or env_token
