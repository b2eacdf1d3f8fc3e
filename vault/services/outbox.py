"""The durable mail outbox: a message is committed with the change that causes it, then sent.

``enqueue`` adds a message inside the caller's write session, so the change and its mail
commit together or not at all.  ``Postman`` is each server node's sender: it claims due
messages under the catalog's write lock (one node at a time, so two nodes never claim one
message), sends them, and records the sending; a message that fails waits with a backoff
doubling from 1 s up to 30 s and is tried again.  Only a node that dies after the SMTP server
took a message and before recording it can send it twice; the copies share a Message-ID.

Guarantee 1 covers the outbox: the message (addresses and text, which name documents and
vendors) is sealed with the key of the case it is about, like titles, so that key rotation
re-wraps it with them and shredding the case makes it unreadable; it is erased once sent.
Only its SHA-256 stays, which the audit log records as well.

A node claims one message at a time, for longer than one SMTP conversation can last, and
records the sending only while its claim holds: with a slow mail server, a second node
never takes over a message the first is still sending.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import smtplib
import threading
import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from vault.audit.records import build_record, system_info
from vault.catalog.models import Case, OutboxMail
from vault.catalog.types import utcnow
from vault.core import Vault
from vault.db import STORE_ERRORS
from vault.errors import AuditUnavailable, KinkoError
from vault.mail import SmtpTarget, compose, deliver, parse_smtp_url

log = logging.getLogger("kinko.mail")

BACKOFF_CAP_SECONDS = 30.0
# How long a node's claim on a message holds: far longer than one SMTP conversation can take
# (each step of which times out after SMTP_TIMEOUT_SECONDS).
CLAIM_SECONDS = 300
# Messages sent per round, each claimed on its own.
BATCH = 20
# A message that can never be sent (its case was shredded, the server refused it for good)
# is set aside this far in the future and its refusal recorded.
SET_ASIDE = timedelta(days=3650)
OUTBOX_LABEL = "outbox"


def mail_enabled(vault: Vault) -> bool:
    return vault.settings.smtp_url is not None


def enqueue(
    s: Session,
    vault: Vault,
    *,
    kind: str,
    case_id: str,
    case_key: bytes,
    to: list[str],
    cc: list[str],
    subject: str,
    body: str,
    now: datetime,
) -> str | None:
    """Add one message to the outbox in ``s``; its SHA-256, or None when Kinko sends no mail
    (no ``KINKO_SMTP_URL``) or there is nobody to send it to."""
    to = [a for a in to if a]
    cc = [a for a in cc if a and a not in to]
    if not mail_enabled(vault) or not to:
        return None
    mail_id = uuid.uuid4().hex
    message = compose(
        sender=vault.settings.mail_from,
        to=to,
        cc=cc,
        subject=subject,
        body=body,
        message_id=f"<{mail_id}@kinko>",
        at=now,
    )
    digest = hashlib.sha256(message).hexdigest()
    envelope = {"to": to + cc, "message": base64.b64encode(message).decode()}
    s.add(
        OutboxMail(
            id=mail_id,
            case_id=case_id,
            kind=kind,
            wrapped_key=b"",
            message_sealed=vault.keys.seal_record(case_key, OUTBOX_LABEL, mail_id, envelope),
            sha256=digest,
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
    )
    return digest


def backoff(attempts: int) -> float:
    """Seconds before try ``attempts + 1``: 1, 2, 4, ... capped at 30."""
    return float(min(BACKOFF_CAP_SECONDS, 2 ** max(0, attempts - 1)))


class Postman:
    """One node's sender of the outbox, and its sweep for overdue contact reports."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.node = f"{uuid.uuid4().hex[:12]}"
        raw = vault.settings.smtp_url
        self.target: SmtpTarget | None = (
            parse_smtp_url(raw.get_secret_value()) if raw is not None else None
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_sweep = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kinko-postman", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            # A round in progress finishes its statement; shutdown never waits long for it
            # (an unsent message stays in the outbox for the next start or another node).
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import time

        settings = self.vault.settings
        while not self._stop.is_set():
            try:
                if time.monotonic() >= self._next_sweep:
                    self._next_sweep = time.monotonic() + settings.overdue_sweep_seconds
                    from vault.services.contacts import sweep_overdue

                    sweep_overdue(self.vault)
                if self.target is not None:
                    self.send_due()
            except STORE_ERRORS as exc:
                log.warning("outbox round failed (store), retrying: %s", exc)
            except (AuditUnavailable, KinkoError) as exc:
                log.warning("outbox round failed, retrying: %s", exc)
            except Exception:
                log.exception("outbox round failed unexpectedly, retrying")
            self._wake.wait(settings.outbox_poll_seconds)
            self._wake.clear()

    def _claim(self) -> OutboxMail | None:
        """The oldest due message, claimed by this node (under the catalog's write lock, so
        two nodes never claim one), or None."""
        now = utcnow()
        due = (
            OutboxMail.sent_at.is_(None),
            OutboxMail.next_attempt_at <= now,
            or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now),
        )
        # Looked for without the write lock first: most rounds find nothing, and a round
        # must not take the catalog's write lock every second on every node for that.
        with self.vault.read_session() as s:
            if s.scalar(select(OutboxMail.id).where(*due).limit(1)) is None:
                return None
        with self.vault.write_session() as s:
            row = s.scalar(select(OutboxMail).where(*due).order_by(OutboxMail.created_at).limit(1))
            if row is None:
                return None
            row.claimed_by = self.node
            row.claimed_until = now + timedelta(seconds=CLAIM_SECONDS)
            s.commit()
            return row

    def send_due(self) -> int:
        """Send what is due, one message at a time; the number sent."""
        assert self.target is not None
        sent = 0
        for _ in range(BATCH):
            row = self._claim()
            if row is None:
                break
            try:
                to, message = self._open(row)
            except Exception as exc:  # a shredded case, a key gone: it can never be sent
                self._failed(row, exc, permanent=True)
                continue
            try:
                deliver(self.target, self.vault.settings.mail_from, to, message)
            except smtplib.SMTPResponseException as exc:
                # 5xx: the server refuses this message for good; 4xx: try again later.
                self._failed(row, exc, permanent=exc.smtp_code >= 500)
                continue
            except (smtplib.SMTPException, OSError) as exc:
                self._failed(row, exc)
                continue
            self._sent(row)
            sent += 1
        return sent

    def _open(self, row: OutboxMail) -> tuple[list[str], bytes]:
        if row.case_id is None:
            raise ValueError("a message without a case has no key")
        with self.vault.read_session() as s:
            case = s.get(Case, row.case_id)
        if case is None:
            raise ValueError("the message's case is gone")
        key = self.vault.keys.case_key(case.id, case.wrapped_key)
        envelope = self.vault.keys.open_record(key, OUTBOX_LABEL, row.id, row.message_sealed)
        return list(envelope["to"]), base64.b64decode(envelope["message"])

    def _sent(self, row: OutboxMail) -> None:
        now = utcnow()
        with self.vault.write_session() as s:
            done = s.execute(
                update(OutboxMail)
                .where(OutboxMail.id == row.id, OutboxMail.claimed_by == self.node)
                .values(
                    sent_at=now,
                    attempts=row.attempts + 1,
                    claimed_by=None,
                    claimed_until=None,
                    # What was sent is not kept: the audit log has its digest.
                    message_sealed=b"",
                    wrapped_key=b"",
                    last_error=None,
                )
            )
            s.commit()
        if not done.rowcount:  # type: ignore[attr-defined]
            # Unreachable while one conversation is shorter than the claim; said loudly if not.
            log.error("mail %s was sent after this node's claim on it had run out", row.id)
        self._record(
            row,
            "allow",
            f"attempts={row.attempts + 1}",
            "mail %s was sent but its audit event could not be written",
        )

    def _failed(self, row: OutboxMail, exc: BaseException, *, permanent: bool = False) -> None:
        attempts = row.attempts + 1
        wait = backoff(attempts)
        if permanent:
            log.error("mail %s can never be sent (%s); set aside", row.id, type(exc).__name__)
            self._record(
                row,
                "deny",
                f"never_sendable:{type(exc).__name__}",
                "mail %s set aside, and its audit event could not be written",
            )
        else:
            log.warning(
                "mail %s not sent (try %d, %s); next try in %.0f s",
                row.id,
                attempts,
                type(exc).__name__,
                wait,
            )
        later = SET_ASIDE if permanent else timedelta(seconds=wait)
        with self.vault.write_session() as s:
            s.execute(
                update(OutboxMail)
                .where(OutboxMail.id == row.id, OutboxMail.claimed_by == self.node)
                .values(
                    attempts=attempts,
                    next_attempt_at=utcnow() + later,
                    claimed_by=None,
                    claimed_until=None,
                    last_error=(("permanent:" if permanent else "") + type(exc).__name__)[:64],
                )
            )
            s.commit()

    def _record(self, row: OutboxMail, decision: str, outcome: str, unrecorded: str) -> None:
        """The ``mail.send`` event of one message; ``unrecorded`` is logged if it fails."""
        try:
            self.vault.audit.append(
                build_record(
                    system_info("outbox"),
                    actor=None,
                    action="mail.send",
                    decision=decision,
                    reason=f"{row.kind} sha256={row.sha256} {outcome}",
                    case_id=row.case_id,
                    target=row.id,
                )
            )
        except AuditUnavailable:
            log.error(unrecorded, row.id)
