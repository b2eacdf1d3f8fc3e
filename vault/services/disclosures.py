"""Disclosure to a named outsider (情報提供, 実施要領 第3): requested by a member who may read
the document, approved by another supervisor of the case, then downloaded by the recipient
through a link that expires, runs out, can be revoked, and dies when the case reaches the
review request (審査依頼).

The recipient's name, organisation and address, the reason and any note are sealed with the
case key; the link's token is kept only as its SHA-256.  Every step is an audit event; a
download's event names the disclosure as its actor (``disclosure:<id>``) and the recipient's
address as its target, with the client's address under ``client``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.audit.log import parse_time
from vault.audit.records import RequestInfo
from vault.audit.scope import AuditScope
from vault.catalog.models import Case, Disclosure, Document, User
from vault.catalog.queries import find_document, read_lookup, stage_and_roles, user_names
from vault.catalog.types import utcnow
from vault.core import Vault
from vault.domain import DomainError, validate_email
from vault.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    KinkoError,
    NotFound,
    TooManyRequests,
)
from vault.services import outbox
from vault.services.context import Ctx, JsonBody, iso, view_of, visible_case, visible_document
from vault.services.documents import OpenedRead, nothing_more, open_version
from vault.services.errors import translate
from vault.services.notifications import (
    Notice,
    approvers,
    bilingual_mail,
    local_time,
    notify,
)
from vault.services.schemas import DecisionNote, DisclosureCreate
from vault.services.stamp import STAMP_MAX, stamp_pdf, stampable

RECORD_LABEL = "disclosure"
DEFAULT_TTL = timedelta(days=7)
MAX_TTL = timedelta(days=14)
DEFAULT_DOWNLOADS = 3
MAX_DOWNLOADS = 20
SHARE_PATH = "/s/"
STAMPING_AT_ONCE = 2
_STAMPING = threading.BoundedSemaphore(STAMPING_AT_ONCE)
# Unknown links from one client address: this many within the window, then 429.
UNKNOWN_LINK_LIMIT = 20
UNKNOWN_LINK_WINDOW = 600.0

_NOT_FOUND = NotFound("disclosure not found", code="disclosure_not_found")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _record(vault: Vault, key: bytes, d: Disclosure) -> dict[str, Any]:
    return vault.keys.open_record(key, RECORD_LABEL, d.id, d.recipient_sealed)


def effective_status(vault: Vault, d: Disclosure, stage: str, now: datetime) -> str:
    """What the disclosure is now: its stored state, or what time, use and stage made of it."""
    if d.status in ("rejected", "revoked"):
        return d.status
    if d.status == "approved" and d.downloads >= d.max_downloads:
        return "used_up"
    if now >= d.expires_at:
        return "expired"
    if not vault.guard.vendor_contact_open(stage):
        return "closed"
    return d.status


def _out(
    vault: Vault,
    s: Session,
    d: Disclosure,
    key: bytes,
    stage: str,
    now: datetime,
    title: str | None = None,
) -> dict[str, Any]:
    rec = _record(vault, key, d)
    names = user_names(s, {i for i in (d.requested_by, d.decided_by, d.revoked_by) if i})
    return {
        "id": d.id,
        "status": effective_status(vault, d, stage, now),
        "case_id": d.case_id,
        "document_id": d.document_id,
        "version": d.version,
        "title": title,
        "recipient_name": rec["name"],
        "recipient_organization": rec["organization"],
        "recipient_email": rec["email"],
        "reason": rec["reason"],
        "note": rec.get("note"),
        "expires_at": iso(d.expires_at),
        "max_downloads": d.max_downloads,
        "downloads": d.downloads,
        "requested_by": names.get(d.requested_by),
        "requested_at": iso(d.requested_at),
        "decided_by": names.get(d.decided_by) if d.decided_by else None,
        "decided_at": iso(d.decided_at),
        "revoked_by": names.get(d.revoked_by) if d.revoked_by else None,
        "revoked_at": iso(d.revoked_at),
        "last_download_at": iso(d.last_download_at),
    }


def _notice(
    vault: Vault,
    kind: str,
    case: Case,
    key: bytes,
    d: Disclosure,
    rec: dict[str, Any],
    title: str,
    **more: Any,
) -> Notice:
    return Notice(
        kind=kind,
        case=case,
        case_key=key,
        subject_id=d.id,
        fields={
            "title": title,
            "recipient": rec["name"],
            "organization": rec["organization"],
            "reason": rec["reason"],
            "note": rec.get("note") or "-",
            "expires": local_time(vault, d.expires_at),
            **more,
        },
        path=f"/ui/disclosures/{d.id}",
    )


def _name(s: Session, user_id: int) -> str | None:
    user = s.get(User, user_id)
    return user.name if user is not None else None


def _display(user: User | None) -> str:
    if user is None:
        return "-"
    return user.display_name or user.name


def _parse_request(body: JsonBody, now: datetime) -> tuple[DisclosureCreate, datetime, int]:
    req = body.parse(DisclosureCreate)
    try:
        validate_email(req.recipient_email)
    except DomainError as exc:
        raise BadRequest(exc.message, code=exc.code) from None
    for text in (req.recipient_name, req.recipient_organization, req.reason):
        if not text.strip():
            raise BadRequest("recipient and reason must not be blank", code="invalid_recipient")
    expires = now + DEFAULT_TTL
    if req.expires_at is not None:
        expires = parse_time(req.expires_at)
        if expires <= now:
            raise BadRequest("expires_at must be in the future", code="invalid_time")
        if expires > now + MAX_TTL:
            raise BadRequest("a disclosure expires within 14 days", code="invalid_time")
    downloads = DEFAULT_DOWNLOADS if req.max_downloads is None else req.max_downloads
    if not 1 <= downloads <= MAX_DOWNLOADS:
        raise BadRequest("max_downloads must be 1 to 20", code="invalid_max_downloads")
    return req, expires, downloads


def request(ctx: Ctx, doc_id: str, body: JsonBody, link_base: str) -> dict[str, Any]:
    vault = ctx.vault
    guard = vault.guard
    with (
        ctx.scope("disclosure.request", document_id=doc_id) as ev,
        vault.write_session() as s,
    ):
        now = ctx.now()
        # The body is read first but judged last: a non-member learns nothing from a 400.
        asked: int | None = None
        data = body.data or {}
        if isinstance(data.get("version"), int) and not isinstance(data.get("version"), bool):
            asked = data["version"]
        doc, case, view = visible_document(ctx, s, ev, doc_id)
        wanted = asked if asked is not None else (doc.final_version or doc.latest_version)
        grant = guard.content_read(
            ctx.principal, view, doc.doc_class, doc.latest_version, doc.final_version, wanted
        )
        ev.set(version=grant.version)
        guard.require_not_public(doc.doc_class, view.stage, doc.final_version)
        guard.require_vendor_contact_open(view.stage)
        req, expires, downloads = _parse_request(body, now)
        key = vault.keys.case_key(case.id, case.wrapped_key)
        d = Disclosure(
            id=uuid.uuid4().hex,
            case_id=case.id,
            document_id=doc.id,
            version=grant.version,
            requested_by=ctx.principal.user_id,
            requested_at=now,
            requested_via=ctx.principal.token_issuer,
            status="requested",
            expires_at=expires,
            max_downloads=downloads,
            downloads=0,
        )
        rec = {
            "name": req.recipient_name.strip(),
            "organization": req.recipient_organization.strip(),
            "email": validate_email(req.recipient_email),
            "reason": req.reason.strip(),
        }
        d.recipient_sealed = vault.keys.seal_record(key, RECORD_LABEL, d.id, rec)
        s.add(d)
        title = vault.keys.open_title(key, doc.id, doc.title_sealed)
        me = s.get(User, ctx.principal.user_id)
        notify(
            s,
            vault,
            _notice(vault, "disclosure.requested", case, key, d, rec, title, actor=_display(me)),
            [u for u in approvers(s, vault, case.id, now) if u.id != ctx.principal.user_id],
            now,
            link_base,
        )
        ev.set(target=rec["email"])
        ev.allow(f"disclosure={d.id}")
        s.commit()
        return _out(vault, s, d, key, view.stage, now, title)


@dataclass
class _Loaded:
    d: Disclosure
    doc: Document
    case: Case
    key: bytes
    stage: str
    title: str
    rec: dict[str, Any]


def _load(ctx: Ctx, s: Session, ev: AuditScope, disclosure_id: str) -> tuple[_Loaded, Any]:
    """The disclosure and the caller's view of its case; 404 when either is not to be known."""
    d = s.get(Disclosure, disclosure_id) if len(disclosure_id) <= 32 else None
    view = view_of(ctx, s, d.case_id if d is not None else disclosure_id[:32])
    if d is None or not view.visible:
        raise _NOT_FOUND
    ev.set(case_id=d.case_id, document_id=d.document_id, version=d.version)
    found = find_document(s, d.document_id)
    if found is None:
        raise _NOT_FOUND
    doc, case = found
    ev.set(cls=doc.doc_class)
    key = ctx.vault.keys.case_key(case.id, case.wrapped_key)
    rec = _record(ctx.vault, key, d)
    ev.set(target=rec["email"])
    title = ctx.vault.keys.open_title(key, doc.id, doc.title_sealed)
    return _Loaded(d, doc, case, key, view.stage, title, rec), view


