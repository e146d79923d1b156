"""The marketplace's rules over the store: who sees and changes what, versions, labels, stars.

Reading (``max_version``):

* an admin, and the author, see every version of an item;
* ``public`` items: everyone sees them — every version, or, when the admin requires review of
  public items, versions up to the newest one an admin approved (none: the item is invisible);
* ``groups`` items: members of any group in the item's group list see every version;
* ``private`` items: nobody else.

An item nobody lets you see answers "no such item" (404), as if it did not exist. Writing (edit,
new version, tags, categories, delete): its author or an admin; items in the category
``OFFICIAL_EXAMPLE`` only an admin. Versions are numbered from 1 and never change once written;
publishing the same content again makes no new version.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..store.db import Store
from ..store.marketplace import (
    MarketCategory,
    MarketItem,
    MarketItemCategory,
    MarketItemTag,
    MarketSetting,
    MarketStar,
    MarketTag,
    MarketVersion,
)
from .content import ITEM_TYPES, InvalidContent, as_text, check_content

OFFICIAL = "OFFICIAL_EXAMPLE"
VISIBILITIES = ("private", "groups", "public")
STATUSES = ("pending", "approved", "rejected")
ITEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LABEL_NAME = re.compile(r"^[^,\s](?:[^,]{0,62}[^,\s])?$")
SORTS = ("name", "updated", "created", "stars", "uses")


# --------------------------------------------------------------------------- errors
class MarketError(Exception):
    """A refusal; the API turns each subclass into its HTTP status and ``code``."""


class NoItem(MarketError):
    pass


class NoLabel(MarketError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Conflict(MarketError):
    pass


class Forbidden(MarketError):
    pass


class Invalid(MarketError):
    pass


@dataclass(frozen=True)
class Viewer:
    """Who is asking: the token's user, admin flag and groups (``grouplist``)."""

    username: str
    admin: bool = False
    groups: frozenset[str] = field(default_factory=frozenset)


