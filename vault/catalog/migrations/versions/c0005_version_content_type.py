"""the sealed Content-Type of each version

Revision ID: c0005
Revises: c0004
Create Date: 2027-01-15 00:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0005"
down_revision: str | Sequence[str] | None = "c0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, with no default: versions stored before this revision have no recorded type
    # and are served as application/octet-stream, which is what they were served as before.
    with op.batch_alter_table("versions") as batch_op:
        batch_op.add_column(sa.Column("content_type_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch_op:
        batch_op.drop_column("content_type_sealed")
