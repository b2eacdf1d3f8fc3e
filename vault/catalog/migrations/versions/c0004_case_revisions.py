"""a revision counter per case, bumped by the database on every change to its documents

Revision ID: c0004
Revises: c0003
Create Date: 2026-12-01 12:00:00

The sync manifest's ETag is computed from these counters (with the caller's memberships and
the stage in force) instead of from the whole manifest, so an unchanged poll costs one small
statement.  Triggers keep the counter, so no write path can change a document and forget it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0004"
down_revision: str | Sequence[str] | None = "c0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENTS = ("insert", "update", "delete")
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER documents_insert_bumps_case AFTER INSERT ON documents "
    "BEGIN UPDATE cases SET revision = revision + 1 WHERE id = NEW.case_id; END",
    # Both cases, should a document ever move: the one it left changes too.
    "CREATE TRIGGER documents_update_bumps_case AFTER UPDATE ON documents "
    "BEGIN UPDATE cases SET revision = revision + 1 WHERE id IN (NEW.case_id, OLD.case_id); END",
    "CREATE TRIGGER documents_delete_bumps_case AFTER DELETE ON documents "
    "BEGIN UPDATE cases SET revision = revision + 1 WHERE id = OLD.case_id; END",
)


def upgrade() -> None:
    op.add_column("cases", sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION kinko_bump_case_revision() RETURNS trigger AS $$ BEGIN "
            "UPDATE cases SET revision = revision + 1 WHERE id IN ("
            "CASE WHEN TG_OP = 'DELETE' THEN OLD.case_id ELSE NEW.case_id END, "
            "CASE WHEN TG_OP = 'INSERT' THEN NEW.case_id ELSE OLD.case_id END); "
            "RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER documents_bump_case AFTER INSERT OR UPDATE OR DELETE ON documents "
            "FOR EACH ROW EXECUTE FUNCTION kinko_bump_case_revision()"
        )
    else:
        raise NotImplementedError(f"no case-revision trigger for {dialect}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in _EVENTS:
            op.execute(f"DROP TRIGGER documents_{name}_bumps_case")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER documents_bump_case ON documents")
        op.execute("DROP FUNCTION kinko_bump_case_revision()")
    with op.batch_alter_table("cases") as batch_op:
        batch_op.drop_column("revision")