def split_ref(ref: str) -> tuple[str, int | None]:
    """``name`` → (name, None); ``name@3`` → (name, 3). Raises :class:`Invalid`."""
    name, sep, version = ref.partition("@")
    if not sep:
        return ref, None
    if not version.isdigit() or int(version) < 1:
        raise Invalid(f"{ref!r}: the version after '@' must be a number ≥ 1")
    return name, int(version)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _names(values: Any, field_name: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [v for v in values.split(",")]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise Invalid(f"{field_name}: must be a list of names")
    out: list[str] = []
    for v in (v.strip() for v in values):
        if not v:
            continue
        if not LABEL_NAME.match(v):
            raise Invalid(f"{field_name}: {v!r} is not a valid name (up to 64 characters, no commas)")
        if v not in out:
            out.append(v)
    return out


def visibility_of(body: dict[str, Any]) -> tuple[str | None, list[str] | None]:
    """Visibility and group list from a request body: ours (``visibility``) or openpaimarketplace's
    (``isPublic``/``isPrivate``/``groupList``). None: not given."""
    groups = body.get("groupList", body.get("groups"))
    if groups is not None:
        groups = _names(groups, "groupList")
    vis = body.get("visibility")
    if vis is not None:
        if vis not in VISIBILITIES:
            raise Invalid(f"visibility: must be one of {', '.join(VISIBILITIES)}, got {vis!r}")
        return vis, groups
    if body.get("isPublic") is True:
        return "public", groups
    if body.get("isPrivate") is True:
        return "private", groups
    if groups or body.get("isPublic") is False or body.get("isPrivate") is False:
        return ("groups" if groups else "private"), groups
    return None, groups


class MarketRepository:
    """The marketplace over one :class:`~pai_hub.store.db.Store`.

    ``review_public``: a bool or a callable read at each decision (``PaiHub.marketplace_review_public``);
    ``group_exists``: checks the group list of ``groups`` items (None: not checked).
    """

    def __init__(self, store: Store, review_public: bool | Callable[[], bool] = False,
                 group_exists: Callable[[str], bool] | None = None) -> None:
        self.store = store
        self._review = review_public if callable(review_public) else (lambda: bool(review_public))
        self.group_exists = group_exists

    @property
    def review_required(self) -> bool:
        return bool(self._review())

    # -- visibility ------------------------------------------------------------------------------
    def max_version(self, item: MarketItem, viewer: Viewer) -> int | None:
        """The newest version ``viewer`` may read (every older one too), or None."""
        if viewer.admin or viewer.username == item.author:
            return item.latest_version
        if item.visibility == "public":
            return item.approved_version if self.review_required else item.latest_version
        if item.visibility == "groups" and viewer.groups & set(item.group_list or []):
            return item.latest_version
        return None

    @staticmethod
    def _find(s: Session, ref: str) -> MarketItem | None:
        item = s.get(MarketItem, ref) if len(ref) == 36 else None
        return item or s.scalar(select(MarketItem).where(MarketItem.name == ref))

    def _readable(self, s: Session, ref: str, viewer: Viewer) -> tuple[MarketItem, int]:
        item = self._find(s, ref)
        top = self.max_version(item, viewer) if item is not None else None
        if item is None or top is None:
            raise NoItem(f"no item {ref!r} visible to you")
        return item, top

    def _writable(self, s: Session, ref: str, viewer: Viewer) -> MarketItem:
        item, _ = self._readable(s, ref, viewer)
        if viewer.admin:
            return item
        if viewer.username != item.author:
            raise Forbidden(f"only the author of item {item.name} ({item.author}) or an admin may change it")
        if OFFICIAL in self._item_labels(s, "category", item.id):
            raise Forbidden(f"item {item.name} is an official example (category {OFFICIAL}); only admins "
                            "may change it")
        return item

    # -- views ---------------------------------------------------------------------------------
    def _item_labels(self, s: Session, kind: str, item_id: str) -> list[str]:
        link, model, key = self._label_tables(kind)
        rows = s.scalars(select(model.name).join(link, getattr(link, key) == model.id)
                         .where(link.item_id == item_id).order_by(model.name))
        return list(rows)

    def _all_labels(self, s: Session, kind: str) -> dict[str, list[str]]:
        link, model, key = self._label_tables(kind)
        out: dict[str, list[str]] = {}
        for item_id, name in s.execute(select(link.item_id, model.name).join(model, getattr(link, key) == model.id)
                                       .order_by(model.name)):
            out.setdefault(item_id, []).append(name)
        return out

    def _view(self, s: Session, item: MarketItem, viewer: Viewer, top: int, version: int | None = None, *,
              tags: list[str] | None = None, categories: list[str] | None = None,
              stars: int | None = None, starred: bool | None = None) -> dict[str, Any]:
        shown = version or top
        row = s.get(MarketVersion, (item.id, shown))
        if stars is None:
            stars = s.scalar(select(func.count()).select_from(MarketStar).where(MarketStar.item_id == item.id)) or 0
        if starred is None:
            starred = s.get(MarketStar, (item.id, viewer.username)) is not None
        return {
            "id": item.id,
            "name": item.name,
            "author": item.author,
            "type": item.type,
            "source": item.source,
            "visibility": item.visibility,
            "isPublic": item.visibility == "public",
            "isPrivate": item.visibility == "private",
            "groupList": list(item.group_list or []),
            "summary": item.summary,
            "description": item.description,
            "tags": tags if tags is not None else self._item_labels(s, "tag", item.id),
            "categories": categories if categories is not None else self._item_labels(s, "category", item.id),
            "protocol": row.content if row else "",
            "version": shown,
            "latestVersion": top,
            "versions": list(range(1, top + 1)),
            "publisher": row.publisher if row else item.author,
            "versionCreatedAt": _iso(row.created_at) if row else None,
            "status": item.status,
            "useNumber": item.use_count,
            "starNumber": stars,
            "starred": starred,
            "createdAt": _iso(item.created_at),
            "updatedAt": _iso(item.updated_at),
        }

    # -- reading -------------------------------------------------------------------------------
    def get(self, viewer: Viewer, ref: str, version: int | None = None) -> dict[str, Any]:
        name, pinned = split_ref(ref)
        version = version or pinned
        with self.store.sessions() as s:
            item, top = self._readable(s, name, viewer)
            if version is not None and version > top:
                raise NoItem(f"item {item.name} has no version {version} visible to you "
                             f"(versions 1 to {top})")
            return self._view(s, item, viewer, top, version)

    def list(self, viewer: Viewer, *, name: str | None = None, author: str | None = None,
             type: str | None = None, source: str | None = None, keyword: str | None = None,
             tags: Iterable[str] = (), categories: Iterable[str] = (), status: str | None = None,
             visibility: str | None = None, starred: bool = False, sort: str = "name") -> list[dict[str, Any]]:
        """Items ``viewer`` may read that match every filter given (openpaimarketplace's list query:
        ``keyword`` is a case-insensitive substring of name, author, summary or a tag; ``tags`` and
        ``categories`` must all be on the item; ``type`` may be a comma list, ``all`` = any)."""
        if sort not in SORTS:
            raise Invalid(f"sort: must be one of {', '.join(SORTS)}, got {sort!r}")
        types = {t for t in (type or "").split(",") if t and t != "all"}
        if unknown := types - set(ITEM_TYPES):
            raise Invalid(f"type: {', '.join(sorted(unknown))} is not an item type; types: {', '.join(ITEM_TYPES)}")
        want_tags, want_cats = set(_names(list(tags), "tag")), set(_names(list(categories), "category"))
        needle = (keyword or "").strip().lower()
        with self.store.sessions() as s:
            query = select(MarketItem)
            if name:
                query = query.where(MarketItem.name == name)
            if author:
                query = query.where(MarketItem.author == author)
            if types:
                query = query.where(MarketItem.type.in_(types))
            if source:
                query = query.where(MarketItem.source == source)
            if status:
                query = query.where(MarketItem.status == status)
            if visibility:
                query = query.where(MarketItem.visibility == visibility)
            all_tags, all_cats = self._all_labels(s, "tag"), self._all_labels(s, "category")
            counts = dict(s.execute(select(MarketStar.item_id, func.count()).group_by(MarketStar.item_id)).all())
            mine = set(s.scalars(select(MarketStar.item_id).where(MarketStar.username == viewer.username)))
            out = []
            for item in s.scalars(query):
                top = self.max_version(item, viewer)
                if top is None:
                    continue
                item_tags, item_cats = all_tags.get(item.id, []), all_cats.get(item.id, [])
                if not want_tags <= set(item_tags) or not want_cats <= set(item_cats):
                    continue
                if starred and item.id not in mine:
                    continue
                if needle and not any(needle in (v or "").lower()
                                      for v in (item.name, item.author, item.summary, *item_tags)):
                    continue
                out.append(self._view(s, item, viewer, top, tags=item_tags, categories=item_cats,
                                      stars=counts.get(item.id, 0), starred=item.id in mine))
        keys: dict[str, Callable[[dict], Any]] = {
            "name": lambda v: v["name"].lower(),
            "updated": lambda v: v["updatedAt"],
            "created": lambda v: v["createdAt"],
            "stars": lambda v: (-v["starNumber"], v["name"].lower()),
            "uses": lambda v: (-v["useNumber"], v["name"].lower()),
        }
        out.sort(key=keys[sort], reverse=sort in ("updated", "created"))
        return out

    def versions(self, viewer: Viewer, ref: str) -> list[dict[str, Any]]:
        with self.store.sessions() as s:
            item, top = self._readable(s, split_ref(ref)[0], viewer)
            rows = s.scalars(select(MarketVersion).where(MarketVersion.item_id == item.id,
                                                         MarketVersion.version <= top)
                             .order_by(MarketVersion.version))
            return [{"version": r.version, "publisher": r.publisher, "createdAt": _iso(r.created_at),
                     "approved": item.approved_version is not None and r.version <= item.approved_version}
                    for r in rows]

    def lookup(self, viewer: Viewer, name: str, version: int | None = None) -> tuple[str, str, int, str]:
        """(item name, type, version, content) of ``name`` as ``viewer`` sees it (latest visible
        version unless ``version``). Raises :class:`NoItem`."""
        with self.store.sessions() as s:
            item = s.scalar(select(MarketItem).where(MarketItem.name == name))
            top = self.max_version(item, viewer) if item is not None else None
            if item is None or top is None:
                raise NoItem(f'no item "{name}" visible to you')
            if version is not None and version > top:
                raise NoItem(f'item "{name}" has no version {version} visible to you (versions 1 to {top})')
            v = version or top
            row = s.get(MarketVersion, (item.id, v))
            assert row is not None
            return item.name, item.type, v, row.content

    # -- writing -------------------------------------------------------------------------------
    def _check_groups(self, visibility: str | None, groups: list[str] | None) -> None:
        if visibility == "groups" and not groups:
            raise Invalid("groupList: a groups item needs at least one group")
        if groups and self.group_exists is not None:
            missing = [g for g in groups if not self.group_exists(g)]
            if missing:
                raise Invalid(f"groupList: no group {', '.join(missing)}")

    def _set_visibility(self, item: MarketItem, viewer: Viewer, visibility: str | None,
                        groups: list[str] | None) -> None:
        if groups is not None:
            item.group_list = groups
        if visibility is None or visibility == item.visibility:
            return
        item.visibility = visibility
        if visibility == "public" and self.review_required and not viewer.admin:
            item.status, item.approved_version = "pending", None
        else:
            item.status, item.approved_version = "approved", item.latest_version

    def _new_version(self, s: Session, item: MarketItem, viewer: Viewer, text: str, now: float) -> None:
        item.latest_version = (item.latest_version or 0) + 1
        s.add(MarketVersion(item_id=item.id, version=item.latest_version, content=text,
                            publisher=viewer.username, created_at=now))
        if item.visibility == "public" and self.review_required and not viewer.admin:
            item.status = "pending"  # others keep seeing the approved versions meanwhile
        else:
            item.status, item.approved_version = "approved", item.latest_version

    def publish(self, viewer: Viewer, *, name: str, type: str, content: Any, visibility: str | None = None,
                groups: list[str] | None = None, summary: str | None = None, description: str | None = None,
                tags: Any = None, categories: Any = None, source: str = "marketplace",
                resolve: Callable[[dict], dict] | None = None) -> tuple[dict[str, Any], bool]:
        """Create item ``name`` (version 1) or, by its author (or an admin), add a version.
        Returns the item as the publisher sees it and whether a version was written."""
        if not isinstance(name, str) or not ITEM_NAME.match(name):
            raise Invalid("name: required; letters, digits, '_', '-' and '.', starting with a letter or digit "
                          "(at most 128)")
        if type not in ITEM_TYPES:
            raise Invalid(f"type: must be one of {', '.join(ITEM_TYPES)}, got {type!r}")
        text = as_text(content)
        if not text.strip():
            raise InvalidContent("protocol: empty")
        check_content(type, name, text, resolve)
        self._check_groups(visibility, groups)
        tag_names, cat_names = _names(tags, "tags"), _names(categories, "categories")
        now = time.time()
        try:
            return self._publish(viewer, now, name, type, text, visibility, groups, summary, description,
                                 tags, categories, tag_names, cat_names, source)
        except IntegrityError:  # another publish of this name won the race
            raise Conflict(f"item {name} was published meanwhile; try again") from None

    def _publish(self, viewer: Viewer, now: float, name: str, type: str, text: str, visibility: str | None,
                 groups: list[str] | None, summary: str | None, description: str | None, tags: Any,
                 categories: Any, tag_names: list[str], cat_names: list[str],
                 source: str) -> tuple[dict[str, Any], bool]:
        with self.store.sessions.begin() as s:
            item = s.scalar(select(MarketItem).where(MarketItem.name == name))
            created = True
            if item is None:
                if visibility == "groups" and not groups:
                    raise Invalid("groupList: a groups item needs at least one group")
                item = MarketItem(id=str(uuid.uuid4()), name=name, author=viewer.username, type=type,
                                  visibility=visibility or "private", group_list=groups or [],
                                  summary=summary or "", description=description or "", source=source,
                                  status="approved", approved_version=None, latest_version=0, use_count=0,
                                  created_at=now, updated_at=now)
                s.add(item)
                s.flush()
                self._new_version(s, item, viewer, text, now)  # pending public items stay unapproved
            else:
                if item.author != viewer.username and not viewer.admin:
                    raise Conflict(f"the name {name} is taken by another author's item; choose another name")
                if item.type != type:
                    raise Invalid(f"type: item {name} is a {item.type} item, not {type}")
                self._writable(s, item.id, viewer)
                latest = s.get(MarketVersion, (item.id, item.latest_version))
                if latest is not None and latest.content == text:
                    created = False
                else:
                    self._new_version(s, item, viewer, text, now)
                if groups is not None or visibility is not None:
                    self._check_groups(visibility or item.visibility, groups if groups is not None
                                       else list(item.group_list or []))
                self._set_visibility(item, viewer, visibility, groups)
                if summary is not None:
                    item.summary = summary
                if description is not None:
                    item.description = description
                item.updated_at = now
            if tags is not None:
                self._set_item_labels(s, viewer, item, "tag", tag_names)
            if categories is not None:
                self._set_item_labels(s, viewer, item, "category", cat_names)
            s.flush()
            return self._view(s, item, viewer, item.latest_version), created

    def update(self, viewer: Viewer, ref: str, body: dict[str, Any],
               resolve: Callable[[dict], dict] | None = None) -> dict[str, Any]:
        """Change metadata; a changed ``protocol`` becomes a new version; ``status`` (admins)."""
        unknown = set(body) - {"summary", "description", "visibility", "isPublic", "isPrivate", "groupList",
                               "groups", "tags", "categories", "protocol", "status", "id", "name", "author",
                               "type", "source", "createdAt", "updatedAt", "useNumber", "starNumber",
                               "version", "latestVersion", "versions", "starred", "publisher",
                               "versionCreatedAt", "dataType", "dataUrl", "useBlob"}
        if unknown:
            raise Invalid(f"unknown field {sorted(unknown)[0]!r}")
        visibility, groups = visibility_of(body)
        with self.store.sessions() as s:
            current = self._writable(s, split_ref(ref)[0], viewer)
            item_id, item_type, item_name = current.id, current.type, current.name
            for key in ("name", "author", "type"):
                if key in body and body[key] != getattr(current, key):
                    raise Invalid(f"{key}: cannot be changed (publish a new item instead)")
        text = None
        if body.get("protocol") not in (None, ""):
            text = as_text(body["protocol"])
            check_content(item_type, item_name, text, resolve)
        for key in ("summary", "description"):
            if key in body and not isinstance(body[key], str):
                raise Invalid(f"{key}: must be a string")
        now = time.time()
        with self.store.sessions.begin() as s:
            item = self._writable(s, item_id, viewer)
            if text is not None:
                latest = s.get(MarketVersion, (item.id, item.latest_version))
                if latest is None or latest.content != text:
                    self._new_version(s, item, viewer, text, now)
            if visibility is not None or groups is not None:
                self._check_groups(visibility or item.visibility,
                                   groups if groups is not None else list(item.group_list or []))
            self._set_visibility(item, viewer, visibility, groups)
            for key in ("summary", "description"):
                if key in body:
                    setattr(item, key, body[key])
            if "tags" in body:
                self._set_item_labels(s, viewer, item, "tag", _names(body["tags"], "tags"))
            if "categories" in body:
                self._set_item_labels(s, viewer, item, "category", _names(body["categories"], "categories"))
            if "status" in body and body["status"] != item.status:
                self._set_status(item, viewer, body["status"])
            item.updated_at = now
            s.flush()
            return self._view(s, item, viewer, item.latest_version)

    def _set_status(self, item: MarketItem, viewer: Viewer, status: Any) -> None:
        if not viewer.admin:
            raise Forbidden("only admins may review items (status)")
        if status not in STATUSES:
            raise Invalid(f"status: must be one of {', '.join(STATUSES)}, got {status!r}")
        item.status = status
        if status == "approved":
            item.approved_version = item.latest_version

    def set_status(self, viewer: Viewer, ref: str, status: Any) -> dict[str, Any]:
        with self.store.sessions.begin() as s:
            item, _ = self._readable(s, split_ref(ref)[0], viewer)
            self._set_status(item, viewer, status)
            item.updated_at = time.time()
            s.flush()
            return self._view(s, item, viewer, item.latest_version)

    def delete(self, viewer: Viewer, ref: str) -> str:
        with self.store.sessions.begin() as s:
            item = self._writable(s, split_ref(ref)[0], viewer)
            name = item.name
            for model in (MarketItemTag, MarketItemCategory, MarketStar, MarketVersion):
                s.execute(delete(model).where(model.item_id == item.id))
            s.delete(item)
        return name

    # -- stars and uses ------------------------------------------------------------------------
    def star(self, viewer: Viewer, ref: str, on: bool | None) -> dict[str, Any]:
        """``on`` True: star, False: unstar, None: only read."""
        with self.store.sessions.begin() as s:
            item, _ = self._readable(s, split_ref(ref)[0], viewer)
            row = s.get(MarketStar, (item.id, viewer.username))
            if on and row is None:
                s.add(MarketStar(item_id=item.id, username=viewer.username, created_at=time.time()))
            elif on is False and row is not None:
                s.delete(row)
            s.flush()
            count = s.scalar(select(func.count()).select_from(MarketStar).where(MarketStar.item_id == item.id))
            starred = s.get(MarketStar, (item.id, viewer.username)) is not None
            return {"item": item.name, "starred": starred, "starNumber": count or 0}

    def use(self, viewer: Viewer, ref: str, count: int = 1) -> dict[str, Any]:
        with self.store.sessions.begin() as s:
            item, top = self._readable(s, split_ref(ref)[0], viewer)
            item.use_count = (item.use_count or 0) + count
            return {"item": item.name, "useNumber": item.use_count, "latestVersion": top}

    # -- tags and categories -------------------------------------------------------------------
    @staticmethod
    def _label_tables(kind: str) -> tuple[Any, Any, str]:
        if kind == "tag":
            return MarketItemTag, MarketTag, "tag_id"
        return MarketItemCategory, MarketCategory, "category_id"

    @staticmethod
    def _label_view(row: Any, kind: str, count: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": row.id, "name": row.name}
        if kind == "category":
            out["description"] = row.description
        if count is not None:
            out["itemNumber"] = count
        return out

    def _find_label(self, s: Session, kind: str, ref: str | int) -> Any:
        _, model, _ = self._label_tables(kind)
        row = s.get(model, int(ref)) if str(ref).isdigit() else None
        row = row or s.scalar(select(model).where(model.name == str(ref)))
        if row is None:
            raise NoLabel(kind, f"no {kind} {ref!r}")
        return row

    def _label_row(self, s: Session, viewer: Viewer, kind: str, ref: str | int) -> Any:
        """The tag or category ``ref`` (id or name); unknown tags named are created."""
        try:
            return self._find_label(s, kind, ref)
        except NoLabel:
            if kind == "category" and not viewer.admin:
                existing = ", ".join(s.scalars(select(MarketCategory.name).order_by(MarketCategory.name)))
                raise Invalid(f"categories: no category {ref!r} (only admins create categories); "
                              f"categories: {existing or 'none'}") from None
            if str(ref).isdigit() or not LABEL_NAME.match(str(ref)):
                raise
            _, model, _ = self._label_tables(kind)
            row = model(name=str(ref)) if kind == "tag" else model(name=str(ref), description="")
            s.add(row)
            s.flush()
            return row

    def _set_item_labels(self, s: Session, viewer: Viewer, item: MarketItem, kind: str, names: list[str]) -> None:
        link, _, key = self._label_tables(kind)
        before = set(self._item_labels(s, kind, item.id))
        if kind == "category" and not viewer.admin and (OFFICIAL in before) != (OFFICIAL in names):
            raise Forbidden(f"only admins may put items in or take them out of category {OFFICIAL}")
        rows = [self._label_row(s, viewer, kind, n) for n in names]
        s.execute(delete(link).where(link.item_id == item.id))
        for row in rows:
            s.add(link(item_id=item.id, **{key: row.id}))

    def labels(self, viewer: Viewer, kind: str) -> list[dict[str, Any]]:
        link, model, key = self._label_tables(kind)
        with self.store.sessions() as s:
            visible = {i.id for i in s.scalars(select(MarketItem)) if self.max_version(i, viewer) is not None}
            counts: dict[int, int] = {}
            used: set[int] = set()
            for item_id, label_id in s.execute(select(link.item_id, getattr(link, key))):
                used.add(label_id)
                if item_id in visible:
                    counts[label_id] = counts.get(label_id, 0) + 1
            rows = s.scalars(select(model).order_by(model.name))
            return [self._label_view(r, kind, counts.get(r.id, 0)) for r in rows
                    if self._label_shown(viewer, kind, r.id, counts, used)]

    @staticmethod
    def _label_shown(viewer: Viewer, kind: str, label_id: int, counts: dict[int, int], used: set[int]) -> bool:
        """A tag carried only by items the viewer may not see is not theirs to see either: its name
        would tell what others keep private. Categories are admins' own words: always shown."""
        return kind != "tag" or viewer.admin or counts.get(label_id, 0) > 0 or label_id not in used

    def label(self, viewer: Viewer, kind: str, ref: str) -> dict[str, Any]:
        link, _, key = self._label_tables(kind)
        with self.store.sessions() as s:
            row = self._find_label(s, kind, ref)
            carriers = list(s.scalars(select(MarketItem).join(link, link.item_id == MarketItem.id)
                                      .where(getattr(link, key) == row.id).order_by(MarketItem.name)))
            items = [i for i in carriers if self.max_version(i, viewer) is not None]
            if not self._label_shown(viewer, kind, row.id, {row.id: len(items)}, {row.id} if carriers else set()):
                raise NoLabel(kind, f"no {kind} {ref!r}")  # as if it did not exist
            return {**self._label_view(row, kind, len(items)), "items": [i.name for i in items]}

    def create_label(self, viewer: Viewer, kind: str, name: Any, description: Any = None) -> tuple[dict, bool]:
        if kind == "category" and not viewer.admin:
            raise Forbidden("only admins may create categories")
        if not isinstance(name, str) or not LABEL_NAME.match(name.strip()):
            raise Invalid("name: required; up to 64 characters, no commas")
        name = name.strip()
        with self.store.sessions.begin() as s:
            _, model, _ = self._label_tables(kind)
            row = s.scalar(select(model).where(model.name == name))
            if row is not None:
                return self._label_view(row, kind), False
            row = model(name=name) if kind == "tag" else model(name=name, description=str(description or ""))
            s.add(row)
            s.flush()
            return self._label_view(row, kind), True

    def update_label(self, viewer: Viewer, kind: str, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        if not viewer.admin:
            raise Forbidden(f"only admins may change {kind}s")
        with self.store.sessions.begin() as s:
            row = self._find_label(s, kind, ref)
            name = body.get("name", row.name)
            if not isinstance(name, str) or not LABEL_NAME.match(name.strip()):
                raise Invalid("name: up to 64 characters, no commas")
            name = name.strip()
            if row.name == OFFICIAL and name != OFFICIAL:
                raise Forbidden(f"category {OFFICIAL} is built in and cannot be renamed")
            _, model, _ = self._label_tables(kind)
            other = s.scalar(select(model).where(model.name == name))
            if other is not None and other.id != row.id:
                raise Conflict(f"{kind} {name} already exists")
            row.name = name
            if kind == "category" and "description" in body:
                row.description = str(body["description"] or "")
            s.flush()
            return self._label_view(row, kind)

    def delete_label(self, viewer: Viewer, kind: str, ref: str) -> str:
        if not viewer.admin:
            raise Forbidden(f"only admins may delete {kind}s")
        link, _, key = self._label_tables(kind)
        with self.store.sessions.begin() as s:
            row = self._find_label(s, kind, ref)
            if kind == "category" and row.name == OFFICIAL:
                raise Forbidden(f"category {OFFICIAL} is built in and cannot be deleted")
            s.execute(delete(link).where(getattr(link, key) == row.id))
            name = row.name
            s.delete(row)
        return name

    def item_labels(self, viewer: Viewer, kind: str, ref: str) -> list[dict[str, Any]]:
        link, model, key = self._label_tables(kind)
        with self.store.sessions() as s:
            item, _ = self._readable(s, split_ref(ref)[0], viewer)
            rows = s.scalars(select(model).join(link, getattr(link, key) == model.id)
                             .where(link.item_id == item.id).order_by(model.name))
            return [self._label_view(r, kind) for r in rows]

    def change_item_label(self, viewer: Viewer, kind: str, ref: str, label: str, add: bool) -> list[dict[str, Any]]:
        with self.store.sessions.begin() as s:
            item = self._writable(s, split_ref(ref)[0], viewer)
            names = self._item_labels(s, kind, item.id)
            if add:
                row = self._label_row(s, viewer, kind, label)
                wanted = [*names, row.name] if row.name not in names else names
            else:
                row = self._find_label(s, kind, label)
                if row.name not in names:
                    raise NoLabel(kind, f"item {item.name} has no {kind} {row.name!r}")
                wanted = [n for n in names if n != row.name]
            self._set_item_labels(s, viewer, item, kind, wanted)
            item.updated_at = time.time()
        return self.item_labels(viewer, kind, ref)

    # -- bookkeeping ---------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        with self.store.sessions() as s:
            row = s.get(MarketSetting, key)
            return row.value if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self.store.sessions.begin() as s:
            row = s.get(MarketSetting, key)
            if row is None:
                s.add(MarketSetting(key=key, value=value))
            else:
                row.value = value

    def ensure_category(self, name: str, description: str = "") -> None:
        with self.store.sessions.begin() as s:
            if s.scalar(select(MarketCategory).where(MarketCategory.name == name)) is None:
                s.add(MarketCategory(name=name, description=description))
