"""Sending e-mail: the SMTP address Kinko is given, the messages it composes, one delivery.

The outbox (``vault.services.outbox``) decides what to send and when; this module only knows
SMTP.  ``smtp://`` upgrades to TLS with STARTTLS whenever the server offers it; ``smtps://``
speaks TLS from the first byte.  A user and password in the URL are used to log in.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

# Long enough for a slow relay, short enough that a dead one does not hold a sender for long.
SMTP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class SmtpTarget:
    tls: bool  # smtps: TLS from the start
    host: str
    port: int
    user: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://host[:port]`` or ``smtps://[user:password@]host[:port]``; ValueError else."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("KINKO_SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("KINKO_SMTP_URL must name a host, as in smtp://mail.example.jp:25")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("KINKO_SMTP_URL takes no path, query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("KINKO_SMTP_URL has an invalid port") from None
    tls = parts.scheme == "smtps"
    return SmtpTarget(
        tls=tls,
        host=parts.hostname,
        port=port or (465 if tls else 25),
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def compose(
    *,
    sender: str,
    to: list[str],
    cc: list[str],
    subject: str,
    body: str,
    message_id: str,
    at: datetime,
) -> bytes:
    """One message as the bytes sent: UTF-8 text, CRLF line ends, a fixed Message-ID.

    The Message-ID is the outbox row's, so should a message ever go out twice (a node that
    died between sending and recording it) the copies are recognisably one message.
    """
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body, charset="utf-8", cte="base64")
    return msg.as_bytes()


def deliver(target: SmtpTarget, sender: str, recipients: list[str], message: bytes) -> None:
    """Hand one message to the server; raises ``smtplib.SMTPException`` or ``OSError``."""
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if target.tls:
        client = smtplib.SMTP_SSL(
            target.host, target.port, timeout=SMTP_TIMEOUT_SECONDS, context=context
        )
    else:
        client = smtplib.SMTP(target.host, target.port, timeout=SMTP_TIMEOUT_SECONDS)
    with client:
        client.ehlo()
        if not target.tls and client.has_extn("starttls"):
            client.starttls(context=context)
            client.ehlo()
        if target.user is not None:
            client.login(target.user, target.password or "")
        refused = client.sendmail(sender, recipients, message)
        if refused and len(refused) == len(recipients):
            raise smtplib.SMTPRecipientsRefused(refused)
