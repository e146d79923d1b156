"""The marketplace REST API under ``/marketplace/api`` (openpaimarketplace's routes, notes §5.1).

Compatible with openpaimarketplace's item, tag and category routes and item fields
(``isPublic``/``isPrivate``/``groupList``, ``protocol``, ``useNumber``, ``starNumber``, ``status``),
with these differences (all documented in ``docs/marketplace.md``):

* every route needs a token, the welcome included; errors are ``{code, message}`` JSON, not text;
* an item you may not read answers 404 ``NoItemError`` (openpaimarketplace: 403);
* items are versioned (``name@3``), typed (template / data / script / dockerimage) and may be
  addressed by id or by name; ``POST /items`` with the name of your own item adds a version;
* stars (``/items/{id}/star``), uses (``/items/{id}/use``), versions, and review of public items
  (``/items/{id}/status``) are extra; blob storages (``/storages/blobs``) are not served.

The rules live in :mod:`pai_hub.marketplace.repository`; this module maps them to HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..marketplace import InvalidContent, Viewer
from ..marketplace.repository import Conflict, Forbidden, Invalid, NoItem, NoLabel, visibility_of
from ..marketplace.resolve import resolve_references
from .base import BaseHandler, parse_int
from .errors import ApiError, bad_params

PREFIX = "/marketplace/api"
ITEM = r"([^/]+)"
T = TypeVar("T")


def _error(exc: Exception) -> ApiError:
    if isinstance(exc, NoItem):
        return ApiError(404, "NoItemError", str(exc))
    if isinstance(exc, NoLabel):
        if exc.kind == "tag":
            return ApiError(404, "NoTagError", str(exc))
        return ApiError(404, "NoCategoryError", str(exc))
    if isinstance(exc, Conflict):
        return ApiError(409, "ConflictItemError", str(exc))
    if isinstance(exc, Forbidden):
        return ApiError(403, "ForbiddenUserError", str(exc))
    if isinstance(exc, InvalidContent):
        return ApiError(400, "InvalidProtocolError", str(exc))
    return bad_params(str(exc))


class MarketHandler(BaseHandler):
    """Every marketplace call is a store call: made off the event loop, its refusals mapped to HTTP."""

    viewer: Viewer

    async def prepare(self) -> None:
        await super().prepare()
        if self.principal is not None:
            user = await self.blocking(self.users.get, self.me.username) or {}
            self.viewer = Viewer(self.me.username, bool(self.me.admin), frozenset(user.get("grouplist") or ()))

    def resolver(self) -> Callable[[dict], dict]:
        viewer, market = self.viewer, self.market

        def resolve(doc: dict) -> dict:
            return resolve_references(doc, viewer.username, sorted(viewer.groups), admin=viewer.admin,
                                      repository=market)[0]

        return resolve

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await self.blocking(fn, *args, **kwargs)
        except (NoItem, NoLabel, Conflict, Forbidden, Invalid, InvalidContent) as exc:
            raise _error(exc) from None


class WelcomeHandler(MarketHandler):
    async def get(self) -> None:
        self.send({"message": "Welcome to marketplace!", "version": "pai-hub"})


class ItemsHandler(MarketHandler):
    """``GET /items`` (search) and ``POST /items`` (publish: a new item, or a new version of yours)."""

    async def get(self) -> None:
        arg = self.get_argument
        filters = {k: arg(k, None) for k in ("name", "author", "type", "source", "keyword", "status", "visibility")}
        tags = [t for t in (arg("tag", "") or "").split(",") if t.strip()]
        cats = [c for c in (arg("category", "") or "").split(",") if c.strip()]
        starred = arg("starred", "").lower() in ("1", "true", "yes")
        self.send(await self.call(self.market.list, self.viewer, tags=tags, categories=cats, starred=starred,
                            sort=arg("sort", "name"), **filters))

    async def post(self) -> None:
        body = self.json_body()
        author = body.get("author")
        if author is not None and author != self.me.username:
            raise ApiError(403, "ForbiddenUserError", f"You are not allowed to create item with author {author}")
        if "protocol" not in body and "content" not in body:
            raise bad_params("protocol: required (the template job or the prerequisite, as YAML text)")
        visibility, groups = await self.call(visibility_of, body)
        for key in ("summary", "description"):
            if key in body and not isinstance(body[key], str):
                raise bad_params(f"{key}: must be a string")
        view, created = await self.call(
            self.market.publish, self.viewer, name=body.get("name"), type=body.get("type", "template"),
            content=body.get("protocol", body.get("content")), visibility=visibility, groups=groups,
            summary=body.get("summary"), description=body.get("description"), tags=body.get("tags"),
            categories=body.get("categories"), resolve=self.resolver())
        self.send({"id": view["id"], "name": view["name"], "version": view["version"], "created": created,
                   "status": view["status"]}, 201 if created else 200)


class ItemHandler(MarketHandler):
    async def get(self, ref: str) -> None:
        version = self.get_argument("version", None)
        number = parse_int(version, "version", low=1) if version else None
        self.send(await self.call(self.market.get, self.viewer, ref, number))

    async def put(self, ref: str) -> None:
        view = await self.call(self.market.update, self.viewer, ref, self.json_body(), resolve=self.resolver())
        self.send({"message": "updated", "id": view["id"], "name": view["name"], "version": view["version"],
                   "status": view["status"]})

    async def delete(self, ref: str) -> None:
        name = await self.call(self.market.delete, self.viewer, ref)
        self.send({"message": "deleted", "name": name})


class VersionsHandler(MarketHandler):
    async def get(self, ref: str) -> None:
        self.send(await self.call(self.market.versions, self.viewer, ref))


class VersionHandler(MarketHandler):
    async def get(self, ref: str, version: str) -> None:
        self.send(await self.call(self.market.get, self.viewer, ref, parse_int(version, "version", low=1)))


class StatusHandler(MarketHandler):
    """``PUT /items/{id}/status`` ``{status: approved|rejected|pending}``: admins review public items."""

    async def put(self, ref: str) -> None:
        view = await self.call(self.market.set_status, self.viewer, ref, self.json_body().get("status"))
        self.send({"message": "updated", "name": view["name"], "status": view["status"]})


class StarHandler(MarketHandler):
    async def get(self, ref: str) -> None:
        self.send(await self.call(self.market.star, self.viewer, ref, None))

    async def put(self, ref: str) -> None:
        self.send(await self.call(self.market.star, self.viewer, ref, True))

    async def delete(self, ref: str) -> None:
        self.send(await self.call(self.market.star, self.viewer, ref, False))


class UseHandler(MarketHandler):
    """``POST /items/{id}/use``: count one use (``pai market use`` calls it after submitting)."""

    async def post(self, ref: str) -> None:
        self.send(await self.call(self.market.use, self.viewer, ref))


class ItemLabelsHandler(MarketHandler):
    kind = "tag"

    async def get(self, ref: str) -> None:
        self.send(await self.call(self.market.item_labels, self.viewer, self.kind, ref))


class ItemLabelHandler(MarketHandler):
    kind = "tag"

    async def post(self, ref: str, label: str) -> None:
        self.send(await self.call(self.market.change_item_label, self.viewer, self.kind, ref, label, True), 201)

    async def delete(self, ref: str, label: str) -> None:
        self.send(await self.call(self.market.change_item_label, self.viewer, self.kind, ref, label, False))


class LabelsHandler(MarketHandler):
    kind = "tag"

    async def get(self) -> None:
        self.send(await self.call(self.market.labels, self.viewer, self.kind))

    async def post(self) -> None:
        body = self.json_body()
        view, created = await self.call(self.market.create_label, self.viewer, self.kind, body.get("name"),
                                  body.get("description"))
        self.send(view, 201 if created else 200)


class LabelHandler(MarketHandler):
    kind = "tag"

    async def get(self, ref: str) -> None:
        self.send(await self.call(self.market.label, self.viewer, self.kind, ref))

    async def put(self, ref: str) -> None:
        self.send(await self.call(self.market.update_label, self.viewer, self.kind, ref, self.json_body()))

    async def delete(self, ref: str) -> None:
        name = await self.call(self.market.delete_label, self.viewer, self.kind, ref)
        self.send({"message": "deleted", "name": name})


def _category(cls: type) -> type:
    return type(cls.__name__.replace("Label", "Category"), (cls,), {"kind": "category"})


ItemCategoriesHandler = _category(ItemLabelsHandler)
ItemCategoryHandler = _category(ItemLabelHandler)
CategoriesHandler = _category(LabelsHandler)
CategoryHandler = _category(LabelHandler)


def marketplace_routes() -> list[tuple[str, type]]:
    table = [
        (r"/?", WelcomeHandler),
        (r"/items", ItemsHandler),
        (rf"/items/{ITEM}", ItemHandler),
        (rf"/items/{ITEM}/versions", VersionsHandler),
        (rf"/items/{ITEM}/versions/(\d+)", VersionHandler),
        (rf"/items/{ITEM}/status", StatusHandler),
        (rf"/items/{ITEM}/star", StarHandler),
        (rf"/items/{ITEM}/use", UseHandler),
        (rf"/items/{ITEM}/tags?", ItemLabelsHandler),
        (rf"/items/{ITEM}/tags?/([^/]+)", ItemLabelHandler),
        (rf"/items/{ITEM}/categor(?:y|ies)", ItemCategoriesHandler),
        (rf"/items/{ITEM}/categor(?:y|ies)/([^/]+)", ItemCategoryHandler),
        (r"/tags", LabelsHandler),
        (r"/tags/([^/]+)", LabelHandler),
        (r"/categories", CategoriesHandler),
        (r"/categories/([^/]+)", CategoryHandler),
    ]
    return [(PREFIX + path, handler) for path, handler in table]
