"""Catalog tables.

Nothing a document says is stored here in the clear: titles (of documents and of cases) and
content digests are sealed with the case key, and content lives only as ciphertext in the blob
store under a random name.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from vault.catalog.types import UTCDateTime


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(255))
    # Where notices reach the user (issue 12); shown only to admins and to the user.
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    # Comma-separated global roles; the set is tiny and always read whole.
    roles: Mapped[str] = mapped_column(String(100), default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # An argon2id hash (PHC string) of the web sign-in password; None until the user has
    # redeemed an invitation (vault.services.accounts).
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    password_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def role_list(self) -> list[str]:
        return [r for r in self.roles.split(",") if r]


class Invitation(Base):
    """A one-time link that lets a user set their password; only its SHA-256 is kept."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(Integer, default=None)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when redeemed, or when a newer invitation for the same user replaced it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class WebSession(Base):
    """A signed-in browser.  The cookie holds a random secret; only its SHA-256 is kept, in
    the catalog, so that every node sees the same sessions and a sign-out ends one at once."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The absolute end: created_at + session_max_seconds.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    # Where the sign-in came from, shown to the user among their last sign-ins.
    client_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    # "password" or "invitation".
    method: Mapped[str] = mapped_column(String(16), default="password")


class SignInFailure(Base):
    """A failed sign-in, kept for throttling (vault.services.accounts).

    The user name is kept as a keyed hash: people type their password into the name field
    now and then, and this table must not keep such a slip in the clear.
    """

    __tablename__ = "sign_in_failures"
    __table_args__ = (
        Index("ix_sign_in_failures_user_at", "user_key", "at"),
        Index("ix_sign_in_failures_ip_at", "client_ip", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # Only a SHA-256 of the token is kept, so a copy of the database hands out no sessions.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The user who minted this token when it was not its holder (an admin issuing one for
    # someone else), inherited by tokens minted with it: events made with it name the issuer.
    issued_by: Mapped[int | None] = mapped_column(Integer, default=None)
    # The token this one was minted with: revoking a token revokes what was minted with it.
    parent_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    # When the token last authenticated a request, to within TOKEN_USE_GRANULARITY
    # (vault.services.users): an admin can tell a forgotten token from one in daily use.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    title_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # The case key wrapped by the master key provider (context: the case id).
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Set when the case was crypto-shredded (``kinko case shred``): ``wrapped_key`` is then
    # the empty tombstone and nothing of the case can be decrypted any more.
    shredded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Bumped by database triggers on every change to the case's documents (migration c0004);
    # the sync manifest's ETag is built from it.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Membership(Base):
    __tablename__ = "memberships"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    roles: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who last granted or changed this membership (None: the case's creator, at creation).
    granted_by: Mapped[int | None] = mapped_column(Integer, default=None)

    @property
    def role_list(self) -> list[str]:
        return [r for r in self.roles.split(",") if r]


class Transition(Base):
    __tablename__ = "transitions"
    __table_args__ = (Index("ix_transitions_case_at", "case_id", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    stage: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    doc_class: Mapped[str] = mapped_column("class", String(32))
    title_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    final_version: Mapped[int | None] = mapped_column(Integer)


class Version(Base):
    __tablename__ = "versions"

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob_name: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    sha256_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # The per-version data key, wrapped by the case key with the document id and version as
    # associated data, so a wrapped key copied onto another row does not unwrap.
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Whether the author held the evaluator role when writing: their name is then secret (§4.3).
    by_evaluator: Mapped[bool] = mapped_column(Boolean, default=False)
    # The Content-Type the version was uploaded with, sealed with the case key like the
    # title; None for versions stored before it was kept, which are served as
    # application/octet-stream.
    content_type_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class IdempotencyRecord(Base):
    """What a write with an ``Idempotency-Key`` produced: ids only, never titles or content."""

    __tablename__ = "idempotency"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(200))
    resource_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # HMAC-SHA256 (server key) of what the request asked for, so a key reused for another
    # request is refused without the record keeping any title or content.
    fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)


class Notification(Base):
    """Something a user should know about.

    Notices about a user's tokens are references only, rendered from ``kind`` and the ids
    when shown.  Notices about a case carry their text, sealed with the case key
    (``text_sealed``), so the catalog never holds a notification body in the clear
    (guarantee 1).
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    subject_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    case_id: Mapped[str | None] = mapped_column(String(32))
    ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The text in both languages (JSON {"ja", "en"}), sealed with the case key, for notices
    # about a case (issue 12); None for notices rendered from their references alone.
    text_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class CatalogChange(Base):
    """One row counting the catalog's committed changes (id 1).

    Every write through a write session moves it on (vault.catalog.changes), so a node that
    keeps answers of the catalog in memory can tell that another node changed something: it
    polls this row as the truth and listens for the notification sent with each change.
    """

    __tablename__ = "catalog_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))


