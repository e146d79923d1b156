"""PaiSpawners outside a hub: a user and server as JupyterHub would give them, no database."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pai_spawner import PaiSpawner


def spawner(name: str = "", user: str = "alice", **kwargs: Any) -> PaiSpawner:
    s = PaiSpawner(user=SimpleNamespace(name=user, url=f"/user/{user}/"), hub=None,
                   orm_spawner=SimpleNamespace(name=name, user_options=None, state=None, server=None), **kwargs)
    s.get_env = lambda: {"JUPYTERHUB_API_TOKEN": "hub-secret", "JUPYTERHUB_USER": user,
                         "JUPYTERHUB_SERVICE_PREFIX": f"/user/{user}/exp 1/"}
    s._token = lambda: f"hub-token-of-{user}"
    return s
