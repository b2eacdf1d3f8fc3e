"""Audit routes: event queries, the latest signed checkpoint, its verifier key, and proofs."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from vault.api.deps import UserCtx
from vault.api.openapi import answers
from vault.api.schemas import AuditEvents, ConsistencyProof, InclusionProof
from vault.services import audit_queries as service
from vault.services.audit_queries import EventFilters, parse_int
from vault.services.context import Ctx

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

TEXT: dict[int | str, dict[str, Any]] = {
    200: {"description": "Plain text.", "content": {"text/plain": {"schema": {"type": "string"}}}}
}


def _require_auditor(ctx: Ctx) -> None:
    ctx.vault.guard.require_audit_reader(ctx.principal)


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
    filters = EventFilters(
        actor=actor,
        case_id=case_id,
        document_id=document_id,
        action=action,
        decision=decision,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return service.query_events(ctx, filters)


@router.get("/checkpoint", response_class=PlainTextResponse, **answers(None, 403, 404, extra=TEXT))
def checkpoint(ctx: UserCtx) -> PlainTextResponse:
    return PlainTextResponse(service.latest_checkpoint(ctx))


@router.get("/public-key", response_class=PlainTextResponse, **answers(None, 403, 404, extra=TEXT))
def public_key(ctx: UserCtx) -> PlainTextResponse:
    return PlainTextResponse(service.verifier_key(ctx))


@router.get("/proofs/inclusion", **answers(InclusionProof, 400, 403))
def inclusion(ctx: UserCtx, seq: str | None = None, size: str | None = None) -> dict[str, Any]:
    with ctx.scope("audit.proof"):
        _require_auditor(ctx)
        index, tree_size = parse_int(seq, "seq"), parse_int(size, "size")
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
        old_size, new_size = parse_int(old, "old"), parse_int(new, "new")
        hashes = ctx.vault.audit.consistency_proof(old_size, new_size)
        return {
            "old_size": old_size,
            "new_size": new_size,
            "hashes": [base64.b64encode(h).decode() for h in hashes],
        }
