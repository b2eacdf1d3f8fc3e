"""Disclosure, vendor-contact and notification routes (issue 12): thin, services do the work."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from vault.api.deps import Body, UserCtx, body_schema, public_base
from vault.api.openapi import answers
from vault.api.reviews import wants_csv
from vault.api.schemas import (
    ContactList,
    ContactOut,
    DisclosureApproved,
    DisclosureList,
    DisclosureOut,
    NoticeList,
    NoticesMarked,
)
from vault.services import contacts, disclosures, notifications
from vault.services.schemas import ContactCreate, ContactReport, DecisionNote, DisclosureCreate
from vault.web.i18n import negotiate

router = APIRouter(prefix="/api/v1")

_D: list[str | Enum] = ["disclosures"]
_C: list[str | Enum] = ["contacts"]
_U: list[str | Enum] = ["users"]


@router.post(
    "/documents/{doc_id}/disclosures",
    status_code=201,
    tags=_D,
    openapi_extra=body_schema(DisclosureCreate),
    **answers(DisclosureOut, 400, 403, 404, 409, 410, status=201),
)
def request_disclosure(ctx: UserCtx, request: Request, doc_id: str, body: Body) -> Response:
    out = disclosures.request(ctx, doc_id, body, public_base(request))
    return JSONResponse(out, status_code=201)


@router.get("/disclosures/{disclosure_id}", tags=_D, **answers(DisclosureOut, 403, 404, 410))
def get_disclosure(ctx: UserCtx, disclosure_id: str) -> dict[str, Any]:
    return disclosures.get(ctx, disclosure_id)


@router.post(
    "/disclosures/{disclosure_id}/approve",
    tags=_D,
    **answers(DisclosureApproved, 403, 404, 409, 410),
)
def approve_disclosure(ctx: UserCtx, request: Request, disclosure_id: str) -> dict[str, Any]:
    return disclosures.approve(ctx, disclosure_id, public_base(request))


@router.post(
    "/disclosures/{disclosure_id}/reject",
    tags=_D,
    openapi_extra=body_schema(DecisionNote),
    **answers(DisclosureOut, 400, 403, 404, 409, 410),
)
def reject_disclosure(
    ctx: UserCtx, request: Request, disclosure_id: str, body: Body
) -> dict[str, Any]:
    return disclosures.reject(ctx, disclosure_id, body, public_base(request))


@router.post(
    "/disclosures/{disclosure_id}/revoke", tags=_D, **answers(DisclosureOut, 403, 404, 409, 410)
)
def revoke_disclosure(ctx: UserCtx, request: Request, disclosure_id: str) -> dict[str, Any]:
    return disclosures.revoke(ctx, disclosure_id, public_base(request))


@router.get("/cases/{case_id}/disclosures", tags=_D, **answers(DisclosureList, 403, 404, 410))
def case_disclosures(ctx: UserCtx, case_id: str) -> dict[str, Any]:
    return disclosures.list_case(ctx, case_id)


@router.post(
    "/cases/{case_id}/contacts",
    status_code=201,
    tags=_C,
    openapi_extra=body_schema(ContactCreate),
    **answers(ContactOut, 400, 403, 404, 409, 410, status=201),
)
def create_contact(ctx: UserCtx, request: Request, case_id: str, body: Body) -> Response:
    out = contacts.create(ctx, case_id, body, public_base(request))
    return JSONResponse(out, status_code=201)


@router.get(
    "/contacts",
    tags=_C,
    **answers(
        ContactList,
        400,
        403,
        404,
        410,
        extra={
            200: {
                "model": ContactList,
                "description": "JSON, or CSV (UTF-8 with a BOM, with a header row) for "
                "`Accept: text/csv` or `format=csv`.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    ),
)
def list_contacts(
    ctx: UserCtx,
    request: Request,
    case_id: str | None = None,
    status: str | None = None,
    fmt: Annotated[str | None, Query(alias="format")] = None,
) -> Response:
    listing = contacts.list_contacts(ctx, case_id, status)
    if fmt == "csv" or (fmt is None and wants_csv(request.headers.get("accept"))):
        return Response(
            content=contacts.contacts_csv(listing).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="kinko-contacts.csv"'},
        )
    return JSONResponse(listing)


@router.get("/contacts/{contact_id}", tags=_C, **answers(ContactOut, 403, 404, 410))
def get_contact(ctx: UserCtx, contact_id: str) -> dict[str, Any]:
    return contacts.get(ctx, contact_id)


@router.post("/contacts/{contact_id}/approve", tags=_C, **answers(ContactOut, 403, 404, 409, 410))
def approve_contact(ctx: UserCtx, contact_id: str) -> dict[str, Any]:
    return contacts.approve(ctx, contact_id)


@router.post(
    "/contacts/{contact_id}/acknowledge", tags=_C, **answers(ContactOut, 403, 404, 409, 410)
)
def acknowledge_contact(ctx: UserCtx, contact_id: str) -> dict[str, Any]:
    return contacts.acknowledge(ctx, contact_id)


@router.post(
    "/contacts/{contact_id}/report",
    tags=_C,
    openapi_extra=body_schema(ContactReport),
    **answers(ContactOut, 400, 403, 404, 409, 410),
)
def report_contact(ctx: UserCtx, request: Request, contact_id: str, body: Body) -> dict[str, Any]:
    return contacts.report(ctx, contact_id, body, public_base(request))


@router.get("/notifications", tags=_U, **answers(NoticeList, 400))
def list_notifications(ctx: UserCtx, request: Request, unread: str | None = None) -> dict[str, Any]:
    lang = negotiate(None, request.headers.get("accept-language"))
    return notifications.list_notices(ctx, lang, unread_only=unread in ("1", "true"))


@router.post("/notifications/read", tags=_U, **answers(NoticesMarked, 400))
def mark_notifications_read(ctx: UserCtx, body: Body) -> dict[str, Any]:
    data = body.data or {}
    ids = data.get("ids")
    return notifications.mark_read(ctx, ids if ids is not None else None)
