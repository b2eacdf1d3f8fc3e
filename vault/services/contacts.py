"""The vendor-contact register (事業者との接触記録, 実施要領 第4).

A drafter or supervisor reports a contact before it happens (事前報告); a supervisor other
than the reporter acknowledges it; after it the reporter reports what happened (事後報告).
From the review request (審査依頼) on, contact is prohibited: a contact is then accepted
only as urgent, with a justification, and waits for a supervisor's approval.  A report that
says information was given needs an approved disclosure to point at.

The vendor, agenda, justification and summary are sealed with the case key; the text is
read as class ``contact_record`` allows (and by auditors), and every access is an event.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.audit.log import parse_time
from vault.audit.records import build_record, system_info
from vault.authz import CaseView
from vault.catalog.models import Case, Contact, Disclosure, Membership, User
from vault.catalog.queries import active_membership, user_names
from vault.catalog.types import utcnow
from vault.core import Vault
from vault.errors import AuditUnavailable, BadRequest, Conflict, Forbidden, NotFound
from vault.services.context import Ctx, JsonBody, iso, view_of, visible_case
from vault.services.notifications import Notice, approvers, local_time, notify
from vault.services.schemas import ContactCreate, ContactReport

DETAILS_LABEL = "contact-details"
REPORT_LABEL = "contact-report"
OVERDUE_AFTER = timedelta(days=2)
STATUSES = ("pending_approval", "planned", "reported")
CHANNEL_NAMES = {
    "meeting": ("面談", "meeting"),
    "phone": ("電話", "phone"),
    "email": ("電子メール", "e-mail"),
    "web": ("Web 会議", "web meeting"),
}

_NOT_FOUND = NotFound("contact not found", code="contact_not_found")


def overdue(c: Contact, now: datetime) -> bool:
    return c.status == "planned" and now > c.planned_at + OVERDUE_AFTER


def _details(vault: Vault, key: bytes, c: Contact) -> dict[str, Any]:
    return vault.keys.open_record(key, DETAILS_LABEL, c.id, c.details_sealed)


def _out(
    vault: Vault, s: Session, c: Contact, key: bytes, now: datetime, *, text: bool = True
) -> dict[str, Any]:
    """One contact; without ``text`` (auditors) the sealed fields stay sealed and are null."""
    details: dict[str, Any] = _details(vault, key, c) if text else {}
    report: dict[str, Any] = (
        vault.keys.open_record(key, REPORT_LABEL, c.id, c.report_sealed)
        if text and c.report_sealed is not None
        else {}
    )
    ids = {
        i
        for i in (
            c.reported_by,
            c.approved_by,
            c.acknowledged_by,
            c.report_acknowledged_by,
            *c.participant_ids,
        )
        if i
    }
    names = user_names(s, ids)
    return {
        "id": c.id,
        "case_id": c.case_id,
        "status": c.status,
        "overdue": overdue(c, now),
        "text_visible": text,
        "vendor": details.get("vendor"),
        "channel": c.channel,
        "planned_at": iso(c.planned_at),
        "participants": [names.get(p, "-") for p in c.participant_ids],
        "agenda": details.get("agenda"),
        "minor": c.minor,
        "urgent": c.urgent,
        "justification": details.get("justification"),
        "reported_by": names.get(c.reported_by),
        "created_at": iso(c.created_at),
        "approved_by": names.get(c.approved_by) if c.approved_by else None,
        "approved_at": iso(c.approved_at),
        "acknowledged_by": names.get(c.acknowledged_by) if c.acknowledged_by else None,
        "acknowledged_at": iso(c.acknowledged_at),
        "reported_at": iso(c.reported_at),
        "summary": report.get("summary"),
        "information_provided": c.information_provided,
        "disclosures": [d for d in (c.disclosure_ids or "").split(",") if d],
        "report_acknowledged_by": (
            names.get(c.report_acknowledged_by) if c.report_acknowledged_by else None
        ),
        "report_acknowledged_at": iso(c.report_acknowledged_at),
    }


def _display(user: User | None) -> str:
    return "-" if user is None else (user.display_name or user.name)


def _notice(
    vault: Vault,
    kind: str,
    case: Case,
    key: bytes,
    c: Contact,
    details: dict[str, Any],
    **more: Any,
) -> Notice:
    ja_channel, en_channel = CHANNEL_NAMES[c.channel]
    return Notice(
        kind=kind,
        case=case,
        case_key=key,
        subject_id=c.id,
        fields={
            "vendor": details["vendor"],
            "agenda": details["agenda"],
            "justification": details.get("justification") or "-",
            "channel": ja_channel,
            "channel_en": en_channel,
            "planned_at": local_time(vault, c.planned_at),
            **more,
        },
        path=f"/ui/cases/{case.id}/contacts",
    )


def _participants(s: Session, case_id: str, names: list[str], now: datetime) -> list[int]:
    if len(names) > 50 or len(set(names)) != len(names):
        raise BadRequest("participants must be distinct user names", code="invalid_participants")
    if not names:
        return []
    rows = dict(
        s.execute(
            select(User.name, User.id)
            .join(Membership, Membership.user_id == User.id)
            .where(
                User.name.in_(names),
                Membership.case_id == case_id,
                active_membership(now),
                User.disabled.is_(False),
            )
        ).all()
    )
    missing = [n for n in names if n not in rows]
    if missing:
        raise BadRequest(
            f"participants must be members of the case: {', '.join(missing)}",
            code="invalid_participants",
        )
    return [int(rows[n]) for n in names]


def create(ctx: Ctx, case_id: str, body: JsonBody, link_base: str) -> dict[str, Any]:
    vault = ctx.vault
    with (
        ctx.scope("contact.create", case_id=case_id, cls="contact_record") as ev,
        vault.write_session() as s,
    ):
        now = ctx.now()
        case, view = visible_case(ctx, s, case_id)
        vault.guard.require_contact_reporter(view)
        req = body.parse(ContactCreate)
        if not req.vendor.strip() or not req.agenda.strip():
            raise BadRequest("vendor and agenda must not be blank", code="invalid_body")
        planned = parse_time(req.planned_at)
        people = _participants(s, case.id, req.participants, now)
        if req.channel == "meeting" and not req.minor and len(people) < 2:
            raise BadRequest(
                "a meeting with a vendor needs at least two of our participants "
                "(unless it is minor, such as receiving an estimate)",
                code="two_participants_required",
            )
        if not people:
            raise BadRequest("name at least one participant", code="invalid_participants")
        open_now = vault.guard.vendor_contact_open(view.stage)
        justification = (req.justification or "").strip()
        if not open_now:
            if not req.urgent:
                vault.guard.require_vendor_contact_open(view.stage)
            if not justification:
                raise BadRequest(
                    "an urgent contact needs a justification", code="justification_required"
                )
        c = Contact(
            id=uuid.uuid4().hex,
            case_id=case.id,
            reported_by=ctx.principal.user_id,
            reported_via=ctx.principal.token_issuer,
            created_at=now,
            channel=req.channel,
            planned_at=planned,
            participants=",".join(str(p) for p in people),
            minor=req.minor,
            urgent=req.urgent,
            status="planned" if open_now else "pending_approval",
        )
        details: dict[str, Any] = {"vendor": req.vendor.strip(), "agenda": req.agenda.strip()}
        if justification:
            details["justification"] = justification
        key = vault.keys.case_key(case.id, case.wrapped_key)
        c.details_sealed = vault.keys.seal_record(key, DETAILS_LABEL, c.id, details)
        s.add(c)
        me = s.get(User, ctx.principal.user_id)
        kind = "contact.planned" if open_now else "contact.urgent"
        notify(
            s,
            vault,
            _notice(vault, kind, case, key, c, details, actor=_display(me)),
            [u for u in approvers(s, vault, case.id, now) if u.id != ctx.principal.user_id],
            now,
            link_base,
        )
        ev.set(target=f"contact:{c.id}")
        ev.allow(f"{c.status} channel={c.channel}")
        s.commit()
        return _out(vault, s, c, key, now)


def _load(ctx: Ctx, s: Session, ev: Any, contact_id: str) -> tuple[Contact, Case, Any, bytes]:
    c = s.get(Contact, contact_id) if len(contact_id) <= 32 else None
    view = view_of(ctx, s, c.case_id if c is not None else contact_id[:32])
    if c is None or not view.visible:
        raise _NOT_FOUND
    ev.set(case_id=c.case_id, target=f"contact:{c.id}")
    case = s.get(Case, c.case_id)
    assert case is not None
    return c, case, view, ctx.vault.keys.case_key(case.id, case.wrapped_key)


def _supervisor_step(ctx: Ctx, contact_id: str, action: str) -> dict[str, Any]:
    vault = ctx.vault
    with (
        ctx.scope(f"contact.{action}", cls="contact_record") as ev,
        vault.write_session() as s,
    ):
        now = ctx.now()
        c, _case, view, key = _load(ctx, s, ev, contact_id)
        reporter = s.get(User, c.reported_by)
        vault.guard.require_approver(
            ctx.principal,
            view,
            "@contacts",
            reporter.name if reporter else None,
            c.reported_via,
            missing=_NOT_FOUND,
        )
        if action == "approve":
            if c.status != "pending_approval":
                raise Conflict("only an urgent contact waits for approval", code="not_pending")
            c.status = "planned"
            c.approved_by = ctx.principal.user_id
            c.approved_at = now
            ev.allow("approved")
        else:
            if c.status == "pending_approval":
                raise Conflict("approve the urgent contact first", code="not_approved")
            if c.status == "planned":
                if c.acknowledged_at is not None:
                    raise Conflict("already acknowledged", code="already_acknowledged")
                c.acknowledged_by = ctx.principal.user_id
                c.acknowledged_at = now
                ev.allow("prior_report")
            else:
                if c.report_acknowledged_at is not None:
                    raise Conflict("already acknowledged", code="already_acknowledged")
                c.report_acknowledged_by = ctx.principal.user_id
                c.report_acknowledged_at = now
                ev.allow("post_report")
        s.commit()
        return _out(vault, s, c, key, now)


def approve(ctx: Ctx, contact_id: str) -> dict[str, Any]:
    return _supervisor_step(ctx, contact_id, "approve")


def acknowledge(ctx: Ctx, contact_id: str) -> dict[str, Any]:
    return _supervisor_step(ctx, contact_id, "acknowledge")


def report(ctx: Ctx, contact_id: str, body: JsonBody, link_base: str) -> dict[str, Any]:
    vault = ctx.vault
    with (
        ctx.scope("contact.report", cls="contact_record") as ev,
        vault.write_session() as s,
    ):
        now = ctx.now()
        c, case, _view, key = _load(ctx, s, ev, contact_id)
        if c.reported_by != ctx.principal.user_id:
            raise Forbidden(
                "the contact is reported on by whoever reported it beforehand",
                code="reporter_only",
            )
        if c.status == "pending_approval":
            raise Conflict("the urgent contact was not approved", code="not_approved")
        if c.status == "reported":
            raise Conflict("the contact was reported on already", code="already_reported")
        if now < c.planned_at:
            raise Conflict("the contact has not happened yet", code="not_yet")
        req = body.parse(ContactReport)
        if not req.summary.strip():
            raise BadRequest("summary must not be blank", code="invalid_summary")
        if len(req.disclosures) > 20:
            raise BadRequest("at most 20 disclosures", code="invalid_disclosures")
        approved = []
        for d_id in req.disclosures:
            d = s.get(Disclosure, d_id) if len(d_id) <= 32 else None
            if d is None or d.case_id != c.case_id or d.decided_at is None:
                raise Conflict(
                    f"disclosure {d_id[:32]} is not an approved disclosure of this case",
                    code="disclosure_required",
                )
            if d.status not in ("approved", "revoked") or d.token_hash is None:
                raise Conflict(
                    f"disclosure {d_id[:32]} was not approved", code="disclosure_required"
                )
            approved.append(d.id)
        if req.information_provided and not approved:
            raise Conflict(
                "information given to a vendor needs an approved disclosure (情報提供には"
                "上長の許可が必要です)",
                code="disclosure_required",
            )
        c.status = "reported"
        c.reported_at = now
        c.information_provided = req.information_provided
        c.disclosure_ids = ",".join(approved) or None
        c.report_sealed = vault.keys.seal_record(
            key, REPORT_LABEL, c.id, {"summary": req.summary.strip()}
        )
        details = _details(vault, key, c)
        me = s.get(User, ctx.principal.user_id)
        notify(
            s,
            vault,
            _notice(
                vault,
                "contact.reported",
                case,
                key,
                c,
                details,
                actor=_display(me),
                summary=req.summary.strip(),
                provided="あり" if req.information_provided else "なし",
                provided_en="yes" if req.information_provided else "no",
            ),
            [u for u in approvers(s, vault, case.id, now) if u.id != ctx.principal.user_id],
            now,
            link_base,
        )
        ev.allow(f"reported information_provided={str(req.information_provided).lower()}")
        s.commit()
        return _out(vault, s, c, key, now)


def get(ctx: Ctx, contact_id: str) -> dict[str, Any]:
    vault = ctx.vault
    with (
        ctx.scope("contact.read", cls="contact_record") as ev,
        vault.read_session() as s,
    ):
        c, _case, view, key = _load(ctx, s, ev, contact_id)
        vault.guard.require_contact_reader(ctx.principal, view, missing=_NOT_FOUND)
        return _out(vault, s, c, key, ctx.now(), text=vault.guard.contact_text_visible(view))


def list_contacts(
    ctx: Ctx, case_id: str | None, status: str | None, *, inbox: bool = False
) -> dict[str, Any]:
    """The register: one case's (``case_id``) or every case the caller may list; ``inbox``
    keeps what waits for the caller (approval, acknowledgement, overdue reports)."""
    vault = ctx.vault
    guard = vault.guard
    with (
        ctx.scope("contact.list", case_id=case_id, cls="contact_record"),
        vault.read_session() as s,
    ):
        now = ctx.now()
        if status is not None and status not in (*STATUSES, "overdue"):
            raise BadRequest(
                f"status must be one of: {', '.join((*STATUSES, 'overdue'))}",
                code="invalid_status",
            )
        everywhere = guard.contact_list_everywhere(ctx.principal) and not inbox
        query = (
            select(Contact, Case)
            .join(Case, Case.id == Contact.case_id)
            .where(Case.shredded_at.is_(None))
        )
        if case_id is not None:
            _case, view = visible_case(ctx, s, case_id)
            if not (everywhere or (view.member and guard.lists_contacts_in(view.roles))):
                raise Forbidden(
                    "only the case's drafters and supervisors, and auditors, list its contacts",
                    code="contact_not_permitted",
                )
            query = query.where(Contact.case_id == _case.id)
        elif not everywhere and not guard.lists_contacts_in(
            {r for m in _my_roles(s, ctx, now).values() for r in m}
        ):
            raise Forbidden(
                "only drafters, supervisors and auditors list vendor contacts",
                code="contact_not_permitted",
            )
        if status in STATUSES:
            query = query.where(Contact.status == status)
        elif status == "overdue":
            query = query.where(
                Contact.status == "planned", Contact.planned_at < now - OVERDUE_AFTER
            )
        # One view per case, as every other decision is made: what the caller's unexpired
        # roles allow at the case's stage, with admins' and auditors' reads stripped.
        views: dict[str, CaseView] = {}
        keys: dict[str, bytes] = {}
        out = []
        for c, case in s.execute(query.order_by(Contact.planned_at.desc())):
            if case.id not in views:
                views[case.id] = view_of(ctx, s, case.id)
            view = views[case.id]
            if not everywhere and not (view.member and guard.lists_contacts_in(view.roles)):
                continue
            if inbox:
                if not guard.supervises(view, ctx.principal, "@contacts"):
                    continue
                own = guard.own_read(ctx.principal, _name(s, c.reported_by), c.reported_via)
                waiting = _waits_for_supervisor(c) and not own
                if not (waiting or overdue(c, now)):
                    continue
            if case.id not in keys:
                keys[case.id] = vault.keys.case_key(case.id, case.wrapped_key)
            item = _out(vault, s, c, keys[case.id], now, text=guard.contact_text_visible(view))
            item["case_number"] = case.number
            out.append(item)
        return {"contacts": out}


def _name(s: Session, user_id: int) -> str | None:
    user = s.get(User, user_id)
    return user.name if user is not None else None


def _waits_for_supervisor(c: Contact) -> bool:
    if c.status == "pending_approval":
        return True
    if c.status == "planned":
        return c.acknowledged_at is None
    return c.report_acknowledged_at is None


def _my_roles(s: Session, ctx: Ctx, now: datetime) -> dict[str, set[str]]:
    if ctx.principal.user_id is None:
        return {}
    rows = s.scalars(
        select(Membership).where(
            Membership.user_id == ctx.principal.user_id, active_membership(now)
        )
    )
    return {m.case_id: set(m.role_list) for m in rows}


CSV_FIELDS = (
    "id",
    "case_id",
    "case_number",
    "status",
    "overdue",
    "vendor",
    "channel",
    "planned_at",
    "participants",
    "agenda",
    "minor",
    "urgent",
    "justification",
    "reported_by",
    "created_at",
    "approved_by",
    "acknowledged_by",
    "reported_at",
    "summary",
    "information_provided",
    "disclosures",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    text = str(value)
    # A cell starting with a formula sign would run as a formula when the file is opened
    # in a spreadsheet; a leading apostrophe keeps it text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def contacts_csv(listing: dict[str, Any]) -> str:
    """The register as CSV with a header row, UTF-8 with a BOM so spreadsheets read the
    Japanese text right."""
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for item in listing["contacts"]:
        writer.writerow([_cell(item.get(f)) for f in CSV_FIELDS])
    return buf.getvalue()


def sweep_overdue(vault: Vault) -> int:
    """Tell the supervisors, once, of each contact whose report is over 2 days late."""
    now = utcnow()
    told = 0
    late = (
        Contact.status == "planned",
        Contact.planned_at < now - OVERDUE_AFTER,
        Contact.overdue_notified_at.is_(None),
    )
    # Looked for without the write lock first: most sweeps find nothing.
    with vault.read_session() as s:
        if s.scalar(select(Contact.id).where(*late).limit(1)) is None:
            return 0
    with vault.write_session() as s:
        rows = list(
            s.execute(
                select(Contact, Case)
                .join(Case, Case.id == Contact.case_id)
                .where(
                    Contact.status == "planned",
                    Contact.planned_at < now - OVERDUE_AFTER,
                    Contact.overdue_notified_at.is_(None),
                    # A shredded case's contacts can be read by nobody, so nobody is told.
                    Case.shredded_at.is_(None),
                )
                .limit(100)
            )
        )
        if not rows:
            return 0
        records = []
        for c, case in rows:
            key = vault.keys.case_key(case.id, case.wrapped_key)
            details = _details(vault, key, c)
            reporter = s.get(User, c.reported_by)
            notify(
                s,
                vault,
                _notice(
                    vault, "contact.overdue", case, key, c, details, reporter=_display(reporter)
                ),
                approvers(s, vault, case.id, now),
                now,
                vault.settings.link_base,
            )
            c.overdue_notified_at = now
            records.append(
                build_record(
                    system_info("contacts"),
                    actor=None,
                    action="contact.overdue",
                    decision="allow",
                    reason="report_overdue",
                    case_id=case.id,
                    cls="contact_record",
                    target=f"contact:{c.id}",
                )
            )
            told += 1
        try:
            for rec in records:
                vault.audit.append(rec)
        except AuditUnavailable:
            s.rollback()
            raise
        s.commit()
    return told