class Disclosure(Base):
    """A supervisor-approved share of one version with one named outsider (情報提供).

    Who receives it (name, organisation, address) and why are sealed with the case key: the
    catalog must not tell in the clear which vendor was given what.  The link's token is kept
    only as its SHA-256.
    """

    __tablename__ = "disclosures"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"))
    version: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who minted the token the request was made with, when not the requester: that person
    # may not approve it either (four eyes, as for reviews).
    requested_via: Mapped[str | None] = mapped_column(String(64), default=None)
    # JSON {"name", "organization", "email", "reason", "note"?}, sealed (vault.keys.keyring).
    recipient_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # requested, approved, rejected or revoked; expiry and use-up are read from the columns.
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    max_downloads: Mapped[int] = mapped_column(Integer)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    decided_by: Mapped[int | None] = mapped_column(Integer, default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_by: Mapped[int | None] = mapped_column(Integer, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    last_download_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Contact(Base):
    """One contact with a vendor in the register (事業者との接触記録): the prior report, an
    urgent contact's approval, the supervisor's acknowledgement and the report afterwards.

    The vendor, the agenda, the justification and the summary are sealed with the case key.
    """

    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_status_planned", "status", "planned_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    reported_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The issuer of the reporter's token, when not the reporter (see Disclosure).
    reported_via: Mapped[str | None] = mapped_column(String(64), default=None)
    channel: Mapped[str] = mapped_column(String(16))
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Comma-separated user ids of our participants.
    participants: Mapped[str] = mapped_column(String(1000))
    minor: Mapped[bool] = mapped_column(Boolean, default=False)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    # JSON {"vendor", "agenda", "justification"?}, sealed.
    details_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # pending_approval, planned or reported.
    status: Mapped[str] = mapped_column(String(20))
    approved_by: Mapped[int | None] = mapped_column(Integer, default=None)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    acknowledged_by: Mapped[int | None] = mapped_column(Integer, default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # JSON {"summary"}, sealed.
    report_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    information_provided: Mapped[bool | None] = mapped_column(Boolean, default=None)
    disclosure_ids: Mapped[str | None] = mapped_column(String(1000), default=None)
    report_acknowledged_by: Mapped[int | None] = mapped_column(Integer, default=None)
    report_acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When the supervisors were told the report is overdue (once).
    overdue_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def participant_ids(self) -> list[int]:
        return [int(p) for p in self.participants.split(",") if p]


class OutboxMail(Base):
    """A message waiting to be sent (or sent), committed with the change that caused it.

    The whole message (envelope and text) is sealed with a data key of its own, wrapped by
    the master key provider; once sent, the sealed message and its key are erased and only
    the SHA-256 of what was sent stays, which the audit log records too.
    """

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_due", "sent_at", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    message_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The node sending it and until when its claim holds: two nodes never send one message.
    claimed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The kind of the last failure (an exception class name, never the server's text).
    last_error: Mapped[str | None] = mapped_column(String(64), default=None)
