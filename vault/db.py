"""Engines and schema migrations for the catalog and the audit store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

_HERE = Path(__file__).resolve().parent
CATALOG_MIGRATIONS = _HERE / "catalog" / "migrations"
AUDIT_MIGRATIONS = _HERE / "audit" / "migrations"


def make_engine(url: str, *, busy_timeout_s: float = 5.0) -> Engine:
    """Create an engine; SQLite gets WAL and full fsync on commit.

    ``synchronous=FULL`` is what makes a commit durable across power loss in WAL mode; the
    audit log's fail-closed promise and "an acknowledged write is never lost" both rest on it.
    """
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_s}
        # Requests run on up to 40 worker threads; a pool smaller than that would open and
        # close overflow connections under load, each paying the connect pragmas again.
        kwargs["pool_size"] = 32
        kwargs["max_overflow"] = 16
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        busy_ms = int(busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own implicit transactions are switched off so that the "begin" hook
            # below decides how each transaction starts.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            # WAL persists in the database file; asking again on every connection would take
            # a lock each time, so it is only set when the file is not in WAL mode yet.
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Write transactions take the lock when they begin, so a read-then-write can never
            # fail half-way on a lock upgrade; reads stay deferred and run beside the writer.
            options = conn.get_execution_options()
            if options.get("kinko_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif not options.get("kinko_single_statement"):
                conn.exec_driver_sql("BEGIN")
            # A connection that runs one statement needs no transaction of its own: SQLite
            # reads that statement from one snapshot anyway, and BEGIN plus the rollback on
            # release would double what a content read asks of the database.

    return engine


def upgrade(engine: Engine, script_location: Path, version_table: str) -> None:
    """Apply Alembic migrations up to head on this engine (idempotent, safe at every start)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["version_table"] = version_table
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def single_statement(engine: Engine) -> Engine:
    """The same engine, for connections that run exactly one read statement each."""
    return engine.execution_options(kinko_single_statement=True)


def writer(engine: Engine) -> Engine:
    """The same engine, with transactions that take the write lock when they begin."""
    return engine.execution_options(kinko_write=True)
