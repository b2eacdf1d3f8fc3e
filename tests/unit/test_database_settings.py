"""Database URLs in the settings: PostgreSQL spelled either way, the password from a file,
and anything else refused with a message that says what is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vault.settings import Settings


def test_postgresql_urls_mean_psycopg_3(tmp_path: Path) -> None:
    for url in ("postgresql://kinko@db:5432/kinko", "postgresql+psycopg://kinko@db:5432/kinko"):
        s = Settings(data_dir=tmp_path, database_url=url, audit_database_url=url)
        assert s.catalog_url == "postgresql+psycopg://kinko@db:5432/kinko"
        assert s.audit_url == s.catalog_url


def test_the_password_comes_from_its_file_and_is_quoted(tmp_path: Path) -> None:
    secret = tmp_path / "pg_password"
    secret.write_text("p@ss/w:rd\n")
    s = Settings(
        data_dir=tmp_path,
        database_url="postgresql://kinko@db:5432/kinko",
        audit_database_url="postgresql://audit@db:5432/audit",
        database_password_file=secret,
    )
    assert s.catalog_url == "postgresql+psycopg://kinko:p%40ss%2Fw%3Ard@db:5432/kinko"
    assert s.audit_url == "postgresql+psycopg://audit:p%40ss%2Fw%3Ard@db:5432/audit"
    # A password written in the URL itself is kept; SQLite has none.
    s = Settings(
        data_dir=tmp_path,
        database_url="postgresql://kinko:inline@db/kinko",
        database_password_file=secret,
    )
    assert s.catalog_url == "postgresql+psycopg://kinko:inline@db/kinko"
    assert s.audit_url.startswith("sqlite:///")


def test_other_databases_are_refused_with_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="postgresql"):
        Settings(data_dir=tmp_path, database_url="mysql://kinko@db/kinko")
    with pytest.raises(ValidationError, match="sqlite"):
        Settings(data_dir=tmp_path, audit_database_url="db.sqlite")
