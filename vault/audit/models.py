"""Audit store tables, kept apart from the catalog so that either can fail on its own."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class AuditBase(DeclarativeBase):
    pass


class AuditEvent(AuditBase):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_actor_seq", "actor", "seq"),
        Index("ix_audit_case_seq", "case_id", "seq"),
        Index("ix_audit_document_seq", "document_id", "seq"),
        Index("ix_audit_action_seq", "action", "seq"),
        Index("ix_audit_time", "time"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    # RFC 3339 UTC with a fixed width, so string order is time order.
    time: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(8))
    case_id: Mapped[str | None] = mapped_column(String(32))
    document_id: Mapped[str | None] = mapped_column(String(32))
    # The canonical bytes are the record; the columns above only index it.  The Merkle tree of
    # the next phase is built over exactly these bytes.
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditHead(AuditBase):
    """The counter row: how many events the log holds (one row, id 1)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))


class AuditTreeNode(AuditBase):
    """A perfect subtree of the Merkle tree above the leaves (level >= 1)."""

    __tablename__ = "audit_tree"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditCheckpoint(AuditBase):
    """Every signed checkpoint ever cut, kept for ever."""

    __tablename__ = "audit_checkpoints"

    size: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    root: Mapped[bytes] = mapped_column(LargeBinary)
    time: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text)
