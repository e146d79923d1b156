"""PaiSpawner: JupyterHub notebook servers that are PAI jobs (entry point ``jupyterhub.spawners: pai``).

``PaiSpawner`` is loaded on first use: a JupyterHub spawner brings JupyterHub (and its database
layer, SQLAlchemy) along, which the hub has anyway but nothing else on the client side should
load just by importing ``pai_spawner.profiles`` (tests/test_layers.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spawner import PaiSpawner

__all__ = ["PaiSpawner"]


def __getattr__(name: str) -> Any:
    if name == "PaiSpawner":
        from .spawner import PaiSpawner

        return PaiSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
