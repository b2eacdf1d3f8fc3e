"""``Idempotency-Key`` on writes: a retry returns the first result and creates nothing new.

A record keeps only what identifies the result (the resource id and, for documents, the
version) and a *fingerprint* of the request: an HMAC-SHA256 under a server key of what was
asked (for documents: the title and the content's digest among it).  A retry whose fingerprint
differs reused the key for another request and is refused with 422; the HMAC lets the record
tell requests apart without keeping titles or content, and without the key a copy of the
database cannot confirm a guessed title.  The record is written in the same transaction as the
change it describes, so a crash can never leave one without the other.

A replay is answered only after the caller's authorization is checked again: a user who has
since lost access gets the refusal anyone else would, never the earlier answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.catalog.models import IdempotencyRecord
from vault.errors import BadRequest, Unprocessable
from vault.services.context import Ctx


def parse_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= 200 or not value.isascii() or not value.isprintable():
        raise BadRequest(
            "Idempotency-Key must be 1-200 printable ASCII characters", code="invalid_key"
        )
    return value


def fingerprint(ctx: Ctx, *parts: object) -> str:
    """HMAC of the request's meaning (JSON of ``parts``) under the vault's idempotency key."""
    message = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hmac.new(ctx.vault.idempotency_secret, message, hashlib.sha256).hexdigest()


def find(s: Session, ctx: Ctx, key: str | None) -> IdempotencyRecord | None:
    """The caller's earlier record under this key, if any (not yet compared)."""
    if key is None or ctx.principal.user_id is None:
        return None
    return s.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == ctx.principal.user_id, IdempotencyRecord.key == key
        )
    )


def check(rec: IdempotencyRecord, scope: str, fp: str) -> None:
    """Refuse a key reused for a different request (another kind or another body)."""
    same_scope = hmac.compare_digest(rec.scope, scope)
    same_fp = rec.fingerprint is not None and hmac.compare_digest(rec.fingerprint, fp)
    if not (same_scope and same_fp):
        raise Unprocessable(
            "this Idempotency-Key was used for a different request", code="idempotency_key_reused"
        )


def lookup(s: Session, ctx: Ctx, key: str | None, scope: str, fp: str) -> IdempotencyRecord | None:
    """The earlier result for this key and request, if any; the key on another request is 422."""
    rec = find(s, ctx, key)
    if rec is not None:
        check(rec, scope, fp)
    return rec


def remember(
    s: Session,
    ctx: Ctx,
    key: str | None,
    scope: str,
    fp: str,
    resource_id: str,
    version: int | None = None,
) -> None:
    if key is None or ctx.principal.user_id is None:
        return
    s.add(
        IdempotencyRecord(
            user_id=ctx.principal.user_id,
            key=key,
            scope=scope,
            fingerprint=fp,
            resource_id=resource_id,
            version=version,
            created_at=ctx.now(),
        )
    )
