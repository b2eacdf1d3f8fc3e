"""the audit log's counter row: the next sequence number, taken under a row lock

Revision ID: a0005
Revises: a0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a0005"
down_revision: str | Sequence[str] | None = "a0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row holds the log's size.  Every append locks it (SELECT ... FOR UPDATE on
    # PostgreSQL), takes the next numbers and moves it on in the same transaction, so nodes
    # appending at once get 0..n-1 with no gap and no duplicate.  A PostgreSQL sequence would
    # not do: it hands out numbers that a rolled-back transaction never uses.
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    )
    op.execute(
        "INSERT INTO audit_head (id, size) SELECT 1, COALESCE(MAX(seq) + 1, 0) FROM audit_events"
    )


def downgrade() -> None:
    op.drop_table("audit_head")
