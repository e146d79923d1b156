"""history queries: composite indexes for listing jobs by submission order under each filter

The job list is answered by SQL (finished jobs are no longer in the control plane's memory), newest
first, paged by keyset on (submitted_at, id). Each index leads with the column a filter pins, then
the order, so a page is an index range scan whatever the number of jobs stored. The single-column
indexes they replace are dropped (each composite serves the same look-ups). A partial index finds
the debug reservations that a restart must reload without scanning every task attempt.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JOB_INDEXES = {
    "ix_jobs_submitted": ["submitted_at", "id"],
    "ix_jobs_user_submitted": ["username", "submitted_at", "id"],
    "ix_jobs_vc_submitted": ["virtual_cluster", "submitted_at", "id"],
    "ix_jobs_state_submitted": ["state", "submitted_at", "id"],
    "ix_jobs_vc_state_submitted": ["virtual_cluster", "state", "submitted_at", "id"],
    "ix_jobs_user_name": ["username", "name"],
}
OLD_JOB_INDEXES = {"ix_jobs_state": ["state"], "ix_jobs_username": ["username"],
                   "ix_jobs_virtual_cluster": ["virtual_cluster"]}
DEBUG_WHERE = sa.text("debug_until IS NOT NULL")


def upgrade() -> None:
    for name in OLD_JOB_INDEXES:
        op.drop_index(name, table_name="jobs")
    for name, columns in JOB_INDEXES.items():
        op.create_index(name, "jobs", columns)
    op.create_index("ix_task_attempts_debug", "task_attempts", ["job_id"], sqlite_where=DEBUG_WHERE,
                    postgresql_where=DEBUG_WHERE)


def downgrade() -> None:
    op.drop_index("ix_task_attempts_debug", table_name="task_attempts")
    for name in JOB_INDEXES:
        op.drop_index(name, table_name="jobs")
    for name, columns in OLD_JOB_INDEXES.items():
        op.create_index(name, "jobs", columns)
