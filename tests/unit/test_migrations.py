"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from vault.audit.models import AuditBase
from vault.catalog.models import Base
from vault.db import AUDIT_MIGRATIONS, CATALOG_MIGRATIONS, make_engine, upgrade


@pytest.mark.parametrize(
    ("location", "table", "metadata"),
    [
        (CATALOG_MIGRATIONS, "alembic_version", Base.metadata),
        (AUDIT_MIGRATIONS, "alembic_version_audit", AuditBase.metadata),
    ],
)
def test_migrations_match_models(
    tmp_path: Path, location: Path, table: str, metadata: object
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine, location, table)
    upgrade(engine, location, table)  # applying twice is a no-op, as at every start
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": table})
        diff = compare_metadata(ctx, metadata)  # type: ignore[arg-type]
    engine.dispose()
    assert diff == []
