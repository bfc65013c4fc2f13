"""Projects keep their item count and each reviewer their assignments and judgments per project, so the
progress figure the reviewer page asks for on every item reads a few rows instead of counting a project.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch_op:
        batch_op.add_column(sa.Column("item_count", sa.Integer(), server_default="0", nullable=False))
    op.execute("UPDATE projects SET item_count = (SELECT count(*) FROM items WHERE items.project_id = projects.id)")
    op.create_table(
        "reviewer_counts",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("assignments", sa.Integer(), server_default="0", nullable=False),
        sa.Column("judgments", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["reviewers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "reviewer_id"),
    )
    op.execute(
        "INSERT INTO reviewer_counts (project_id, reviewer_id, assignments, judgments) "
        "SELECT project_id, reviewer_id, sum(assigned), sum(judged) FROM ("
        "SELECT project_id, reviewer_id, 1 AS assigned, 0 AS judged FROM assignments "
        "UNION ALL SELECT project_id, reviewer_id, 0, 1 FROM judgments"
        ") AS counted GROUP BY project_id, reviewer_id"
    )


def downgrade() -> None:
    op.drop_table("reviewer_counts")
    with op.batch_alter_table("projects") as batch_op:
        batch_op.drop_column("item_count")
