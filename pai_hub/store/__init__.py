"""The store: the single source of truth. SQLite (WAL) by default, PostgreSQL by URL.

Every orchestrator decision is committed here before it is acted on; see :mod:`.db` for the
engine and migrations and :mod:`.models` for the tables.
"""

from .db import Store, open_store

__all__ = ["Store", "open_store"]
