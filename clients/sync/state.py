"""The sync client's durable state: ``DIR/.kinko/state.db`` (SQLite, WAL, synchronous=FULL).

Crash safety rests on three rules:

* every public write method runs in exactly one ``BEGIN IMMEDIATE`` transaction, so a process
  killed at any moment leaves either the whole change or none of it;
* an upload is queued (with its idempotency key) *before* anything is sent, and the key is
  generated once and stored, so a retry after a crash sends the same key and the server
  cannot create a second version;
* :meth:`State.complete_upload` removes the queue entry and records the new synced file row in
  the same transaction, so "uploaded but not recorded" can only mean "still queued" (and the
  retry is deduplicated by its key).

The schema is versioned with ``PRAGMA user_version``; :func:`migrate` brings any older file up
to :data:`SCHEMA_VERSION`, one transaction per step.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast, get_args

__all__ = [
    "PURPOSE_META",
    "SCHEMA_VERSION",
    "FileRecord",
    "FileState",
    "State",
    "StateError",
    "Upload",
    "migrate",
]

FileState = Literal["synced", "pending_upload", "conflict", "quarantined", "deleted_locally"]
FILE_STATES: tuple[str, ...] = get_args(FileState)

STATE_DIR = ".kinko"
DB_NAME = "state.db"
# The meta key holding the folder's access purpose (``kinko sync DIR --purpose TEXT``).
PURPOSE_META = "purpose"


class StateError(RuntimeError):
    """The state database cannot be used (e.g. written by a newer client)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _to_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("datetimes stored in the state must be timezone-aware")
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


