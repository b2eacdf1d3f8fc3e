"""Appending to and querying the audit log.

Every request is appended through ``AuditLog.append``, which returns only once the event is
durably committed (SQLite WAL with ``synchronous=FULL``; PostgreSQL with ``synchronous_commit``
on).  A single writer thread batches the events that arrive while a commit is in flight into
the next commit (group commit): one fsync per batch instead of one per request, which is what
lets audited reads run at hundreds per second on SQLite.  If the store cannot be written,
every waiting request gets ``AuditUnavailable`` and the API answers 503 without serving
anything (fail closed).

Several nodes may append to one PostgreSQL log.  Each batch locks the log's counter row
(``audit_head``, ``SELECT ... FOR UPDATE``), numbers its events from it, adds the Merkle nodes
they complete and moves the counter on, all in one transaction: the next batch, from whichever
node, waits for that commit, so ``seq`` is 0..n-1 without gap or duplicate and events commit
in ``seq`` order.  Hashing a batch into the tree is a few microseconds per event, so it is done
right there; only checkpoints (signing, anchoring) are cut apart, by one node at a time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from vault.audit.anchor import S3Anchor
from vault.audit.bundle import checkpoint_reason
from vault.audit.merkle import CompactRange, leaf_hash
from vault.audit.models import AuditCheckpoint, AuditEvent
from vault.audit.note import Checkpoint, NoteSigner, format_checkpoint
from vault.audit.records import build_record, system_info
from vault.audit.tree import TreeReader
from vault.db import CHECKPOINT_LOCK
from vault.errors import AuditUnavailable, BadRequest

log = logging.getLogger("kinko.audit")

EVENT_FIELDS = (
    "seq",
    "time",
    "actor",
    "action",
    "decision",
    "reason",
    "case_id",
    "document_id",
    "version",
    "class",
    "purpose",
    "target",
    "client",
    "request_id",
)


def canonical_bytes(event: Mapping[str, Any]) -> bytes:
    """The exact bytes a Merkle leaf is computed over (SPEC §5)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_INSERT_EVENTS = (
    "INSERT INTO audit_events (seq, time, actor, action, decision, case_id, document_id, "
    "canonical, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_NODES = "INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?)"
_READ_HEAD = "SELECT size FROM audit_head WHERE id = 1"
_MOVE_HEAD = "UPDATE audit_head SET size = ? WHERE id = 1"


def lock_head(conn: Connection) -> int:
    """The log's size, read from its counter row and locked until the transaction ends.

    On SQLite the transaction already holds the database's write lock (``BEGIN IMMEDIATE``);
    on PostgreSQL ``FOR UPDATE`` makes every other appender wait here for this commit.
    """
    sql = _READ_HEAD + (" FOR UPDATE" if conn.dialect.name == "postgresql" else "")
    size = conn.exec_driver_sql(sql).scalar()
    if size is None:
        raise RuntimeError("the audit store has no counter row (audit_head); migrate it")
    return int(size)


def _driver_sql(conn: Connection, sql: str) -> str:
    """A statement written with ``?`` placeholders, in the driver's own placeholder style."""
    style = conn.dialect.paramstyle
    if style == "qmark":
        return sql
    if style in ("format", "pyformat"):
        return sql.replace("?", "%s")
    raise RuntimeError(f"unsupported DB-API paramstyle {style!r}")


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with fixed microsecond width, so string order equals time order."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"not an RFC 3339 time: {value!r}", code="invalid_time") from None
    if t.tzinfo is None:
        raise BadRequest("times must carry a UTC offset", code="invalid_time")
    # Years at the edge of the calendar overflow once moved to UTC or stored; nothing in a
    # procurement vault happens there.
    if not 1970 <= t.year <= 9000:
        raise BadRequest("time out of range (years 1970-9000)", code="invalid_time")
    return t


@dataclass
class _Pending:
    record: dict[str, Any]
    future: Future[dict[str, Any]]


