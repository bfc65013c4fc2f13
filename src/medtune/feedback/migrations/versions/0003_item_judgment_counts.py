"""Items keep their judgment count and whether it reaches K, indexed, so finding a fresh item skips done ones.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch_op:
        batch_op.add_column(sa.Column("judgment_count", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("complete", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute("UPDATE items SET judgment_count = (SELECT count(*) FROM judgments WHERE judgments.item_id = items.id)")
    op.execute(
        "UPDATE items SET complete = (judgment_count >= "
        "(SELECT projects.reviewers_per_item FROM projects WHERE projects.id = items.project_id))"
    )
    with op.batch_alter_table("items") as batch_op:
        batch_op.create_index("ix_items_open", ["project_id", "complete", "seq"])
        batch_op.create_index("ix_items_open_all", ["complete", "seq"])


def downgrade() -> None:
    with op.batch_alter_table("items") as batch_op:
        batch_op.drop_index("ix_items_open_all")
        batch_op.drop_index("ix_items_open")
        batch_op.drop_column("complete")
        batch_op.drop_column("judgment_count")
