"""review items: who issued the reader's token; a read after a decision opens a new item

Revision ID: a0004
Revises: a0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a0004"
down_revision: str | Sequence[str] | None = "a0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The (actor, document, purpose, day) key is no longer unique: once an item is decided, a
    # later read with the same key opens a new pending item instead of joining a reviewed one.
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_constraint("uq_review_items_key", type_="unique")
        batch_op.add_column(sa.Column("token_issuer", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_review_items_key", ["actor", "document_id", "day", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index("ix_review_items_key")
        batch_op.drop_column("token_issuer")
        batch_op.create_unique_constraint(
            "uq_review_items_key", ["actor", "document_id", "purpose", "day"]
        )
