"""Alembic environment for the audit store; the connection is handed in by vault.db.upgrade."""

from __future__ import annotations

from alembic import context

# The review tables live in the audit store too; importing them registers them on AuditBase.
import vault.audit.reviews  # noqa: F401
from vault.audit.models import AuditBase as MetaBase

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=MetaBase.metadata,
    version_table=config.attributes.get("version_table", "alembic_version"),
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
