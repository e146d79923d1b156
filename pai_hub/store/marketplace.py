"""Tables of the marketplace (``pai_hub.marketplace``): items, their immutable versions, tags,
categories, stars and one key/value table for marketplace bookkeeping.

An item is named once across the marketplace and owned by its author; what it holds (a job
template or one prerequisite, as YAML text) lives in its versions, which are never changed after
they are written. Tags and categories are rows of their own so that renaming one renames it on
every item. Created by migration ``0004``.
"""

from __future__ import annotations

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base


class MarketItem(Base):
    __tablename__ = "market_items"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4, as openpaimarketplace
    name: Mapped[str] = mapped_column(String(255), unique=True)
    author: Mapped[str] = mapped_column(String(255), index=True)
    type: Mapped[str] = mapped_column(String(16), index=True)  # template | data | script | dockerimage
    visibility: Mapped[str] = mapped_column(String(16))  # private | groups | public
    group_list: Mapped[list] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(32), default="marketplace")
    status: Mapped[str] = mapped_column(String(16), default="approved")  # pending | approved | rejected
    approved_version: Mapped[int | None] = mapped_column(Integer)  # newest version others may see when public
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    use_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class MarketVersion(Base):
    """One published content of an item; immutable once written."""

    __tablename__ = "market_versions"

    item_id: Mapped[str] = mapped_column(ForeignKey("market_items.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    publisher: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Float)


class MarketTag(Base):
    __tablename__ = "market_tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class MarketCategory(Base):
    __tablename__ = "market_categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class MarketItemTag(Base):
    __tablename__ = "market_item_tags"

    item_id: Mapped[str] = mapped_column(ForeignKey("market_items.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("market_tags.id", ondelete="CASCADE"), primary_key=True)


class MarketItemCategory(Base):
    __tablename__ = "market_item_categories"

    item_id: Mapped[str] = mapped_column(ForeignKey("market_items.id", ondelete="CASCADE"), primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("market_categories.id", ondelete="CASCADE"),
                                             primary_key=True)


class MarketStar(Base):
    __tablename__ = "market_stars"

    item_id: Mapped[str] = mapped_column(ForeignKey("market_items.id", ondelete="CASCADE"), primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)


class MarketSetting(Base):
    """Marketplace bookkeeping, e.g. ``examples_imported`` (so deleted examples stay deleted)."""

    __tablename__ = "market_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
