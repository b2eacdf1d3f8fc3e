"""The PostgreSQL the tests start (tests/pg_support.py) is a real server: psycopg 3 reaches it
on loopback, commits are durable, and an immediate stop cuts clients off until it is back."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from pg_support import PostgresServer


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        server.remove()


def _dsn(server: PostgresServer) -> str:
    return f"host=127.0.0.1 port={server.port} user=postgres dbname={server.database}"


def test_a_real_server_with_durable_commits(postgres: PostgresServer) -> None:
    assert postgres.url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    with psycopg.connect(_dsn(postgres), autocommit=True) as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (1)")
    # A crash (immediate stop) keeps what was committed.
    postgres.stop("immediate")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(_dsn(postgres), connect_timeout=2)
    postgres.start()
    with psycopg.connect(_dsn(postgres)) as conn:
        assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]
