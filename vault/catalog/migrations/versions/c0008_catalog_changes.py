"""the catalog's change counter, watched by every node to drop what it keeps in memory

Revision ID: c0008
Revises: c0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0008"
down_revision: str | Sequence[str] | None = "c0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    )
    op.execute("INSERT INTO catalog_changes (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("catalog_changes")
