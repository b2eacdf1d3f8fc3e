"""Case routes: cases, members and stage transitions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from vault.api.deps import Body, IdemCtx, UserCtx, body_schema
from vault.api.openapi import answers
from vault.api.schemas import CaseDetail, CaseList, CaseSummary, MemberItem, TransitionCreated
from vault.services import cases
from vault.services.schemas import CaseCreate, MemberSet, TransitionCreate

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])


@router.post(
    "",
    status_code=201,
    openapi_extra=body_schema(CaseCreate),
    # 404: a replayed Idempotency-Key of a case the caller has since left.
    **answers(CaseSummary, 400, 403, 404, 409, 422, status=201),
)
def create_case(ctx: IdemCtx, body: Body) -> dict[str, Any]:
    return cases.create_case(ctx, body)


@router.get("", **answers(CaseList))
def list_cases(ctx: UserCtx) -> dict[str, Any]:
    return cases.list_cases(ctx)


@router.get("/{case_id}", **answers(CaseDetail, 404))
def get_case(ctx: UserCtx, case_id: str) -> dict[str, Any]:
    return cases.get_case(ctx, case_id)


@router.put(
    "/{case_id}/members/{name}",
    openapi_extra=body_schema(MemberSet),
    **answers(MemberItem, 400, 403, 404),
)
def set_member(ctx: UserCtx, case_id: str, name: str, body: Body) -> dict[str, Any]:
    return cases.set_member(ctx, case_id, name, body)


@router.delete("/{case_id}/members/{name}", status_code=204, **answers(None, 403, 404))
def remove_member(ctx: UserCtx, case_id: str, name: str) -> Response:
    cases.remove_member(ctx, case_id, name)
    return Response(status_code=204)


@router.post(
    "/{case_id}/transitions",
    status_code=201,
    openapi_extra=body_schema(TransitionCreate),
    **answers(TransitionCreated, 400, 403, 404, 409, 422, status=201),
)
def transition(ctx: IdemCtx, case_id: str, body: Body) -> dict[str, Any]:
    return cases.transition(ctx, case_id, body)


@router.delete(
    "/{case_id}/transitions/{transition_id}", status_code=204, **answers(None, 403, 404, 409)
)
def cancel_transition(ctx: UserCtx, case_id: str, transition_id: str) -> Response:
    cases.cancel_transition(ctx, case_id, transition_id)
    return Response(status_code=204)
