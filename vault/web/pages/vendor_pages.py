"""Pages of the seed's workflows (issue 12): requesting a disclosure from a document page, a
disclosure's page (approve, reject, revoke), the supervisor's inbox, a case's vendor-contact
register, and the caller's notifications.

As everywhere in the interface, the services decide and the pages show: each post goes to
the service its API twin calls, and a refusal comes back as the same page with its reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from vault.api.deps import public_base
from vault.errors import KinkoError, NotFound
from vault.services import cases, contacts, disclosures, notifications
from vault.services.context import JsonBody
from vault.web.i18n import N_
from vault.web.pages.case_pages import _document_page as document_page_with
from vault.web.ui import MemberUi, Ui

router = APIRouter(prefix="/ui", include_in_schema=False)

# Refusals of these pages that the common table (labels.ERROR_TEXTS) does not name.
VENDOR_ERRORS = {
    "already_public": N_("The document is public already: no disclosure is needed."),
    "contact_prohibited": N_("Vendor contact is prohibited from the review request (審査依頼) on."),
    "own_request": N_("Nobody may approve their own request. Another supervisor must do it."),
    "supervisor_required": N_("Only a supervisor of the case may do this."),
    "already_decided": N_("This has been decided already."),
    "expired": N_("The request expired before it was approved."),
    "invalid_email": N_("Enter an e-mail address like name@example.jp."),
    "invalid_recipient": N_("Enter the recipient's name and organisation."),
    "invalid_reason": N_("Enter the reason for the disclosure."),
    "invalid_max_downloads": N_("Downloads must be 1 to 20."),
    "invalid_time": N_("Enter a valid date and time in the future."),
    "two_participants_required": N_(
        "A meeting with a vendor needs at least two of our participants, unless it is minor."
    ),
    "invalid_participants": N_("Choose participants among the members of the case."),
    "justification_required": N_("An urgent contact needs a justification."),
    "disclosure_required": N_(
        "Information given to a vendor needs an approved disclosure. Choose it below."
    ),
    "not_yet": N_("The contact has not happened yet: report on it afterwards."),
    "not_approved": N_("The urgent contact has not been approved yet."),
    "already_reported": N_("The contact has been reported on already."),
    "already_acknowledged": N_("This has been acknowledged already."),
    "reporter_only": N_("Only the person who reported the contact beforehand reports on it."),
    "invalid_vendor": N_("Enter the vendor."),
    "invalid_agenda": N_("Enter the agenda."),
    "invalid_summary": N_("Enter a summary."),
    "invalid_body": N_("Fill in every required field."),
}

CHANNELS = {
    "meeting": N_("Meeting"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "web": N_("Web meeting"),
}
CONTACT_STATES = {
    "pending_approval": N_("Waiting for approval (urgent)"),
    "planned": N_("Planned"),
    "reported": N_("Reported"),
}
DISCLOSURE_STATES = {
    "requested": N_("Waiting for approval"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "revoked": N_("Revoked"),
    "expired": N_("Expired"),
    "used_up": N_("Used up"),
    "closed": N_("Ended by the review request"),
}
NOTICE_KINDS = {
    "disclosure.requested": N_("Disclosure requested"),
    "disclosure.approved": N_("Disclosure approved"),
    "disclosure.rejected": N_("Disclosure rejected"),
    "disclosure.revoked": N_("Disclosure revoked"),
    "disclosure.downloaded": N_("Disclosed document downloaded"),
    "contact.planned": N_("Vendor contact planned"),
    "contact.urgent": N_("Urgent vendor contact"),
    "contact.reported": N_("Vendor contact reported"),
    "contact.overdue": N_("Contact report overdue"),
    "token.issued": N_("Token issued for you"),
}


def _error(ui: Ui, exc: KinkoError) -> str:
    known = VENDOR_ERRORS.get(exc.code)
    return ui._(known) if known is not None else ui.error_text(exc)


def _words(ui: Ui) -> dict[str, Any]:
    return {
        "channels": CHANNELS,
        "contact_states": CONTACT_STATES,
        "disclosure_states": DISCLOSURE_STATES,
        "notice_kinds": NOTICE_KINDS,
    }


# -- disclosures ------------------------------------------------------------


@router.post("/documents/{doc_id}/disclosures")
async def request_disclosure(ui: MemberUi, doc_id: str) -> Response:
    form = await ui.form()
    body: dict[str, Any] = {
        "recipient_name": form.get("recipient_name", "").strip(),
        "recipient_organization": form.get("recipient_organization", "").strip(),
        "recipient_email": form.get("recipient_email", "").strip(),
        "reason": form.get("reason", "").strip(),
    }
    raw = form.get("max_downloads", "").strip()
    if raw:
        body["max_downloads"] = int(raw) if raw.isascii() and raw.isdigit() else raw
    days = form.get("days", "").strip()
    if days.isascii() and days.isdigit() and 1 <= int(days) <= 14:
        body["expires_at"] = (ui.ctx.now() + timedelta(days=int(days))).isoformat()
    try:
        made = await ui.call(
            disclosures.request, ui.ctx, doc_id, JsonBody(body, None), public_base(ui.request)
        )
    except KinkoError as exc:
        if exc.status == 404:
            raise
        return await document_page_with(ui, doc_id, exc.status, {"disclose": _error(ui, exc)})
    return ui.redirect(f"/ui/disclosures/{made['id']}?new=1")


async def _disclosure_page(
    ui: Ui,
    disclosure_id: str,
    status: int = 200,
    error: str | None = None,
    link: str | None = None,
    flash: str | None = None,
) -> Response:
    item = await ui.call(lambda: disclosures.get(ui.ctx, disclosure_id, abilities=True))
    return await ui.page(
        "disclosure.html",
        status=status,
        nav="inbox",
        d=item,
        error=error,
        link=link,
        flash=flash,
        **_words(ui),
    )


@router.get("/disclosures/{disclosure_id}")
async def disclosure_page(ui: MemberUi, disclosure_id: str, new: str | None = None) -> Response:
    flash = ui._("The request was sent to the supervisors of the case.") if new else None
    return await _disclosure_page(ui, disclosure_id, flash=flash)


@router.post("/disclosures/{disclosure_id}/approve")
async def approve_disclosure(ui: MemberUi, disclosure_id: str) -> Response:
    await ui.form()
    try:
        done = await ui.call(disclosures.approve, ui.ctx, disclosure_id, public_base(ui.request))
    except KinkoError as exc:
        if exc.status == 404:
            raise
        return await _disclosure_page(ui, disclosure_id, exc.status, error=_error(ui, exc))
    # Answered with the page itself: the link exists only in this answer.
    return await _disclosure_page(ui, disclosure_id, link=done["link"])


@router.post("/disclosures/{disclosure_id}/{action}")
async def decide_disclosure(ui: MemberUi, disclosure_id: str, action: str) -> Response:
    form = await ui.form()
    try:
        if action == "reject":
            note = form.get("note", "").strip()
            await ui.call(
                disclosures.reject,
                ui.ctx,
                disclosure_id,
                JsonBody({"note": note} if note else {}, None),
                public_base(ui.request),
            )
        elif action == "revoke":
            await ui.call(disclosures.revoke, ui.ctx, disclosure_id, public_base(ui.request))
        else:
            raise NotFound("no such action", code="not_found")
    except KinkoError as exc:
        if exc.status == 404:
            raise
        return await _disclosure_page(ui, disclosure_id, exc.status, error=_error(ui, exc))
    return ui.redirect(f"/ui/disclosures/{disclosure_id}")


# -- the supervisor's inbox ------------------------------------------------------------


@router.get("/inbox")
async def inbox(ui: MemberUi) -> Response:
    pending = await ui.call(disclosures.pending_for, ui.ctx)
    try:
        waiting = await ui.call(lambda: contacts.list_contacts(ui.ctx, None, None, inbox=True))
    except KinkoError:
        waiting = {"contacts": []}
    return await ui.page(
        "inbox.html",
        nav="inbox",
        disclosures=pending,
        contacts=waiting["contacts"],
        **_words(ui),
    )


# -- the contact register of a case ------------------------------------------------------------


async def _register(
    ui: Ui,
    case_id: str,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    case = await ui.call(lambda: cases.get_case(ui.ctx, case_id, abilities=True))
    listed = await ui.call(contacts.list_contacts, ui.ctx, case_id, None)
    try:
        shared = await ui.call(disclosures.list_case, ui.ctx, case_id)
    except KinkoError:
        shared = {"disclosures": []}
    approved = [d for d in shared["disclosures"] if d["decided_at"] and d["status"] != "rejected"]
    return await ui.page(
        "contacts.html",
        status=status,
        nav="cases",
        case=case,
        contacts=listed["contacts"],
        disclosures=shared["disclosures"],
        approved=approved,
        errors=errors or {},
        form=form or {},
        **_words(ui),
    )


@router.get("/cases/{case_id}/contacts")
async def register(ui: MemberUi, case_id: str) -> Response:
    return await _register(ui, case_id)


@router.get("/cases/{case_id}/contacts.csv")
async def register_csv(ui: MemberUi, case_id: str) -> Response:
    listed = await ui.call(contacts.list_contacts, ui.ctx, case_id, None)
    return Response(
        content=contacts.contacts_csv(listed).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sesshoku-kiroku.csv"'},
    )


@router.post("/cases/{case_id}/contacts")
async def plan_contact(ui: MemberUi, case_id: str) -> Response:
    form = await ui.form()
    planned = form.get("planned_at", "").strip()
    body: dict[str, Any] = {
        "vendor": form.get("vendor", "").strip(),
        "channel": form.get("channel", ""),
        "planned_at": _local_to_utc(ui, planned),
        "participants": [p for p in form.get("participants", "").replace("、", ",").split(",")
                         if p.strip()],
        "agenda": form.get("agenda", "").strip(),
        "minor": bool(form.get("minor")),
        "urgent": bool(form.get("urgent")),
    }  # fmt: skip
    body["participants"] = [p.strip() for p in body["participants"]]
    if form.get("justification", "").strip():
        body["justification"] = form["justification"].strip()
    try:
        await ui.call(
            contacts.create, ui.ctx, case_id, JsonBody(body, None), public_base(ui.request)
        )
    except KinkoError as exc:
        if exc.status == 404:
            raise
        return await _register(ui, case_id, exc.status, {"plan": _error(ui, exc)}, form)
    return ui.redirect(f"/ui/cases/{case_id}/contacts")


def _local_to_utc(ui: Ui, value: str) -> str:
    """A ``datetime-local`` value (the office's time zone) as RFC 3339; anything else as is,
    for the service to refuse."""
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        return value
    if local.tzinfo is None:
        local = local.replace(tzinfo=ui.tz)
    return local.isoformat()


@router.post("/contacts/{contact_id}/{action}")
async def contact_step(ui: MemberUi, contact_id: str, action: str) -> Response:
    form = await ui.form()
    case_id = form.get("case_id", "")
    try:
        if action == "acknowledge":
            await ui.call(contacts.acknowledge, ui.ctx, contact_id)
        elif action == "approve":
            await ui.call(contacts.approve, ui.ctx, contact_id)
        elif action == "report":
            chosen = [k[len("disclosure_") :] for k in form if k.startswith("disclosure_")]
            body = {
                "summary": form.get("summary", "").strip(),
                "information_provided": bool(form.get("information_provided")),
                "disclosures": chosen,
            }
            await ui.call(
                contacts.report, ui.ctx, contact_id, JsonBody(body, None), public_base(ui.request)
            )
        else:
            raise NotFound("no such action", code="not_found")
    except KinkoError as exc:
        if exc.status == 404 or not case_id:
            raise
        return await _register(ui, case_id, exc.status, {contact_id: _error(ui, exc)})
    back = form.get("back", "")
    if back == "inbox":
        return ui.redirect("/ui/inbox")
    return ui.redirect(f"/ui/cases/{case_id}/contacts" if case_id else "/ui/inbox")


# -- notifications ------------------------------------------------------------


@router.get("/notifications")
async def notices(ui: MemberUi) -> Response:
    listed = await ui.call(notifications.list_notices, ui.ctx, ui.lang)
    return await ui.page(
        "notifications.html", nav="notifications", notices=listed["notifications"], **_words(ui)
    )


@router.post("/notifications/read")
async def mark_read(ui: MemberUi) -> Response:
    await ui.form()
    await ui.call(notifications.mark_read, ui.ctx, None)
    return ui.redirect("/ui/notifications")
