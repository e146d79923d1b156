"""groups: external name and OpenPAI's free-form extension

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("external_name", sa.String(length=255), nullable=False, server_default=""))
        batch.add_column(sa.Column("extension", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("extension")
        batch.drop_column("external_name")
