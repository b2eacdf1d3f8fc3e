"""Engines and schema migrations for the catalog and the audit store.

Two databases are supported: SQLite files in the data directory (the embedded default, one
node) and PostgreSQL through psycopg 3 (several nodes on one database).  Writers are
serialised the same way on both, so the services need not know which one they run on: a
transaction opened with ``writer`` takes SQLite's write lock when it begins (``BEGIN
IMMEDIATE``) and, on PostgreSQL, a transaction-scoped advisory lock of its own store, which
every node of the vault shares.  Reads never take it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

_HERE = Path(__file__).resolve().parent
CATALOG_MIGRATIONS = _HERE / "catalog" / "migrations"
AUDIT_MIGRATIONS = _HERE / "audit" / "migrations"


# Advisory lock keys (any 64-bit numbers; "KINKO" and a store number).  Migrations take the
# first, so nodes starting together on an empty database migrate it exactly once; catalog
# writers take the second, the audit store's writers other than appends the third (appends
# serialise on the log's counter row instead, see vault.audit.log), and whoever cuts a
# checkpoint the fourth.
MIGRATION_LOCK = 0x4B494E4B4F00
CATALOG_WRITE_LOCK = 0x4B494E4B4F01
AUDIT_WRITE_LOCK = 0x4B494E4B4F02
CHECKPOINT_LOCK = 0x4B494E4B4F03


# What a database that is locked, unreachable or out of connections raises: an outage the
# caller reports (503) or, for best-effort bookkeeping, shrugs off, never a bug.
STORE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)


# libpq's client-side TCP keepalives: a database host that vanishes without closing the
# connection (a network partition) is noticed within about 25 s, not the system's two hours.
CLIENT_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3, the driver Kinko ships for PostgreSQL."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(
    url: str,
    *,
    busy_timeout_s: float = 5.0,
    write_lock: int | None = None,
    pool: tuple[int, int] = (20, 10),
) -> Engine:
    """Create an engine; SQLite gets WAL and full fsync on commit.

    ``synchronous=FULL`` is what makes a commit durable across power loss in WAL mode; the
    audit log's fail-closed promise and "an acknowledged write is never lost" both rest on it.
    On PostgreSQL, ``synchronous_commit`` is forced on for every connection, whatever the
    server's default, ``write_lock`` names the advisory lock ``writer`` transactions take, and
    ``pool`` is (connections kept, extra ones allowed): every node holds up to their sum, and
    PostgreSQL's default ``max_connections`` is 100 for all nodes together.
    """
    url = normalize_url(url)
    if is_postgres(url):
        return _postgres_engine(
            url, busy_timeout_s=busy_timeout_s, write_lock=write_lock, pool=pool
        )
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


def _postgres_engine(
    url: str, *, busy_timeout_s: float, write_lock: int | None, pool: tuple[int, int]
) -> Engine:
    timeout_ms = int(busy_timeout_s * 1000)
    engine = create_engine(
        url,
        pool_size=pool[0],
        max_overflow=pool[1],
        # A node whose database restarted finds its pooled connections dead; SQLAlchemy drops
        # the whole pool at the first disconnect error, and this bounds how long a check-out
        # may wait for a new one, so a database that is down gives 503s, not hung requests.
        pool_timeout=busy_timeout_s,
        connect_args={
            "connect_timeout": max(1, int(busy_timeout_s)),
            # A lock that waits longer than a request may is an error the request reports
            # (503 for the audit log), never a hung worker thread.  Statements themselves are
            # not bounded: an export of a long log may rightly take minutes.
            #
            # A transaction left idle by a node that froze or was cut off holding a lock (the
            # catalog's advisory lock, the audit counter row) is ended by the server after a
            # minute, and the server's end of a vanished connection is probed like ours below,
            # so one stalled node cannot hold every other node's writes for hours.
            "options": (
                f"-c synchronous_commit=on -c lock_timeout={timeout_ms} "
                "-c idle_in_transaction_session_timeout=60000 "
                "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 "
                "-c tcp_keepalives_count=3"
            ),
            # A database host that vanishes without closing the connection (a network
            # partition) is noticed within about 25 s rather than the system's two hours.
            **CLIENT_KEEPALIVES,
            "application_name": "kinko",
        },
    )
    if write_lock is not None:

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers of one store run one at a time across every node, as SQLite's write lock
            # makes them do on one machine: services read, decide and write in one
            # transaction (the next version number, a sign-in attempt's count) and rely on
            # nobody writing in between.  The lock ends with the transaction.
            options = conn.get_execution_options()
            if options.get("kinko_write") and not options.get("kinko_append"):
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({write_lock})")

    return engine


def upgrade(engine: Engine, script_location: Path, version_table: str) -> None:
    """Apply Alembic migrations up to head on this engine (idempotent, safe at every start).

    On PostgreSQL the migrations run in one transaction that first takes the migration lock:
    nodes started together on an empty database wait for the first one, then find the schema
    at head and do nothing.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["version_table"] = version_table
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def snapshot(engine: Engine) -> Engine:
    """The same engine, for transactions whose statements must all see one snapshot.

    SQLite's WAL gives every read transaction one snapshot; PostgreSQL's default (READ
    COMMITTED) gives each statement its own, so there the transaction asks for REPEATABLE
    READ (read-only here, so it never fails on a conflict).
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def single_statement(engine: Engine) -> Engine:
    """The same engine, for connections that run exactly one read statement each."""
    return engine.execution_options(kinko_single_statement=True)


def writer(engine: Engine) -> Engine:
    """The same engine, with transactions that take the write lock when they begin."""
    return engine.execution_options(kinko_write=True)
