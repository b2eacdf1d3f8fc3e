"""access review items

Revision ID: a0002
Revises: a0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a0002"
down_revision: str | Sequence[str] | None = "a0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("seq", _SEQ, autoincrement=False, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=True),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("time", sa.String(length=32), nullable=False),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("actor", "document_id", "purpose", "day", name="uq_review_items_key"),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index("ix_review_items_case_seq", ["case_id", "seq"], unique=False)
        batch_op.create_index("ix_review_items_status_seq", ["status", "seq"], unique=False)
        batch_op.create_index("ix_review_items_time", ["time"], unique=False)

    op.create_table(
        "review_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("review_state")
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index("ix_review_items_time")
        batch_op.drop_index("ix_review_items_status_seq")
        batch_op.drop_index("ix_review_items_case_seq")
    op.drop_table("review_items")
