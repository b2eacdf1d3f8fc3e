"""token issuers and parents, membership grantors, idempotency fingerprints, notifications

Revision ID: c0003
Revises: c0002
Create Date: 2026-12-01 00:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0003"
down_revision: str | Sequence[str] | None = "c0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch_op:
        batch_op.add_column(sa.Column("issued_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_tokens_parent_id", ["parent_id"], unique=False)
    with op.batch_alter_table("memberships") as batch_op:
        batch_op.add_column(sa.Column("granted_by", sa.Integer(), nullable=True))
    with op.batch_alter_table("idempotency") as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("case_id", sa.String(length=32), nullable=True),
        sa.Column("ref", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.create_index("ix_notifications_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_index("ix_notifications_user_id")
    op.drop_table("notifications")
    with op.batch_alter_table("idempotency") as batch_op:
        batch_op.drop_column("fingerprint")
    with op.batch_alter_table("memberships") as batch_op:
        batch_op.drop_column("granted_by")
    with op.batch_alter_table("tokens") as batch_op:
        batch_op.drop_index("ix_tokens_parent_id")
        batch_op.drop_column("parent_id")
        batch_op.drop_column("issued_by")
