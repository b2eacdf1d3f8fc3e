"""``Idempotency-Key`` on writes: a retry returns the first result and creates nothing new.

A record keeps only what identifies the result (the resource id and, for documents, the
version), never titles or content; the first response is rebuilt from the catalog on replay.
The record is written in the same transaction as the change it describes, so a crash can
never leave one without the other.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.catalog.models import IdempotencyRecord
from vault.errors import BadRequest, Conflict
from vault.services.context import Ctx


def parse_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= 200 or not value.isprintable():
        raise BadRequest("Idempotency-Key must be 1-200 printable characters", code="invalid_key")
    return value


def lookup(s: Session, ctx: Ctx, key: str | None, scope: str) -> IdempotencyRecord | None:
    """The earlier result for this key, if any; the same key on another request is 409."""
    if key is None or ctx.principal.user_id is None:
        return None
    rec = s.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == ctx.principal.user_id, IdempotencyRecord.key == key
        )
    )
    if rec is not None and rec.scope != scope:
        raise Conflict(
            "this Idempotency-Key was used for a different request", code="idempotency_key_reused"
        )
    return rec


def remember(
    s: Session, ctx: Ctx, key: str | None, scope: str, resource_id: str, version: int | None = None
) -> None:
    if key is None or ctx.principal.user_id is None:
        return
    s.add(
        IdempotencyRecord(
            user_id=ctx.principal.user_id,
            key=key,
            scope=scope,
            resource_id=resource_id,
            version=version,
            created_at=ctx.now(),
        )
    )
