from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from vault.api.deps import UserCtx
from vault.errors import BadRequest, Forbidden

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("/events")
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
        if "auditor" not in ctx.principal.roles:
            raise Forbidden("only auditors may query the audit log", code="auditor_required")
        if limit is None:
            n = 100
        elif limit.lstrip("-").isdigit() and len(limit) < 10:
            n = int(limit)
        else:
            raise BadRequest("limit must be an integer", code="invalid_limit")
        events, next_cursor = ctx.vault.audit.query(
            actor=actor,
            case_id=case_id,
            document_id=document_id,
            action=action,
            decision=decision,
            since=since,
            until=until,
            limit=n,
            cursor=cursor,
        )
        # The query's own event is written before the answer leaves, like every other.
        ev.allow()
        return {"events": events, "next_cursor": next_cursor}
