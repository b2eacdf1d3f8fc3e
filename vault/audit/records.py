"""The one builder of audit records: API requests, CLI commands, system events and reviews.

Every event the log holds is shaped here, so the fields of SPEC §5 (and the ``client`` object
with ``token_issuer``) are the same whoever writes them.  A record is what a caller hands to
``AuditLog.append``; the log adds ``seq`` and ``time``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

# Fields an event may carry besides actor/action/decision/reason/client/request_id.
SUBJECT_FIELDS = ("case_id", "document_id", "version", "class", "purpose", "target")


@dataclass(frozen=True)
class RequestInfo:
    """Who is on the other end of a request, as the log records it under ``client``."""

    ip: str | None
    user_agent: str | None
    device: str | None
    request_id: str
    # The user who minted the token this request was made with, when that was not the token's
    # own holder (an admin issuing a token for someone else): every event made with such a
    # token says so, so nobody acts through another person's credential unseen.
    token_issuer: str | None = None

    def with_issuer(self, issuer: str | None) -> RequestInfo:
        return replace(self, token_issuer=issuer)


def cli_info(command: str) -> RequestInfo:
    """The identity of a ``kinko`` command run on the data directory (no network client)."""
    return RequestInfo(
        ip=None, user_agent=f"kinko {command}", device=None, request_id=f"cli-{uuid.uuid4().hex}"
    )


def system_info(name: str) -> RequestInfo:
    """The identity of something the server does on its own (bootstrap, checkpoints)."""
    return RequestInfo(ip=None, user_agent=f"kinko {name}", device=None, request_id=name)


def client_of(info: RequestInfo) -> dict[str, Any]:
    client: dict[str, Any] = {"ip": info.ip, "user_agent": info.user_agent, "device": info.device}
    if info.token_issuer is not None:
        # Only present when set, so events of ordinary tokens keep their shape.
        client["token_issuer"] = info.token_issuer
    return client


def build_record(
    info: RequestInfo,
    *,
    actor: str | None,
    action: str,
    decision: str,
    reason: str | None,
    **fields: Any,
) -> dict[str, Any]:
    """One audit record; ``cls`` may stand for ``class`` (a Python keyword)."""
    subject: dict[str, Any] = dict.fromkeys(SUBJECT_FIELDS)
    for key, value in fields.items():
        name = "class" if key == "cls" else key
        if name not in subject:
            raise TypeError(f"unknown audit field {key}")
        subject[name] = value
    if decision not in ("allow", "deny"):
        raise ValueError(f"decision must be allow or deny, not {decision!r}")
    return {
        "actor": actor,
        "action": action,
        "decision": decision,
        "reason": reason,
        **subject,
        "client": client_of(info),
        "request_id": info.request_id,
    }


def cli_record(
    command: str, action: str, *, reason: str | None = None, **fields: Any
) -> dict[str, Any]:
    """An allowed event of a CLI command (``kinko keys rotate``, ``kinko storage gc``, ...)."""
    return build_record(
        cli_info(command), actor=None, action=action, decision="allow", reason=reason, **fields
    )
