"""Review tables, kept in the audit store beside the events they are derived from.

A review item is an index over ``document.read`` events: it can always be rebuilt from the log
(apart from the decisions, which are themselves recorded as ``review.submit`` events).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vault.audit.models import AuditBase

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