def _decide(
    ctx: Ctx, disclosure_id: str, action: str, body: JsonBody | None, link_base: str
) -> dict[str, Any]:
    vault = ctx.vault
    with ctx.scope(f"disclosure.{action}") as ev, vault.write_session() as s:
        now = ctx.now()
        got, view = _load(ctx, s, ev, disclosure_id)
        d = got.d
        requester = s.get(User, d.requested_by)
        vault.guard.require_approver(
            ctx.principal,
            view,
            "@disclosures",
            requester.name if requester else None,
            d.requested_via,
            missing=_NOT_FOUND,
        )
        note = None
        if body is not None:
            note = body.parse(DecisionNote).note if body.data else None
        if d.status != "requested":
            raise Conflict(f"the disclosure is {d.status}, not requested", code="already_decided")
        if now >= d.expires_at:
            raise Conflict("the disclosure expired before it was approved", code="expired")
        me = s.get(User, ctx.principal.user_id)
        supervisors = approvers(s, vault, got.case.id, now)
        d.decided_by = ctx.principal.user_id
        d.decided_at = now
        answer: dict[str, Any] = {}
        reason = f"disclosure={d.id}"
        if action == "approve":
            vault.guard.require_vendor_contact_open(got.stage)
            token = secrets.token_urlsafe(32)  # 256 bits
            d.token_hash = token_hash(token)
            d.status = "approved"
            link = f"{link_base}{SHARE_PATH}{token}"
            answer["link"] = link
            digest = _mail_recipient(s, vault, got, link, supervisors, requester, now)
            reason += f" mail_sha256={digest}" if digest else " mail=none"
        else:
            d.status = "rejected"
            if note:
                got.rec["note"] = note.strip()
                d.recipient_sealed = vault.keys.seal_record(got.key, RECORD_LABEL, d.id, got.rec)
        kind = "disclosure.approved" if action == "approve" else "disclosure.rejected"
        readers = [u for u in supervisors if u.id != ctx.principal.user_id]
        if requester is not None:
            readers.append(requester)
        notify(
            s,
            vault,
            _notice(vault, kind, got.case, got.key, d, got.rec, got.title, actor=_display(me)),
            readers,
            now,
            link_base,
        )
        ev.allow(reason)
        s.commit()
        return {**_out(vault, s, d, got.key, got.stage, now, got.title), **answer}