@dataclass(frozen=True)
class FileRecord:
    """One row of ``files``: what the client knows about a file under DIR.

    path:     path relative to DIR, '/'-separated (``<case dir>/<class dir>/<file name>``).
    doc_id:   server document id; None for a local file whose first upload has not completed.
    case_id:  server id of the case the file belongs to.
    cls:      document class (column ``class``).
    version:  the server version the local file was last in step with; None if never.
    sha256:   hex SHA-256 of the local file's content when it was last in step (or when the
              state was recorded); None if unknown.
    size:     size in bytes of the local file at that time; None if unknown.
    mtime_ns: st_mtime_ns of the local file at that time; a cheap change detector (a changed
              size or mtime_ns means re-hash), None if unknown.
    state:    'synced' (local file == server ``version``), 'pending_upload' (local edit queued
              in ``uploads``), 'conflict' (both sides changed; resolution pending),
              'quarantined' (not synced because unsafe/unreadable; see meta last_error),
              'deleted_locally' (the user deleted it; the deletion is not yet handled).
    updated_at: when this row was last written (UTC).
    """

    path: str
    doc_id: str | None
    case_id: str
    cls: str
    version: int | None
    sha256: str | None
    size: int | None
    mtime_ns: int | None
    state: FileState
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Upload:
    """One row of ``uploads``: a durable queue entry for sending a local file to the server.

    id:              queue order (monotonic, never reused).
    path:            path relative to DIR of the file to send.
    doc_id:          target document; None to create a new document.
    case_id, cls:    where the document lives (needed to create a new one).
    base_version:    server version the edit was based on (None for a new document); the
                     server refuses the upload if its current version differs (conflict).
    idempotency_key: random key generated once when queued and sent with every attempt, so a
                     retry after a crash or timeout never creates a second version/document.
    sha256, size:    content that was queued; if the file changed since, re-queue instead.
    attempts:        attempts that failed so far.
    next_attempt_at: not to be retried before this time (UTC).
    last_error:      message of the last failure, None if none.
    created_at:      when it was queued (UTC).
    """

    id: int
    path: str
    doc_id: str | None
    case_id: str
    cls: str
    base_version: int | None
    idempotency_key: str
    sha256: str
    size: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    states = ", ".join(f"'{s}'" for s in FILE_STATES)
    conn.execute(
        "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID"
    )
    conn.execute(
        f"""CREATE TABLE files (
            path       TEXT PRIMARY KEY NOT NULL,
            doc_id     TEXT,
            case_id    TEXT NOT NULL,
            class      TEXT NOT NULL,
            version    INTEGER,
            sha256     TEXT,
            size       INTEGER CHECK (size IS NULL OR size >= 0),
            mtime_ns   INTEGER,
            state      TEXT NOT NULL CHECK (state IN ({states})),
            updated_at INTEGER NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX files_doc_id ON files (doc_id) WHERE doc_id IS NOT NULL")
    conn.execute("CREATE INDEX files_state ON files (state)")
    conn.execute(
        """CREATE TABLE uploads (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            path            TEXT NOT NULL,
            doc_id          TEXT,
            case_id         TEXT NOT NULL,
            class           TEXT NOT NULL,
            base_version    INTEGER,
            idempotency_key TEXT NOT NULL UNIQUE,
            sha256          TEXT NOT NULL,
            size            INTEGER NOT NULL CHECK (size >= 0),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            last_error      TEXT,
            created_at      INTEGER NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX uploads_path ON uploads (path)")
    conn.execute("CREATE INDEX uploads_due ON uploads (next_attempt_at)")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_0_to_1,)
"""MIGRATIONS[i] brings a database from user_version i to i + 1."""

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version found before.

    Each step and its ``PRAGMA user_version`` bump commit together, so a crash mid-migration
    leaves the previous version intact. A version newer than this client raises StateError.
    """
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise StateError(
            f"state database has schema version {found}; this client knows {SCHEMA_VERSION}"
        )
    for version in range(found, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if current == version:  # another process may have migrated meanwhile
                MIGRATIONS[version](conn)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


_FILE_COLS = "path, doc_id, case_id, class, version, sha256, size, mtime_ns, state, updated_at"
_UPLOAD_COLS = (
    "id, path, doc_id, case_id, class, base_version, idempotency_key, sha256, size, attempts,"
    " next_attempt_at, last_error, created_at"
)


def _file(row: tuple[Any, ...]) -> FileRecord:
    return FileRecord(
        path=row[0],
        doc_id=row[1],
        case_id=row[2],
        cls=row[3],
        version=row[4],
        sha256=row[5],
        size=row[6],
        mtime_ns=row[7],
        state=cast(FileState, row[8]),
        updated_at=_from_us(row[9]),
    )


def _upload(row: tuple[Any, ...]) -> Upload:
    return Upload(
        id=row[0],
        path=row[1],
        doc_id=row[2],
        case_id=row[3],
        cls=row[4],
        base_version=row[5],
        idempotency_key=row[6],
        sha256=row[7],
        size=row[8],
        attempts=row[9],
        next_attempt_at=_from_us(row[10]),
        last_error=row[11],
        created_at=_from_us(row[12]),
    )


class State:
    """Typed access to ``state.db``. Use as a context manager, or call :meth:`close`."""

    def __init__(self, db_path: Path) -> None:
        self.path = Path(db_path)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            migrate(self._conn)
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(cls, sync_root: Path) -> State:
        """Open (creating if needed) ``<sync_root>/.kinko/state.db``; the directory is 0700."""
        state_dir = Path(sync_root) / STATE_DIR
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(state_dir / DB_NAME)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> State:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on any error)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or with None, delete) a meta value."""
        with self._tx() as c:
            if value is None:
                c.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                c.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def meta_items(self, prefix: str) -> dict[str, str]:
        """Every meta entry whose key starts with ``prefix`` (keys returned without it)."""
        rows = self._conn.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        ).fetchall()
        return {str(k)[len(prefix) :]: str(v) for k, v in rows}

    @property
    def device_id(self) -> str:
        """This installation's stable random id, created on first use."""
        with self._tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('device_id', ?)",
                (secrets.token_hex(16),),
            )
            row = c.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
        return str(row[0])

    @property
    def manifest_etag(self) -> str | None:
        """ETag of the last server manifest fully applied (None: fetch everything)."""
        return self.get_meta("manifest_etag")

    @manifest_etag.setter
    def manifest_etag(self, value: str | None) -> None:
        self.set_meta("manifest_etag", value)

    @property
    def last_error(self) -> str | None:
        """The last error the client reported (for ``kinko sync --status``)."""
        return self.get_meta("last_error")

    @last_error.setter
    def last_error(self, value: str | None) -> None:
        self.set_meta("last_error", value)

    # -- files --------------------------------------------------------------------------------

    def get_file(self, path: str) -> FileRecord | None:
        row = self._conn.execute(
            f"SELECT {_FILE_COLS} FROM files WHERE path = ?",  # noqa: S608 - constant columns
            (path,),
        ).fetchone()
        return None if row is None else _file(row)

    def files_for_doc(self, doc_id: str) -> list[FileRecord]:
        rows = self._conn.execute(
            f"SELECT {_FILE_COLS} FROM files WHERE doc_id = ? ORDER BY path",  # noqa: S608
            (doc_id,),
        ).fetchall()
        return [_file(r) for r in rows]

    def list_files(self, state: FileState | None = None) -> list[FileRecord]:
        if state is None:
            rows = self._conn.execute(
                f"SELECT {_FILE_COLS} FROM files ORDER BY path"  # noqa: S608
            ).fetchall()
        else:
            rows = self._conn.execute(
                f"SELECT {_FILE_COLS} FROM files WHERE state = ? ORDER BY path",  # noqa: S608
                (state,),
            ).fetchall()
        return [_file(r) for r in rows]

    def put_file(self, record: FileRecord) -> FileRecord:
        """Insert or replace the row for ``record.path``; returns it with ``updated_at`` set."""
        with self._tx() as c:
            return self._put_file(c, record)

    def _put_file(self, c: sqlite3.Connection, record: FileRecord) -> FileRecord:
        if record.state not in FILE_STATES:
            raise ValueError(f"unknown file state {record.state!r}")
        now = _now()
        c.execute(
            f"INSERT OR REPLACE INTO files ({_FILE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
            (
                record.path,
                record.doc_id,
                record.case_id,
                record.cls,
                record.version,
                record.sha256,
                record.size,
                record.mtime_ns,
                record.state,
                _to_us(now),
            ),
        )
        return FileRecord(**{**record.__dict__, "updated_at": now})

    def set_file_state(self, path: str, state: FileState) -> None:
        if state not in FILE_STATES:
            raise ValueError(f"unknown file state {state!r}")
        with self._tx() as c:
            cur = c.execute(
                "UPDATE files SET state = ?, updated_at = ? WHERE path = ?",
                (state, _to_us(_now()), path),
            )
            if cur.rowcount != 1:
                raise KeyError(path)

    def rename_file(self, old: str, new: str) -> None:
        """Move a row (and its queued uploads) to a new path, atomically."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE files SET path = ?, updated_at = ? WHERE path = ?",
                (new, _to_us(_now()), old),
            )
            if cur.rowcount != 1:
                raise KeyError(old)
            c.execute("UPDATE uploads SET path = ? WHERE path = ?", (new, old))

    def delete_file(self, path: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM files WHERE path = ?", (path,))

    # -- uploads ------------------------------------------------------------------------------

    def enqueue_upload(
        self,
        *,
        path: str,
        doc_id: str | None,
        case_id: str,
        cls: str,
        base_version: int | None,
        sha256: str,
        size: int,
    ) -> Upload:
        """Queue an upload, or return the one already queued for the same content.

        Idempotent: re-queueing the same (path, doc_id, base_version, sha256) after a crash
        returns the existing entry with its original idempotency key. The matching
        ``files`` row, if any, is marked 'pending_upload' in the same transaction.
        """
        with self._tx() as c:
            row = c.execute(
                f"SELECT {_UPLOAD_COLS} FROM uploads WHERE path = ? AND doc_id IS ?"  # noqa: S608
                " AND base_version IS ? AND sha256 = ? ORDER BY id LIMIT 1",
                (path, doc_id, base_version, sha256),
            ).fetchone()
            if row is None:
                now = _to_us(_now())
                cur = c.execute(
                    "INSERT INTO uploads (path, doc_id, case_id, class, base_version,"
                    " idempotency_key, sha256, size, attempts, next_attempt_at, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,0,?,?)",
                    (
                        path,
                        doc_id,
                        case_id,
                        cls,
                        base_version,
                        secrets.token_urlsafe(24),
                        sha256,
                        size,
                        now,
                        now,
                    ),
                )
                row = c.execute(
                    f"SELECT {_UPLOAD_COLS} FROM uploads WHERE id = ?",  # noqa: S608
                    (cur.lastrowid,),
                ).fetchone()
            c.execute(
                "UPDATE files SET state = 'pending_upload', updated_at = ? WHERE path = ?"
                " AND state IN ('synced', 'pending_upload')",
                (_to_us(_now()), path),
            )
            return _upload(row)

    def get_upload(self, upload_id: int) -> Upload | None:
        row = self._conn.execute(
            f"SELECT {_UPLOAD_COLS} FROM uploads WHERE id = ?",  # noqa: S608
            (upload_id,),
        ).fetchone()
        return None if row is None else _upload(row)

    def list_uploads(self, *, due_at: datetime | None = None) -> list[Upload]:
        """Queued uploads in queue order; with ``due_at``, only those due by then."""
        if due_at is None:
            rows = self._conn.execute(
                f"SELECT {_UPLOAD_COLS} FROM uploads ORDER BY id"  # noqa: S608
            ).fetchall()
        else:
            rows = self._conn.execute(
                f"SELECT {_UPLOAD_COLS} FROM uploads WHERE next_attempt_at <= ?"  # noqa: S608
                " ORDER BY id",
                (_to_us(due_at),),
            ).fetchall()
        return [_upload(r) for r in rows]

    def record_upload_failure(self, upload_id: int, error: str, next_attempt_at: datetime) -> None:
        """Count a failed attempt; keep the entry (and its key) for the retry."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE uploads SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
                " WHERE id = ?",
                (error, _to_us(next_attempt_at), upload_id),
            )
            if cur.rowcount != 1:
                raise KeyError(upload_id)

    def complete_upload(self, upload_id: int, synced: FileRecord | None) -> None:
        """Drop a finished upload and (if given) record the file's new synced row, atomically."""
        with self._tx() as c:
            cur = c.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
            if cur.rowcount != 1:
                raise KeyError(upload_id)
            if synced is not None:
                self._put_file(c, synced)

    def cancel_upload(self, upload_id: int) -> None:
        """Remove a queued upload without recording anything (e.g. superseded content)."""
        with self._tx() as c:
            c.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

    def integrity_ok(self) -> bool:
        row = self._conn.execute("PRAGMA integrity_check").fetchone()
        return bool(row[0] == "ok")


def db_path(sync_root: Path) -> Path:
    """``<sync_root>/.kinko/state.db``."""
    return Path(sync_root) / STATE_DIR / DB_NAME