class AuditLog:
    def __init__(
        self,
        engine: Engine,
        *,
        timeout: float = 5.0,
        batch_max: int = 256,
        signer: NoteSigner | None = None,
        checkpoint_interval: float = 10.0,
        anchor: S3Anchor | None = None,
    ) -> None:
        # Appends take the write lock on SQLite; on PostgreSQL they serialise on the counter
        # row alone, not on the advisory lock of the store's other writers (vault.db).
        self._engine = engine.execution_options(kinko_write=True, kinko_append=True)
        self._read_engine = engine
        self._timeout = timeout
        self._batch_max = batch_max
        self._signer = signer
        self._checkpoint_interval = checkpoint_interval
        self._anchor = anchor
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._last_cut = time.monotonic()
        self._lock = threading.Lock()
        # The Merkle frontier after the last commit this process made.  Re-reading it from the
        # store cost more than the rest of an append; it is reused whenever the store's size
        # still matches it (checked inside each write transaction, so an append by another
        # process, the CLI say, is noticed and the frontier read again).
        self._frontier: CompactRange | None = None
        self._frontier_lock = threading.Lock()
        # The writer thread's connection (see _commit_batch); no other thread uses it.
        self._writer_conn: Connection | None = None

    # -- writing -------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._run, name="kinko-audit-writer", daemon=True
                )
                self._thread.start()
                if self._signer is not None:
                    # Checkpoints are cut (and anchored, over the network) on a thread of their
                    # own, so a slow anchor bucket never holds up the events of requests.
                    self._ticker = threading.Thread(
                        target=self._tick, name="kinko-audit-checkpoints", daemon=True
                    )
                    self._ticker.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            ticker, self._ticker = self._ticker, None
        self._stopping.set()
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)
        if ticker is not None:
            ticker.join(timeout=10)
        if thread is not None and self._signer is not None:
            self._checkpoint_at_stop()

    def _checkpoint_at_stop(self) -> None:
        """Cut a last checkpoint once every queued event is committed.

        Without it, a server that stops before its first periodic cut (or between two) leaves
        its newest events in the bundle's unverified tail for good.  Only a started log (the
        server's) does this: a CLI command that merely opened the store must not write to the
        log on its way out.  The unforced cut skips a log that has not grown since the last
        checkpoint, so a restart loop does not checkpoint itself for ever; a failure is logged
        rather than raised, as a stopping server has nobody left to answer.
        """
        try:
            self.cut_checkpoint()
        except Exception:
            log.exception("could not cut the audit checkpoint at shutdown")

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append one event and wait until it is durably committed; returns it with its seq."""
        if self._thread is None:
            return self.append_many([record])[0]
        fut: Future[dict[str, Any]] = Future()
        self._queue.put(_Pending(dict(record), fut))
        try:
            return fut.result(timeout=self._timeout + 1.0)
        except FutureTimeout:
            pass
        # A request that gives up must not be recorded later as if it had been answered: an
        # event the writer has not taken yet is withdrawn.  One already being committed is
        # waited for, as its transaction ends within the store's own busy timeout.
        if fut.cancel():
            raise AuditUnavailable("the audit log could not be written in time")
        try:
            return fut.result(timeout=self._timeout + 1.0)
        except FutureTimeout:
            raise AuditUnavailable("the audit log could not be written in time") from None

    def append_many(self, records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Commit events directly (CLI tools, start-up); one transaction for all of them."""
        try:
            return self._commit([dict(r) for r in records])
        except AuditUnavailable:
            raise
        except Exception as exc:
            raise AuditUnavailable(f"the audit log could not be written: {exc}") from exc

    def _tick(self) -> None:
        while not self._stopping.wait(min(1.0, self._checkpoint_interval)):
            if time.monotonic() - self._last_cut < self._checkpoint_interval:
                continue
            self._last_cut = time.monotonic()
            try:
                self.cut_checkpoint()
            except Exception:
                log.exception("could not cut an audit checkpoint")

    def _run(self) -> None:
        try:
            self._serve_queue()
        finally:
            if self._writer_conn is not None:
                with contextlib.suppress(Exception):
                    self._writer_conn.close()
                self._writer_conn = None

    def _serve_queue(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            try:
                if self._commit_batch([first]):
                    return
            except Exception:
                # A bug here must not end the writer: every later request would then wait
                # for a thread that is gone.  The requests of this batch time out (503).
                log.exception("the audit writer failed on a batch; it carries on")

    def _drain(self, batch: list[_Pending]) -> bool:
        """Add every event waiting in the queue to ``batch``; True if asked to stop."""
        while len(batch) < self._batch_max:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return False
            if nxt is None:
                return True
            batch.append(nxt)
        return False

    def _commit_batch(self, batch: list[_Pending]) -> bool:
        """Commit ``batch`` and whatever else is queued by the time the log's lock is held.

        The batch is gathered *after* the counter row (or SQLite's write lock) is taken: with
        several nodes appending, a node waits there for another node's commit, and every event
        that arrives meanwhile joins this commit instead of waiting for the next one.  Each
        event is claimed just before it is written; one whose request already gave up
        (cancelled) is dropped.  Returns True when the queue asked the writer to stop.

        The writer thread keeps one connection open between batches: checking one out of the
        pool and resetting it on return cost as much as the rest of a batch.  After any
        failure the connection is dropped, so the next batch starts on a fresh one (a store
        that comes back is used again without a restart).
        """
        # None until the batch's events are claimed, which happens once: a future that was
        # cancelled may not be asked again (concurrent.futures raises).
        claimed: list[_Pending] | None = None
        stop = False
        compact: CompactRange | None = None
        events: list[dict[str, Any]] = []
        try:
            conn = self._writer_conn
            if conn is None:
                conn = self._writer_conn = self._engine.connect()
            try:
                with conn.begin():
                    head = lock_head(conn)
                    stop = self._drain(batch)
                    claimed = [p for p in batch if p.future.set_running_or_notify_cancel()]
                    if claimed:
                        events, compact = self._insert(conn, [p.record for p in claimed], head=head)
            except BaseException:
                self._writer_conn = None
                with contextlib.suppress(Exception):
                    conn.close()
                raise
        except Exception as exc:
            if claimed is None:
                claimed = [p for p in batch if p.future.set_running_or_notify_cancel()]
            err = AuditUnavailable(f"the audit log could not be written: {exc}")
            for p in claimed:
                p.future.set_exception(err)
            return stop
        if compact is not None:
            self._remember(compact)
        for p, ev in zip(claimed or [], events, strict=True):
            p.future.set_result(ev)
        return stop

    def _commit(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._engine.begin() as conn:
            events, compact = self._insert(conn, records)
        self._remember(compact)
        return events

    def _remember(self, compact: CompactRange) -> None:
        """Keep the frontier of a committed transaction for the next append.

        The newest commit always wins, whatever its size: any committed frontier is a prefix
        of the log as the store now holds it, while keeping only the largest one would reuse
        a frontier the store no longer agrees with once a database is restored to an earlier
        state (the size check in ``_resume`` would match it again later).
        """
        with self._frontier_lock:
            self._frontier = compact

    def _resume(self, conn: Connection, size: int) -> CompactRange:
        """A compact range at ``size``: the remembered one when it is still current."""
        with self._frontier_lock:
            known = self._frontier
        if known is not None and known.size == size:
            return known.copy()
        return TreeReader(conn).compact_range(size)

    def insert_events(
        self, conn: Connection, records: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Insert events and the tree nodes they complete, inside the caller's transaction.

        The caller owns the transaction, so the frontier it ends with is not remembered: the
        next append of this log sees a size it does not know and reads the frontier again.
        """
        return self._insert(conn, records)[0]

    def _insert(
        self, conn: Connection, records: list[dict[str, Any]], *, head: int | None = None
    ) -> tuple[list[dict[str, Any]], CompactRange]:
        now = format_time(datetime.now(UTC))
        events: list[dict[str, Any]] = []
        # The next seq comes from the locked counter row, so appends from other processes (the
        # CLI, other nodes) interleave without gaps or duplicates.  ``head`` is the size a
        # caller already read under that lock in this transaction.
        seq = (lock_head(conn) if head is None else head) - 1
        compact = self._resume(conn, seq + 1)
        rows: list[tuple[Any, ...]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for rec in records:
            seq += 1
            event = {k: rec.get(k) for k in EVENT_FIELDS}
            event["seq"] = seq
            event["time"] = now
            canon = canonical_bytes(event)
            leaf = leaf_hash(canon)
            rows.append(
                (
                    seq,
                    now,
                    event["actor"],
                    event["action"],
                    event["decision"],
                    event["case_id"],
                    event["document_id"],
                    canon,
                    leaf,
                )
            )
            # Level 0 is the leaf itself, stored with its event; the rest are tree rows.
            nodes.extend((lvl, idx, h) for lvl, idx, h in compact.append(leaf) if lvl > 0)
            events.append(event)
        # Plain driver statements: this runs once per batch of every request's event, and
        # compiling Core inserts cost more than the database's own work.
        conn.exec_driver_sql(_driver_sql(conn, _INSERT_EVENTS), rows)
        if nodes:
            conn.exec_driver_sql(_driver_sql(conn, _INSERT_NODES), nodes)
        conn.exec_driver_sql(_driver_sql(conn, _MOVE_HEAD), (seq + 1,))
        return events, compact

    # -- checkpoints ---------------------------------------------------------------------------

    def cut_checkpoint(self, *, force: bool = False) -> str | None:
        note = self._cut(force=force)
        if self._anchor is not None:
            self.anchor_pending()
        return note

    def anchor_pending(self) -> int:
        """Copy checkpoints not yet anchored to the WORM bucket; a failure waits for the next."""
        assert self._anchor is not None
        with self._read_engine.connect() as conn:
            rows = conn.execute(
                select(AuditCheckpoint.size, AuditCheckpoint.note)
                .where(AuditCheckpoint.size > self._anchor.anchored_size)
                .order_by(AuditCheckpoint.size)
            ).all()
        try:
            return self._anchor.anchor_pending([(int(r.size), str(r.note)) for r in rows])
        except Exception:
            log.exception("could not anchor checkpoints; will retry with the next one")
            return 0

    def _cut(self, *, force: bool) -> str | None:
        """Sign a checkpoint over every event so far; returns the note, or None if not needed.

        The periodic cut skips a log whose only new event is the previous cut's own
        ``audit.checkpoint`` event, so an idle log does not checkpoint itself for ever;
        ``force`` (``kinko audit checkpoint``) cuts whenever the log has grown at all.
        """
        if self._signer is None:
            raise RuntimeError("no checkpoint signing key configured")
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # One node cuts at a time; a periodic cut that finds another node cutting
                # leaves it to that one rather than queueing behind it.
                if force:
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({CHECKPOINT_LOCK})")
                elif not conn.exec_driver_sql(
                    f"SELECT pg_try_advisory_xact_lock({CHECKPOINT_LOCK})"
                ).scalar():
                    return None
            # Locking the counter row first fixes the size: no event can land between the
            # root computed below and this checkpoint's own event, from any node.
            size = lock_head(conn)
            last = conn.execute(
                select(AuditCheckpoint.size, AuditCheckpoint.time, AuditCheckpoint.note)
                .order_by(AuditCheckpoint.size.desc())
                .limit(1)
            ).first()
            last_size = last.size if last is not None else 0
            if size == 0 or size <= last_size:
                return last.note if (force and last is not None) else None
            if not force and size == last_size + 1:
                only = conn.execute(
                    select(AuditEvent.action).where(AuditEvent.seq == last_size)
                ).scalar()
                if only == "audit.checkpoint":
                    return None
            root = TreeReader(conn).root(size)
            when = datetime.now(UTC)
            if last is not None:
                # Checkpoint times must strictly increase even if the clock stepped back.
                floor = parse_time(last.time) + timedelta(microseconds=1)
                when = max(when, floor)
            cp = Checkpoint(origin=self._signer.name, size=size, root=root, time=when)
            note = self._signer.sign(format_checkpoint(cp))
            conn.execute(
                insert(AuditCheckpoint).values(
                    size=size, root=root, time=format_time(when), note=note
                )
            )
            # The log records its own checkpoints, so a checkpoint deleted from an export is
            # noticed by the verifier: the event naming it is still there.
            _, compact = self._insert(
                conn,
                [
                    build_record(
                        system_info("checkpoint"),
                        actor=None,
                        action="audit.checkpoint",
                        decision="allow",
                        reason=checkpoint_reason(size, root),
                    )
                ],
                head=size,
            )
        self._remember(compact)
        return note

    def latest_checkpoint(self) -> str | None:
        with self._read_engine.connect() as conn:
            note = conn.execute(
                select(AuditCheckpoint.note).order_by(AuditCheckpoint.size.desc()).limit(1)
            ).scalar()
        return None if note is None else str(note)

    def checkpoints(self, conn: Connection) -> list[str]:
        return [
            str(n)
            for n in conn.execute(select(AuditCheckpoint.note).order_by(AuditCheckpoint.size))
            .scalars()
            .all()
        ]

    @property
    def signer(self) -> NoteSigner | None:
        return self._signer

    # -- proofs --------------------------------------------------------------------------------

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self._read_engine.connect() as conn:
            current = self.size_in(conn)
            if not 0 <= index < size <= current:
                raise BadRequest(f"need 0 <= seq < size <= {current}", code="invalid_proof_request")
            return TreeReader(conn).inclusion(index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        with self._read_engine.connect() as conn:
            current = self.size_in(conn)
            if not 0 <= old <= new <= current:
                raise BadRequest(f"need 0 <= old <= new <= {current}", code="invalid_proof_request")
            return TreeReader(conn).consistency(old, new)

    def root(self, size: int) -> bytes:
        with self._read_engine.connect() as conn:
            return TreeReader(conn).root(size)

    @staticmethod
    def size_in(conn: Connection) -> int:
        last = conn.execute(text("SELECT MAX(seq) FROM audit_events")).scalar()
        return 0 if last is None else int(last) + 1

    # -- querying ------------------------------------------------------------------------------

    def query(
        self,
        *,
        actor: str | None = None,
        case_id: str | None = None,
        document_id: str | None = None,
        action: str | None = None,
        decision: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Events in ascending seq order with an opaque cursor for the next page."""
        if decision is not None and decision not in ("allow", "deny"):
            raise BadRequest("decision must be allow or deny", code="invalid_decision")
        if limit < 1:
            raise BadRequest("limit must be at least 1", code="invalid_limit")
        limit = min(limit, 1000)
        stmt = select(AuditEvent.seq, AuditEvent.canonical).order_by(AuditEvent.seq)
        if cursor is not None:
            stmt = stmt.where(AuditEvent.seq > decode_cursor(cursor))
        for column, value in (
            (AuditEvent.actor, actor),
            (AuditEvent.case_id, case_id),
            (AuditEvent.document_id, document_id),
            (AuditEvent.action, action),
            (AuditEvent.decision, decision),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if since is not None:
            stmt = stmt.where(AuditEvent.time >= format_time(parse_time(since)))
        if until is not None:
            stmt = stmt.where(AuditEvent.time < format_time(parse_time(until)))
        stmt = stmt.limit(limit + 1)
        with self._read_engine.connect() as conn:
            rows = conn.execute(stmt).all()
        more = len(rows) > limit
        rows = rows[:limit]
        events = [json.loads(r.canonical) for r in rows]
        next_cursor = encode_cursor(rows[-1].seq) if more and rows else None
        return events, next_cursor

    def size(self) -> int:
        with self._read_engine.connect() as conn:
            return self.size_in(conn)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        seq = int(value)
        if prefix != "seq" or not 0 <= seq < 2**62:
            raise ValueError(raw)
        return seq
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise BadRequest("invalid cursor", code="invalid_cursor") from None