RECIPIENT_JA = """{name} 様

{organization}の {requester} より、次の資料をお送りします。

資料: {title}
有効期限: {expires}
ダウンロードできる回数: {max} 回

次のリンクを開き、「ダウンロード」を押してください。
{link}

このリンクはあなた宛てです。他の方へ転送しないでください。ダウンロードは記録され、PDF の各ページには
受取人のお名前が記されます。このメールは、当方の上長にも同送しています。
"""

RECIPIENT_EN = """Dear {name},

{requester} of {organization} sends you the following document.

Document: {title}
Link valid until: {expires}
Downloads allowed: {max}

Open the link below and press "Download".
{link}

This link is for you only; please do not forward it. Downloads are recorded, and every page of a PDF
carries the recipient's name. Our supervisors receive a copy of this message.
"""


def _mail_recipient(
    s: Session,
    vault: Vault,
    got: _Loaded,
    link: str,
    supervisors: list[User],
    requester: User | None,
    now: datetime,
) -> str | None:
    """Queue the link's e-mail to the recipient, with every supervisor of the case in Cc
    (実施要領 第3: e-mail to a vendor goes out with the superior copied)."""
    values = {
        "name": got.rec["name"],
        "organization": vault.settings.organization,
        "requester": _display(requester),
        "title": got.title,
        "expires": local_time(vault, got.d.expires_at),
        "max": got.d.max_downloads,
        "link": link,
    }
    subject, body = bilingual_mail(
        f"資料の送付: {got.title}",
        f"Document sent to you: {got.title}",
        RECIPIENT_JA.format(**values),
        RECIPIENT_EN.format(**values),
    )
    return outbox.enqueue(
        s,
        vault,
        kind="disclosure.link",
        case_id=got.case.id,
        case_key=got.key,
        to=[got.rec["email"]],
        cc=[u.email for u in supervisors if u.email],
        subject=subject,
        body=body,
        now=now,
    )


