"""The marketplace: job templates and prerequisites (data, script, docker image) shared between
users, versioned, with visibility (private / groups / public), review of public items, tags,
categories, stars and use counts; an openpaimarketplace-compatible REST API under
``/marketplace/api`` (``pai_hub/api/marketplace.py``), ``pai market`` on the command line, and
references from jobs (``prerequisites[i].marketplace: <item>[@<version>]``, resolved at submit
by :func:`resolve_references`). The user and admin guide is ``docs/marketplace.md``.
"""

from __future__ import annotations

from typing import Any

from .content import ITEM_TYPES, InvalidContent
from .examples import EXAMPLES_AUTHOR, import_examples
from .repository import OFFICIAL, MarketRepository, Viewer
from .resolve import record_use, resolve_references, set_default_repository

__all__ = [
    "EXAMPLES_AUTHOR",
    "ITEM_TYPES",
    "OFFICIAL",
    "InvalidContent",
    "MarketRepository",
    "Viewer",
    "import_examples",
    "record_use",
    "resolve_references",
    "setup_marketplace",
]


def setup_marketplace(pai: Any) -> MarketRepository:
    """At server start (after the store, users and groups): the marketplace as ``pai.marketplace``,
    the default for :func:`resolve_references`, and the examples imported on first start."""
    repo = MarketRepository(pai.store, review_public=lambda: bool(getattr(pai, "marketplace_review_public", False)),
                            group_exists=lambda name: pai.groups.get(name) is not None)
    pai.marketplace = repo
    set_default_repository(repo)
    import_examples(repo)
    return repo
