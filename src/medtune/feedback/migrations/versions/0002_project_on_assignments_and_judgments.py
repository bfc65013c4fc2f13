"""Assignments and judgments record their item's project, indexed, so per-project counts need no join.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("assignments", "judgments"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        op.execute(
            f"UPDATE {table} SET project_id = (SELECT items.project_id FROM items WHERE items.id = {table}.item_id)"
        )
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("project_id", existing_type=sa.Integer(), nullable=False)
            batch_op.create_foreign_key(
                f"fk_{table}_project_id", "projects", ["project_id"], ["id"], ondelete="CASCADE"
            )
    with op.batch_alter_table("assignments") as batch_op:
        batch_op.create_index("ix_assignments_project_state", ["project_id", "state", "lease_expires_at"])
        batch_op.create_index("ix_assignments_reviewer_project", ["reviewer_id", "project_id", "state"])
    with op.batch_alter_table("judgments") as batch_op:
        batch_op.create_index("ix_judgments_project_reviewer", ["project_id", "reviewer_id", "assignment_id"])


def downgrade() -> None:
    with op.batch_alter_table("judgments") as batch_op:
        batch_op.drop_index("ix_judgments_project_reviewer")
        batch_op.drop_constraint("fk_judgments_project_id", type_="foreignkey")
        batch_op.drop_column("project_id")
    with op.batch_alter_table("assignments") as batch_op:
        batch_op.drop_index("ix_assignments_reviewer_project")
        batch_op.drop_index("ix_assignments_project_state")
        batch_op.drop_constraint("fk_assignments_project_id", type_="foreignkey")
        batch_op.drop_column("project_id")