def approve(ctx: Ctx, disclosure_id: str, link_base: str) -> dict[str, Any]:
    return _decide(ctx, disclosure_id, "approve", None, link_base)


def reject(ctx: Ctx, disclosure_id: str, body: JsonBody, link_base: str) -> dict[str, Any]:
    return _decide(ctx, disclosure_id, "reject", body, link_base)


def revoke(ctx: Ctx, disclosure_id: str, link_base: str) -> dict[str, Any]:
    vault = ctx.vault
    with ctx.scope("disclosure.revoke") as ev, vault.write_session() as s:
        now = ctx.now()
        got, view = _load(ctx, s, ev, disclosure_id)
        d = got.d
        own = d.requested_by == ctx.principal.user_id
        if not own and not vault.guard.supervises(view, ctx.principal, "@disclosures"):
            raise Forbidden(
                "only the requester or a supervisor of the case may revoke a disclosure",
                code="supervisor_required",
            )
        if d.status not in ("requested", "approved"):
            raise Conflict(f"the disclosure is {d.status} already", code="already_decided")
        d.status = "revoked"
        d.revoked_by = ctx.principal.user_id
        d.revoked_at = now
        me = s.get(User, ctx.principal.user_id)
        readers = list(approvers(s, vault, got.case.id, now))
        requester = s.get(User, d.requested_by)
        if requester is not None:
            readers.append(requester)
        notify(
            s,
            vault,
            _notice(
                vault,
                "disclosure.revoked",
                got.case,
                got.key,
                d,
                got.rec,
                got.title,
                actor=_display(me),
            ),
            [u for u in readers if u.id != ctx.principal.user_id],
            now,
            link_base,
        )
        ev.allow(f"disclosure={d.id}")
        s.commit()
        return _out(vault, s, d, got.key, got.stage, now, got.title)


def get(ctx: Ctx, disclosure_id: str, *, abilities: bool = False) -> dict[str, Any]:
    """One disclosure; ``abilities`` adds ``may`` (``decide``, ``revoke``) for a page to offer
    only the buttons the guard would allow, and the case's number."""
    vault = ctx.vault
    with ctx.scope("disclosure.read") as ev, vault.read_session() as s:
        got, view = _load(ctx, s, ev, disclosure_id)
        _require_reader(ctx, view, got.doc.doc_class)
        out = _out(vault, s, got.d, got.key, got.stage, ctx.now(), got.title)
        if abilities:
            own = got.d.requested_by == ctx.principal.user_id
            supervises = vault.guard.supervises(view, ctx.principal, "@disclosures")
            live = out["status"] in ("requested", "approved")
            out["may"] = {
                "decide": supervises and not own and out["status"] == "requested",
                "revoke": (own or supervises) and live,
            }
            out["case_number"] = got.case.number
        return out


def _require_reader(ctx: Ctx, view: Any, cls: str) -> None:
    guard = ctx.vault.guard
    guard.require_disclosure_reader(ctx.principal, view, missing=_NOT_FOUND)
    if not (view.may(cls, "read") or guard.may(ctx.principal.roles, "@disclosures", "list")):
        raise Forbidden(
            "your roles do not allow reading this document now", code="read_not_permitted"
        )


def list_case(ctx: Ctx, case_id: str) -> dict[str, Any]:
    vault = ctx.vault
    with ctx.scope("disclosure.list", case_id=case_id), vault.read_session() as s:
        now = ctx.now()
        case, view = visible_case(ctx, s, case_id)
        vault.guard.require_disclosure_reader(
            ctx.principal, view, missing=NotFound("case not found", code="case_not_found")
        )
        auditor = vault.guard.may(ctx.principal.roles, "@disclosures", "list")
        key = vault.keys.case_key(case.id, case.wrapped_key)
        out = []
        rows = s.execute(
            select(Disclosure, Document)
            .join(Document, Document.id == Disclosure.document_id)
            .where(Disclosure.case_id == case.id)
            .order_by(Disclosure.requested_at.desc())
        )
        for d, doc in rows:
            if not (auditor or view.may(doc.doc_class, "read")):
                continue
            title = vault.keys.open_title(key, doc.id, doc.title_sealed)
            out.append(_out(vault, s, d, key, view.stage, now, title))
        return {"disclosures": out}


