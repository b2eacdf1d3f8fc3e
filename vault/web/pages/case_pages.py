"""The case page (stage timeline, members, documents, upload) and the document page (versions,
new version, final version, download with a purpose).

Every decision is the services' (and through them the guard's): the pages show what the
services answer, offer the forms the guard says the caller may use (``may`` in the answers of
``get_case`` and ``document_metadata``), and hand every post to the service the API route of
the same action calls.  Uploads stream through the API's own upload path
(``vault.api.documents.run_upload``) and downloads answer with its own response builder
(``content_response``), so a page and its API twin behave alike, audit events included.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from fastapi.responses import Response

from vault.api.documents import content_response, run_upload
from vault.domain import CASE_ROLES, CLASSES, STAGES
from vault.errors import BadRequest, KinkoError
from vault.services import cases, documents
from vault.services.context import JsonBody
from vault.web.i18n import N_
from vault.web.ui import MemberUi, Ui
from vault.web.uploads import UploadForm, open_upload

router = APIRouter(prefix="/ui", include_in_schema=False)

# Refusals of these pages that the common table (labels.ERROR_TEXTS) does not name.
PAGE_ERRORS = {
    "invalid_time": N_("Enter a valid date and time in the future."),
    "transition_not_forward": N_(
        "The stage can only move forward from the latest (scheduled) stage."
    ),
    "transition_in_effect": N_("This stage change has already taken effect."),
    "transition_not_found": N_("The stage change was not found."),
    "invalid_stage": N_("Choose a stage."),
    "not_supervisor": N_("Only a supervisor of the case may do this."),
    "invalid_roles": N_("Choose at least one role."),
    "member_not_found": N_("This user is not a member of the case."),
    "write_not_permitted": N_("Your roles do not allow writing this document now."),
    "read_not_permitted": N_("Your roles do not allow reading this document now."),
    "content_not_permitted": N_("Administrators and auditors cannot read document content."),
    "version_not_found": N_("The version was not found."),
    "unknown_version": N_("The version was not found."),
    "invalid_version": N_("Choose a version."),
    "version_mismatch": N_("Someone added a version in the meantime. Reload the page."),
    "concurrent_write": N_("Someone added a version at the same moment. Try again."),
    "title_required": N_("Enter a title."),
    "invalid_title": N_("The title must be 1 to 255 characters without control characters."),
    "invalid_class": N_("Choose a class."),
    "invalid_content_type": N_("The file's type is not accepted."),
    "file_required": N_("Choose a file."),
    "invalid_form": N_("The form could not be read. Reload the page and try again."),
    "incomplete_upload": N_("The upload was interrupted. Try again."),
    "upload_stalled": N_("The upload stopped. Try again."),
    "purpose_invalid": N_("The purpose must be at most 500 characters on one line."),
}


def _error(ui: Ui, exc: KinkoError) -> str:
    known = PAGE_ERRORS.get(exc.code)
    return ui._(known) if known is not None else ui.error_text(exc)


def _utc(value: str | None, tz: ZoneInfo) -> str | None:
    """A ``datetime-local`` value (the office's time zone) as UTC RFC 3339; None when empty.

    Text that is no date is passed on as it is, so that the service refuses it (400
    ``invalid_time``) and records the refusal like any other.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        return text
    if local.tzinfo is None:
        local = local.replace(tzinfo=tz)
    return local.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- the case page ---------------------------------------------------------------------------


def _timeline(transitions: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The transitions with their state for display: ``past``, ``current`` or ``scheduled``."""
    rows = []
    current = None
    for i, t in enumerate(transitions):
        at = _instant(t["at"])
        scheduled = at is not None and at > now
        if not scheduled:
            current = i
        rows.append({**t, "state": "scheduled" if scheduled else "past"})
    if current is not None:
        rows[current]["state"] = "current"
    return rows


def _groups(listed: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The documents by class, in the order of SPEC §3."""
    by_class: dict[str, list[dict[str, Any]]] = {}
    for doc in listed:
        by_class.setdefault(doc["class"], []).append(doc)
    return [(cls, by_class[cls]) for cls in CLASSES if cls in by_class]


async def _case_page(
    ui: Ui,
    case_id: str,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    case = await ui.call(lambda: cases.get_case(ui.ctx, case_id, abilities=True))
    listed = await ui.call(documents.list_case_documents, ui.ctx, case_id)
    timeline = _timeline(case["transitions"], ui.ctx.now())
    latest = case["transitions"][-1]["stage"] if case["transitions"] else case["stage"]
    next_stages = [s for s in STAGES if STAGES.index(s) > STAGES.index(latest)]
    return await ui.page(
        "case.html",
        status=status,
        nav="cases",
        case=case,
        timeline=timeline,
        next_stages=next_stages,
        groups=_groups(listed["documents"]),
        case_roles=CASE_ROLES,
        errors=errors or {},
        form=form or {},
    )


@router.get("/cases/{case_id}")
async def case_page(ui: MemberUi, case_id: str) -> Response:
    return await _case_page(ui, case_id)


async def _case_action(ui: Ui, case_id: str, section: str, fn: Any, *args: Any) -> Response:
    """Run a case service call; on a refusal show the case page again with the error."""
    try:
        await ui.call(fn, ui.ctx, case_id, *args)
    except KinkoError as exc:
        return await _case_page(ui, case_id, exc.status, {section: _error(ui, exc)})
    return ui.redirect(f"/ui/cases/{case_id}")


@router.post("/cases/{case_id}/transition")
async def schedule_transition(ui: MemberUi, case_id: str) -> Response:
    form = await ui.form()
    body: dict[str, Any] = {"stage": form.get("stage", "")}
    at = _utc(form.get("at"), ui.tz)
    if at is not None:
        body["at"] = at
    return await _case_action(ui, case_id, "stage", cases.transition, JsonBody(body, None))


@router.post("/cases/{case_id}/transitions/{transition_id}/cancel")
async def cancel_transition(ui: MemberUi, case_id: str, transition_id: str) -> Response:
    await ui.form()
    return await _case_action(ui, case_id, "stage", cases.cancel_transition, transition_id)


@router.post("/cases/{case_id}/members")
async def set_member(ui: MemberUi, case_id: str) -> Response:
    form = await ui.form()
    name = form.get("name", "").strip()
    roles = [r for r in CASE_ROLES if form.get(f"role_{r}")]
    body = JsonBody({"roles": roles, "expires_at": _utc(form.get("expires_at"), ui.tz)}, None)
    return await _case_action(ui, case_id, "members", cases.set_member, name, body)


@router.post("/cases/{case_id}/members/remove")
async def remove_member(ui: MemberUi, case_id: str) -> Response:
    form = await ui.form()
    name = form.get("name", "")
    return await _case_action(ui, case_id, "members", cases.remove_member, name)


async def _upload_form(ui: Ui, action: str, **subject: str) -> UploadForm:
    """The upload's fields, its CSRF token checked before any byte of the file is used.

    A body that is not a readable upload form is refused, and recorded under the upload's
    own action, as the API records a malformed upload.
    """
    try:
        upload = await open_upload(ui.request, ui.vault.settings.upload_idle_timeout_seconds)
    except KinkoError as exc:
        await ui.refuse(action, exc, **subject)
    await ui.check_csrf(upload.fields.get("csrf"))
    return upload


def _file_of(upload: UploadForm) -> Any:
    if not upload.has_file:
        raise BadRequest("choose a file to upload", code="file_required")
    return upload.file_chunks()


@router.post("/cases/{case_id}/documents")
async def upload_document(ui: MemberUi, case_id: str) -> Response:
    upload = await _upload_form(ui, "document.create", case_id=case_id[:64])
    title = upload.fields.get("title", "").strip() or (upload.filename or "")
    target = documents.NewDocument(
        case_id,
        upload.fields.get("class") or None,
        # The service reads titles as the API's X-Kinko-Title header: percent-encoded once.
        quote(title, safe="") if title else None,
        upload.content_type,
    )
    try:
        created = await run_upload(ui.request, ui.ctx, target, _file_of(upload))
    except KinkoError as exc:
        form = {"title": upload.fields.get("title", ""), "class": upload.fields.get("class", "")}
        return await _case_page(ui, case_id, exc.status, {"upload": _error(ui, exc)}, form)
    return ui.redirect(f"/ui/documents/{created['id']}")


# -- the document page -----------------------------------------------------------------------


async def _document_page(
    ui: Ui, doc_id: str, status: int = 200, errors: dict[str, str] | None = None
) -> Response:
    doc = await ui.call(lambda: documents.document_metadata(ui.ctx, doc_id, abilities=True))
    return await ui.page("document.html", status=status, nav="cases", doc=doc, errors=errors or {})


@router.get("/documents/{doc_id}")
async def document_page(ui: MemberUi, doc_id: str) -> Response:
    return await _document_page(ui, doc_id)


@router.post("/documents/{doc_id}/versions")
async def upload_version(ui: MemberUi, doc_id: str) -> Response:
    upload = await _upload_form(ui, "document.write", document_id=doc_id[:64])
    # The version the form was shown with: a version written since then is not overwritten
    # unseen (412, as for the API's If-Match).
    base = upload.fields.get("if_match") or None
    target = documents.NewVersion(doc_id, base, upload.content_type)
    try:
        await run_upload(ui.request, ui.ctx, target, _file_of(upload))
    except KinkoError as exc:
        return await _document_page(ui, doc_id, exc.status, {"version": _error(ui, exc)})
    return ui.redirect(f"/ui/documents/{doc_id}")


@router.post("/documents/{doc_id}/final")
async def mark_final(ui: MemberUi, doc_id: str) -> Response:
    form = await ui.form()
    raw = form.get("version", "").strip()
    # A form sends text; the service's schema takes a JSON number, and refuses (and records)
    # anything else.
    body = JsonBody({"version": int(raw) if raw.isascii() and raw.isdigit() else raw}, None)
    try:
        await ui.call(documents.finalize, ui.ctx, doc_id, body)
    except KinkoError as exc:
        return await _document_page(ui, doc_id, exc.status, {"final": _error(ui, exc)})
    return ui.redirect(f"/ui/documents/{doc_id}")


async def _download_page(
    ui: Ui, doc_id: str, version: str | None, status: int = 200, error: str | None = None
) -> Response:
    try:
        doc = await ui.call(documents.document_metadata, ui.ctx, doc_id)
    except KinkoError:
        if error is None:
            raise
        doc = None  # the refusal of the download itself is what the reader needs to see
    return await ui.page(
        "download.html",
        status=status,
        nav="cases",
        doc=doc,
        doc_id=doc_id,
        version=version or "",
        error=error,
    )


@router.get("/documents/{doc_id}/download")
async def download_form(ui: MemberUi, doc_id: str, version: str | None = None) -> Response:
    return await _download_page(ui, doc_id, version)


@router.post("/documents/{doc_id}/download")
async def download(ui: MemberUi, doc_id: str) -> Response:
    form = await ui.form()
    version = form.get("version") or None
    purpose = form.get("purpose", "")
    # The service reads the purpose as the API's X-Access-Purpose header: percent-encoded once.
    raw_purpose = quote(purpose, safe="") if purpose else None
    try:
        opened = await ui.call(documents.read, ui.ctx, doc_id, version, raw_purpose)
    except KinkoError as exc:
        return await _download_page(ui, doc_id, version, exc.status, _error(ui, exc))
    return content_response(opened)
