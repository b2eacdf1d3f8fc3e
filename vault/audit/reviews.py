"""The access-review index, kept in the audit store beside the events it is derived from.

A review item is an index over ``document.read`` events (SPEC §6): ``sync_index`` folds every
new allowed read of a non-disclosed document into ``review_items`` and moves a cursor, so reads
stay as cheap as before and the index can always be rebuilt from the log (apart from the
decisions, which are themselves recorded as ``review.submit`` events).  Who may see or decide an
item is not decided here: that is the guard's, called by ``vault.services.reviews``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Index,
    Integer,
    String,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from vault.audit.models import AuditBase, AuditEvent

_SEQ = BigInteger().with_variant(Integer(), "sqlite")

STATUSES = ("pending", "confirmed", "flagged")
VERDICTS = ("confirmed", "flagged")


class ReviewItem(AuditBase):
    """One user's reads of one document for one purpose on one calendar day."""

    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_key", "actor", "document_id", "day", "status"),
        Index("ix_review_items_status_seq", "status", "seq"),
        Index("ix_review_items_case_seq", "case_id", "seq"),
        Index("ix_review_items_time", "time"),
    )

    # The seq of the first read joined into the item.
    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=False)
    actor: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str | None] = mapped_column(String(32))
    document_id: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str | None] = mapped_column(Text)
    # Calendar day of the first read in KINKO_TIMEZONE (YYYY-MM-DD): the grouping key.
    day: Mapped[str] = mapped_column(String(10))
    # Event time of the first read (RFC 3339 UTC, fixed width, so string order is time order).
    time: Mapped[str] = mapped_column(String(32))
    reads: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(_SEQ)
    status: Mapped[str] = mapped_column(String(16))
    reviewer: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[str | None] = mapped_column(String(32))
    # Who minted the token the reads were made with, when not the reader (client.token_issuer).
    token_issuer: Mapped[str | None] = mapped_column(String(64))


class ReviewState(AuditBase):
    """A single row: the highest audit seq already folded into ``review_items``."""

    __tablename__ = "review_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(_SEQ)


_STATE_ID = 1
# Events folded per write transaction: the audit writer waits for the write lock meanwhile, so
# a large backlog (the first start on an old log) is indexed in short transactions.
_BATCH = 2000


def _cursor(conn: Connection) -> int | None:
    value = conn.execute(
        select(ReviewState.last_seq).where(ReviewState.id == _STATE_ID)
    ).scalar_one_or_none()
    return None if value is None else int(value)


def _new_reads(last: int | None) -> Any:
    stmt = select(AuditEvent.seq, AuditEvent.canonical).where(
        AuditEvent.action == "document.read", AuditEvent.decision == "allow"
    )
    if last is not None:
        stmt = stmt.where(AuditEvent.seq > last)
    return stmt.order_by(AuditEvent.seq)


def day_of(event_time: str, tz: ZoneInfo) -> str:
    """The calendar day (YYYY-MM-DD) in ``tz`` of an RFC 3339 event time."""
    t = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
    return t.astimezone(tz).date().isoformat()


def _fold(conn: Connection, seq: int, event: dict[str, Any], tz: ZoneInfo) -> None:
    actor, doc_id = event.get("actor"), event.get("document_id")
    if not actor or not doc_id or not isinstance(event.get("time"), str):
        return
    purpose = event.get("purpose")
    client = event.get("client")
    issuer = client.get("token_issuer") if isinstance(client, dict) else None
    day = day_of(event["time"], tz)
    # Only a pending item is joined: a read after the item was decided is new, unreviewed
    # access and opens an item of its own.  Grouping is otherwise unchanged (user, document,
    # purpose, day); an item names a token issuer as soon as any of its reads carried one.
    existing = conn.execute(
        select(ReviewItem.seq)
        .where(
            ReviewItem.actor == actor,
            ReviewItem.document_id == doc_id,
            ReviewItem.purpose.is_not_distinct_from(purpose),
            ReviewItem.day == day,
            ReviewItem.status == "pending",
        )
        .order_by(ReviewItem.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
    if existing is not None:
        conn.execute(
            update(ReviewItem)
            .where(ReviewItem.seq == existing)
            .values(
                reads=ReviewItem.reads + 1,
                last_seq=seq,
                token_issuer=func.coalesce(ReviewItem.token_issuer, issuer),
            )
        )
        return
    conn.execute(
        insert(ReviewItem).values(
            seq=seq,
            actor=actor,
            case_id=event.get("case_id"),
            document_id=doc_id,
            purpose=purpose,
            day=day,
            time=event["time"],
            reads=1,
            last_seq=seq,
            status="pending",
            token_issuer=issuer,
        )
    )


def sync_index(engine: Engine, tz: ZoneInfo) -> int:
    """Fold new allowed reads of non-disclosed documents into review items; returns how many.

    A deferred read first checks whether anything is new, so the common case takes no write
    lock.  Each batch is one ``BEGIN IMMEDIATE`` transaction that re-reads the cursor, upserts
    the items and advances the cursor, so concurrent callers (server threads, the CLI) never
    fold an event twice.  Events commit in seq order (seq is assigned under the write lock),
    so nothing can appear later below the cursor.
    """
    with engine.connect() as conn:
        if conn.execute(_new_reads(_cursor(conn)).limit(1)).first() is None:
            return 0
    writer = engine.execution_options(kinko_write=True)
    folded = 0
    while True:
        with writer.begin() as conn:
            last = _cursor(conn)
            rows = conn.execute(_new_reads(last).limit(_BATCH)).all()
            if not rows:
                return folded
            for row in rows:
                event = json.loads(row.canonical)
                # "disclosed" reads need no purpose and open no review (SPEC §6).
                if event.get("reason") == "ok":
                    _fold(conn, int(row.seq), event, tz)
            top = int(rows[-1].seq)
            if last is None:
                conn.execute(insert(ReviewState).values(id=_STATE_ID, last_seq=top))
            else:
                conn.execute(
                    update(ReviewState).where(ReviewState.id == _STATE_ID).values(last_seq=top)
                )
            folded += len(rows)
        if len(rows) < _BATCH:
            return folded