def pending_for(ctx: Ctx) -> list[dict[str, Any]]:
    """Disclosures waiting for the caller's approval (the supervisor's inbox), newest first."""
    vault = ctx.vault
    out: list[dict[str, Any]] = []
    with ctx.scope("disclosure.list"), vault.read_session() as s:
        now = ctx.now()
        rows = list(
            s.execute(
                select(Disclosure, Document, Case)
                .join(Document, Document.id == Disclosure.document_id)
                .join(Case, Case.id == Disclosure.case_id)
                .where(
                    Disclosure.status == "requested",
                    Disclosure.expires_at > now,
                    Case.shredded_at.is_(None),
                )
                .order_by(Disclosure.requested_at.desc())
            )
        )
        for d, doc, case in rows:
            view = view_of(ctx, s, case.id)
            if not vault.guard.supervises(view, ctx.principal, "@disclosures"):
                continue
            key = vault.keys.case_key(case.id, case.wrapped_key)
            title = vault.keys.open_title(key, doc.id, doc.title_sealed)
            item = _out(vault, s, d, key, view.stage, now, title)
            item["case_number"] = case.number
            item["own"] = vault.guard.own_read(
                ctx.principal, _name(s, d.requested_by), d.requested_via
            )
            out.append(item)
    return out


# -- the recipient's side: /s/<token> ------------------------------------------------------------


class _UnknownLinks:
    """Unknown links per client address, per process: a guessed token is hopeless (256 bits),
    but a client trying many is stopped early and its attempts stay visible in the log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}

    def check(self, ip: str) -> None:
        now = time.monotonic()
        with self._lock:
            recent = self._seen.get(ip)
            while recent and recent[0] < now - UNKNOWN_LINK_WINDOW:
                recent.popleft()
            if recent is not None and len(recent) >= UNKNOWN_LINK_LIMIT:
                raise TooManyRequests(
                    "too many unknown links from this address; try again later",
                    code="too_many_attempts",
                )

    def failed(self, ip: str) -> None:
        with self._lock:
            self._seen.setdefault(ip, deque()).append(time.monotonic())
            if len(self._seen) > 10000:
                self._seen.pop(next(iter(self._seen)))


_unknown: dict[int, _UnknownLinks] = {}


def _throttle(vault: Vault) -> _UnknownLinks:
    return _unknown.setdefault(id(vault), _UnknownLinks())


@dataclass
class Share:
    """What the landing page shows and what a download serves."""

    disclosure_id: str
    title: str
    organization: str
    recipient_name: str
    expires_at: str | None
    downloads_left: int
    stamped: bool
    opened: OpenedRead | None = None


def _share_scope(vault: Vault, info: RequestInfo, action: str) -> AuditScope:
    return AuditScope(vault.audit, info, None, action, translate=translate)


_GONE = {
    "revoked": ("the link was revoked", "disclosure_revoked"),
    "expired": ("the link has expired", "disclosure_expired"),
    "used_up": ("the link was used as often as allowed", "disclosure_used_up"),
    "closed": ("the procurement has moved on; the link no longer works", "contact_prohibited"),
}


def _resolve(
    vault: Vault, s: Session, ev: AuditScope, info: RequestInfo, token: str, now: datetime
) -> _Loaded:
    ip = info.ip or "-"
    throttle = _throttle(vault)
    throttle.check(ip)
    d = None
    if 20 <= len(token) <= 100 and token.isascii():
        d = s.scalar(select(Disclosure).where(Disclosure.token_hash == token_hash(token)))
    if d is None:
        throttle.failed(ip)
        raise _NOT_FOUND
    ev.actor = f"disclosure:{d.id}"
    ev.set(case_id=d.case_id, document_id=d.document_id, version=d.version)
    found = find_document(s, d.document_id)
    if found is None:
        raise _NOT_FOUND
    doc, case = found
    ev.set(cls=doc.doc_class)
    key = vault.keys.case_key(case.id, case.wrapped_key)
    rec = _record(vault, key, d)
    ev.set(target=rec["email"])
    stage, _ = stage_and_roles(s, case.id, None, now)
    status = effective_status(vault, d, stage, now)
    if status != "approved":
        message, code = _GONE.get(status, ("the link no longer works", "disclosure_gone"))
        raise Gone(message, code=code)
    title = vault.keys.open_title(key, doc.id, doc.title_sealed)
    return _Loaded(d, doc, case, key, stage, title, rec)


def _share_of(vault: Vault, s: Session, got: _Loaded, now: datetime) -> Share:
    size_row = read_lookup(s.connection(), got.doc.id, None, now, got.d.version)
    stamped = False
    if size_row is not None and got.d.version in size_row.versions:
        row = size_row.versions[got.d.version]
        content_type = "application/octet-stream"
        if row.content_type_sealed is not None:
            content_type = vault.keys.open_content_type(
                got.key, got.doc.id, row.version, row.content_type_sealed
            )
        stamped = stampable(content_type, got.title, row.size)
    return Share(
        disclosure_id=got.d.id,
        title=got.title,
        organization=vault.settings.organization,
        recipient_name=got.rec["name"],
        expires_at=iso(got.d.expires_at),
        downloads_left=max(0, got.d.max_downloads - got.d.downloads),
        stamped=stamped,
    )


def landing(vault: Vault, info: RequestInfo, token: str) -> Share:
    """What the recipient's page shows; consumes nothing (mail scanners follow links)."""
    with _share_scope(vault, info, "disclosure.view") as ev, vault.read_session() as s:
        now = utcnow()
        got = _resolve(vault, s, ev, info, token, now)
        share = _share_of(vault, s, got, now)
        ev.allow(f"disclosure={got.d.id}")
        return share


