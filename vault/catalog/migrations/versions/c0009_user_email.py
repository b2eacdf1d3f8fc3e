"""users: an optional e-mail address for notices

Revision ID: c0009
Revises: c0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0009"
down_revision: str | Sequence[str] | None = "c0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("email")
