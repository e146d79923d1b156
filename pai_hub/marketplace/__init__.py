"""The marketplace: job templates and prerequisites (data, script, docker image) shared between
users, versioned, with visibility (private / groups / public), review of public items, tags,
categories, stars and use counts; an openpaimarketplace-compatible REST API under
``/marketplace/api`` (``pai_hub/api/marketplace.py``), ``pai market`` on the command line, and
references from jobs (``prerequisites[i].marketplace: <item>[@<version>]``, resolved at submit
by :func:`resolve_references`). The user and admin guide is ``docs/marketplace.md``.
"""

from __future__ import annotations

from ..store.db import Store
from ..store.users import GroupRepository
from .content import ITEM_TYPES, InvalidContent
from .examples import EXAMPLES_AUTHOR, import_examples
from .repository import OFFICIAL, MarketRepository, Viewer
from .resolve import record_use, resolve_references

__all__ = [
    "EXAMPLES_AUTHOR",
    "ITEM_TYPES",
    "OFFICIAL",
    "InvalidContent",
    "MarketRepository",
    "Viewer",
    "import_examples",
    "open_marketplace",
    "record_use",
    "resolve_references",
]


def open_marketplace(store: Store, groups: GroupRepository, review_public: bool = False) -> MarketRepository:
    """At server start (after the store, users and groups): the marketplace over ``store``, with the
    official examples imported on first start. ``review_public`` is ``PaiHub.marketplace_review_public``."""
    repo = MarketRepository(store, review_public=review_public,
                            group_exists=lambda name: groups.get(name) is not None)
    import_examples(repo)
    return repo