def download(vault: Vault, info: RequestInfo, token: str) -> Share:
    """One download: counted, audited (committed before the first byte), supervisors told.

    A PDF up to ``STAMP_MAX`` is read whole, stamped with the recipient and served from
    memory; anything else streams as it is stored.
    """
    with _share_scope(vault, info, "disclosure.download") as ev:
        now = utcnow()
        with vault.read_session() as s:
            got = _resolve(vault, s, ev, info, token, now)
            share = _share_of(vault, s, got, now)
            found = read_lookup(s.connection(), got.doc.id, None, now, got.d.version)
        if found is None:
            raise _NOT_FOUND
        opened = open_version(vault, found, got.d.version)
        reason = "as_stored"
        try:
            if share.stamped:
                stamp = (
                    f"開示先 Disclosed to: {got.rec['name']} ({got.rec['organization']}) "
                    f"<{got.rec['email']}> / disclosure {got.d.id} / {iso(now)}"
                )
                # A stamped PDF is held whole in memory, several times over while pypdf
                # works on it: only STAMPING_AT_ONCE run together, so memory stays bounded
                # however many recipients download at the same moment.
                with _STAMPING:
                    whole = b"".join([*opened.first, *opened.rest])
                    if len(whole) > STAMP_MAX:  # the catalog's size lied; never stamp more
                        raise KinkoError("stored content is larger than recorded")
                    marked = stamp_pdf(whole, stamp)
                if marked is None:
                    reason = "as_stored:unreadable_pdf"
                    marked = whole
                else:
                    reason = "stamped"
                opened = OpenedRead(
                    version=opened.version,
                    size=len(marked),
                    sha256=hashlib.sha256(marked).hexdigest(),
                    first=[marked],
                    rest=nothing_more(),
                    content_type=opened.content_type,
                    title=opened.title,
                )
            with vault.write_session() as s:
                d = s.get(Disclosure, got.d.id)
                assert d is not None
                stage, _ = stage_and_roles(s, d.case_id, None, now)
                status = effective_status(vault, d, stage, now)
                if status != "approved":  # used up by a download that committed meanwhile
                    message, code = _GONE.get(status, ("the link no longer works", "gone"))
                    raise Gone(message, code=code)
                d.downloads += 1
                d.last_download_at = now
                case = s.get(Case, d.case_id)
                assert case is not None
                notify(
                    s,
                    vault,
                    _notice(
                        vault,
                        "disclosure.downloaded",
                        case,
                        got.key,
                        d,
                        got.rec,
                        got.title,
                        count=d.downloads,
                        max=d.max_downloads,
                        ip=info.ip or "-",
                    ),
                    approvers(s, vault, d.case_id, now),
                    now,
                    vault.settings.link_base,
                )
                ev.allow(f"disclosure={d.id} download={d.downloads}/{d.max_downloads} {reason}")
                s.commit()
        except BaseException:
            opened.rest.close()
            raise
        share.opened = opened
        share.downloads_left = max(0, got.d.max_downloads - got.d.downloads - 1)
        return share
