"""Audit routes: event queries, the latest signed checkpoint, its verifier key, and proofs."""

from __future__ import annotations

import base64
import re
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from vault.api.deps import UserCtx
from vault.api.openapi import answers
from vault.api.schemas import AuditEvents, ConsistencyProof, InclusionProof
from vault.errors import BadRequest, NotFound
from vault.services.context import Ctx

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

_INT = re.compile(r"-?[0-9]{1,18}")

TEXT: dict[int | str, dict[str, Any]] = {
    200: {"description": "Plain text.", "content": {"text/plain": {"schema": {"type": "string"}}}}
}


def _require_auditor(ctx: Ctx) -> None:
    ctx.vault.guard.require_audit_reader(ctx.principal)


def _int(raw: str | None, name: str, default: int | None = None) -> int:
    if raw is None:
        if default is None:
            raise BadRequest(f"{name} is required", code=f"invalid_{name}")
        return default
    if not _INT.fullmatch(raw):
        raise BadRequest(f"{name} must be an integer", code=f"invalid_{name}")
    return int(raw)


@router.get("/events", **answers(AuditEvents, 400, 403))
def audit_events(
    ctx: UserCtx,
    actor: str | None = None,
    case_id: str | None = None,
    document_id: str | None = None,
    action: str | None = None,
    decision: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    with ctx.scope("audit.query", case_id=case_id, document_id=document_id) as ev:
        _require_auditor(ctx)
        events, next_cursor = ctx.vault.audit.query(
            actor=actor,
            case_id=case_id,
            document_id=document_id,
            action=action,
            decision=decision,
            since=since,
            until=until,
            limit=_int(limit, "limit", 100),
            cursor=cursor,
        )
        # The query's own event is written before the answer leaves, like every other.
        ev.allow()
        return {"events": events, "next_cursor": next_cursor}


@router.get("/checkpoint", response_class=PlainTextResponse, **answers(None, 403, 404, extra=TEXT))
def checkpoint(ctx: UserCtx) -> PlainTextResponse:
    with ctx.scope("audit.checkpoint.read"):
        _require_auditor(ctx)
        note = ctx.vault.audit.latest_checkpoint()
        if note is None:
            raise NotFound("no checkpoint has been cut yet", code="no_checkpoint")
    return PlainTextResponse(note)


@router.get("/public-key", response_class=PlainTextResponse, **answers(None, 403, 404, extra=TEXT))
def public_key(ctx: UserCtx) -> PlainTextResponse:
    with ctx.scope("audit.public_key.read"):
        _require_auditor(ctx)
        signer = ctx.vault.audit.signer
        if signer is None:
            raise NotFound("no checkpoint signing key", code="no_signing_key")
    return PlainTextResponse(signer.verifier_key() + "\n")


@router.get("/proofs/inclusion", **answers(InclusionProof, 400, 403))
def inclusion(ctx: UserCtx, seq: str | None = None, size: str | None = None) -> dict[str, Any]:
    with ctx.scope("audit.proof"):
        _require_auditor(ctx)
        index, tree_size = _int(seq, "seq"), _int(size, "size")
        hashes = ctx.vault.audit.inclusion_proof(index, tree_size)
        return {
            "leaf_index": index,
            "tree_size": tree_size,
            "hashes": [base64.b64encode(h).decode() for h in hashes],
        }


@router.get("/proofs/consistency", **answers(ConsistencyProof, 400, 403))
def consistency(ctx: UserCtx, old: str | None = None, new: str | None = None) -> dict[str, Any]:
    with ctx.scope("audit.proof"):
        _require_auditor(ctx)
        old_size, new_size = _int(old, "old"), _int(new, "new")
        hashes = ctx.vault.audit.consistency_proof(old_size, new_size)
        return {
            "old_size": old_size,
            "new_size": new_size,
            "hashes": [base64.b64encode(h).decode() for h in hashes],
        }
