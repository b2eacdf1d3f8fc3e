"""Merkle tree nodes and signed checkpoints.

Revision ID: a0003
Revises: a0002
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a0003"
down_revision: str | Sequence[str] | None = "a0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_tree",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "idx",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "size",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("time", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    # Logs written before this revision get their tree now, computed from the stored leaves.
    conn = op.get_bind()
    pending: list[dict[str, object]] = []
    level_nodes: dict[tuple[int, int], bytes] = {}
    for seq, leaf in conn.execute(sa.text("SELECT seq, leaf_hash FROM audit_events ORDER BY seq")):
        level, idx, value = 0, int(seq), bytes(leaf)
        level_nodes[(0, idx)] = value
        while idx % 2 == 1:
            value = hashlib.sha256(b"\x01" + level_nodes[(level, idx - 1)] + value).digest()
            level, idx = level + 1, idx // 2
            level_nodes[(level, idx)] = value
            pending.append({"level": level, "idx": idx, "hash": value})
    if pending:
        conn.execute(
            sa.text("INSERT INTO audit_tree (level, idx, hash) VALUES (:level, :idx, :hash)"),
            pending,
        )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_tree")
