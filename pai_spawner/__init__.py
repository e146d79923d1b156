"""PaiSpawner: JupyterHub notebook servers that are PAI jobs (entry point ``jupyterhub.spawners: pai``)."""

from .spawner import PaiSpawner

__all__ = ["PaiSpawner"]
