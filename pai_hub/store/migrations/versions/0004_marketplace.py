"""marketplace: items, immutable versions, tags, categories, stars, settings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "market_items",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("group_list", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("approved_version", sa.Integer(), nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("use_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_market_items_author", "market_items", ["author"])
    op.create_index("ix_market_items_type", "market_items", ["type"])
    op.create_table(
        "market_versions",
        sa.Column("item_id", sa.String(36), sa.ForeignKey("market_items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("publisher", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "market_tags",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
    )
    op.create_table(
        "market_categories",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
    )
    op.create_table(
        "market_item_tags",
        sa.Column("item_id", sa.String(36), sa.ForeignKey("market_items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag_id", sa.Integer(), sa.ForeignKey("market_tags.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "market_item_categories",
        sa.Column("item_id", sa.String(36), sa.ForeignKey("market_items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("category_id", sa.Integer(), sa.ForeignKey("market_categories.id", ondelete="CASCADE"),
                  primary_key=True),
    )
    op.create_table(
        "market_stars",
        sa.Column("item_id", sa.String(36), sa.ForeignKey("market_items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("username", sa.String(255), primary_key=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "market_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in ("market_settings", "market_stars", "market_item_categories", "market_item_tags",
                  "market_categories", "market_tags", "market_versions"):
        op.drop_table(table)
    op.drop_index("ix_market_items_type", "market_items")
    op.drop_index("ix_market_items_author", "market_items")
    op.drop_table("market_items")
