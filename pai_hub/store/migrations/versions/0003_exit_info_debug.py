"""failure analysis on jobs and task attempts; debug reservation expiry on task attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("exit_info", sa.JSON(), nullable=True))
    with op.batch_alter_table("task_attempts") as batch:
        batch.add_column(sa.Column("exit_info", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("debug_until", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_attempts") as batch:
        batch.drop_column("debug_until")
        batch.drop_column("exit_info")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("exit_info")
