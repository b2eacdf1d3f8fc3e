"""Notifications: what a user should know about, kept in Kinko and, with SMTP, mailed.

Two sorts are stored.  Notices about a user's tokens (``token.issued``) are references only
(kinds and ids), rendered when shown.  Notices about a case (disclosures, vendor contacts)
carry their text in Japanese and English, sealed with the case key like titles
(guarantee 1), because the text names documents and vendors.  Each is committed with the
change that causes it, and so is its e-mail (``vault.services.outbox``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vault.authz.guard import OVERSEER_ROLES
from vault.catalog.models import Case, Membership, Notification, User
from vault.catalog.queries import active_membership, active_memberships, user_names
from vault.core import Vault
from vault.errors import BadRequest, Gone
from vault.keys import KeyUnavailable
from vault.services import outbox
from vault.services.context import Ctx, iso

NOTICE_LABEL = "notification"

# Kinds as the API names them.  Token notices are stored under their older name.
CASE_KINDS = (
    "disclosure.requested",
    "disclosure.approved",
    "disclosure.rejected",
    "disclosure.revoked",
    "disclosure.downloaded",
    "contact.planned",
    "contact.urgent",
    "contact.reported",
    "contact.overdue",
)
STORED_TOKEN_KIND = "token.issued_for_user"  # noqa: S105 - a kind, not a secret
TOKEN_KIND = "token.issued"  # noqa: S105 - a kind, not a secret

# (Japanese subject, Japanese text, English subject, English text) of each kind.  The text's
# fields are filled by the service that raises the notice.
TEXTS: dict[str, tuple[str, str, str, str]] = {
    "disclosure.requested": (
        "情報提供の承認依頼",
        "{actor} さんが、案件 {case} の「{title}」を {recipient}（{organization}）へ提供する"
        "承認を求めています。理由: {reason}",
        "Disclosure awaiting approval",
        "{actor} asks to give “{title}” of case {case} to {recipient} ({organization}). "
        "Reason: {reason}",
    ),
    "disclosure.approved": (
        "情報提供が承認されました",
        "{actor} さんが、案件 {case} の「{title}」の {recipient}（{organization}）への提供を"
        "承認しました。リンクの有効期限: {expires}",
        "Disclosure approved",
        "{actor} approved giving “{title}” of case {case} to {recipient} ({organization}). "
        "The link works until {expires}.",
    ),
    "disclosure.rejected": (
        "情報提供が却下されました",
        "{actor} さんが、案件 {case} の「{title}」の {recipient}（{organization}）への提供を"
        "却下しました。コメント: {note}",
        "Disclosure rejected",
        "{actor} rejected giving “{title}” of case {case} to {recipient} ({organization}). "
        "Note: {note}",
    ),
    "disclosure.revoked": (
        "情報提供が取り消されました",
        "{actor} さんが、案件 {case} の「{title}」の {recipient}（{organization}）への提供を"
        "取り消しました。リンクはもう使えません。",
        "Disclosure revoked",
        "{actor} revoked the disclosure of “{title}” of case {case} to {recipient} "
        "({organization}). The link no longer works.",
    ),
    "disclosure.downloaded": (
        "提供資料がダウンロードされました",
        "{recipient}（{organization}）が、案件 {case} の「{title}」をダウンロードしました"
        "（{count}/{max} 回目、接続元 {ip}）。",
        "Disclosed document downloaded",
        "{recipient} ({organization}) downloaded “{title}” of case {case} "
        "({count} of {max}, from {ip}).",
    ),
    "contact.planned": (
        "事業者との接触の事前報告",
        "{actor} さんが、案件 {case} で {vendor} との接触（{channel}、{planned_at}）を"
        "事前報告しました。議題: {agenda}",
        "Vendor contact reported in advance",
        "{actor} reported a planned contact with {vendor} in case {case} ({channel_en}, "
        "{planned_at}). Agenda: {agenda}",
    ),
    "contact.urgent": (
        "緊急の事業者接触の承認依頼",
        "{actor} さんが、審査依頼後の案件 {case} で {vendor} との緊急の接触（{channel}、"
        "{planned_at}）の承認を求めています。理由: {justification}",
        "Urgent vendor contact awaiting approval",
        "{actor} asks to approve an urgent contact with {vendor} in case {case}, which is "
        "past the review request ({channel_en}, {planned_at}). Justification: {justification}",
    ),
    "contact.reported": (
        "事業者との接触の事後報告",
        "{actor} さんが、案件 {case} での {vendor} との接触（{planned_at}）を報告しました。"
        "情報提供: {provided}。概要: {summary}",
        "Vendor contact reported",
        "{actor} reported on the contact with {vendor} in case {case} ({planned_at}). "
        "Information provided: {provided_en}. Summary: {summary}",
    ),
    "contact.overdue": (
        "事業者との接触の事後報告が未提出です",
        "案件 {case} での {vendor} との接触（{planned_at}、報告者 {reporter}）の事後報告が、"
        "2 日を過ぎても提出されていません。",
        "Vendor contact report overdue",
        "The report on the contact with {vendor} in case {case} ({planned_at}, by "
        "{reporter}) is more than 2 days overdue.",
    ),
}


@dataclass
class Notice:
    """One notice about a case, before it is rendered for its readers."""

    kind: str
    case: Case
    case_key: bytes
    subject_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    # Where in the web interface the reader acts on it (a path under /ui).
    path: str = "/ui/inbox"

    def texts(self) -> dict[str, str]:
        ja_subject, ja, en_subject, en = TEXTS[self.kind]
        values = {"case": self.case.number, **{k: _plain(v) for k, v in self.fields.items()}}
        return {
            "ja_subject": ja_subject,
            "ja": ja.format(**values),
            "en_subject": en_subject,
            "en": en.format(**values),
        }


def _plain(value: Any) -> str:
    # One line each: a vendor name or note with line breaks must not pose as more text.
    return " ".join(str(value if value is not None else "-").split())


def local_time(vault: Vault, t: datetime | None) -> str:
    """An instant as the office reads it (``KINKO_TIMEZONE``), with the zone's name."""
    if t is None:
        return "-"
    return t.astimezone(ZoneInfo(vault.settings.timezone)).strftime("%Y-%m-%d %H:%M (%Z)")


def bilingual_mail(subject_ja: str, subject_en: str, ja: str, en: str) -> tuple[str, str]:
    """A subject and body in Japanese first, then English, as every Kinko message is sent."""
    return f"[Kinko] {subject_ja} / {subject_en}", f"{ja}\n\n----- English -----\n\n{en}\n"


def approvers(s: Session, vault: Vault, case_id: str, now: datetime) -> list[User]:
    """The enabled members of the case whose roles let them approve (its supervisors)."""
    rows = s.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.case_id == case_id, active_membership(now), User.disabled.is_(False))
        .order_by(User.name)
    )
    # Admins and auditors decide nothing in a case and read no confidential text of it
    # (separation of duties), whatever case roles they also hold.
    return [
        user
        for user, m in rows
        if vault.guard.may(m.role_list, "@disclosures", "approve")
        and not (set(user.role_list) & OVERSEER_ROLES)
    ]


def notify(
    s: Session,
    vault: Vault,
    notice: Notice,
    users: Iterable[User],
    now: datetime,
    link_base: str,
) -> None:
    """Store the notice for each of ``users`` and queue its e-mail to those with an address."""
    texts = notice.texts()
    seen: set[int] = set()
    for user in users:
        if user.id in seen:
            continue
        seen.add(user.id)
        s.add(
            Notification(
                user_id=user.id,
                kind=notice.kind,
                case_id=notice.case.id,
                ref=notice.subject_id,
                created_at=now,
                text_sealed=vault.keys.seal_record(
                    notice.case_key, NOTICE_LABEL, _notice_ad(user.id, notice), texts
                ),
            )
        )
        if user.email:
            subject, body = bilingual_mail(
                texts["ja_subject"],
                texts["en_subject"],
                f"{texts['ja']}\n\nKinko: {link_base}{notice.path}",
                f"{texts['en']}\n\nKinko: {link_base}{notice.path}",
            )
            outbox.enqueue(
                s,
                vault,
                kind=notice.kind,
                case_id=notice.case.id,
                case_key=notice.case_key,
                to=[user.email],
                cc=[],
                subject=subject,
                body=body,
                now=now,
            )


def _notice_ad(user_id: int, notice: Notice) -> str:
    return f"{user_id}/{notice.kind}/{notice.subject_id}"


def notify_about_user(
    s: Session, holder_id: int, kind: str, actor_id: int | None, ref: str | None, now: datetime
) -> None:
    """Tell ``holder_id`` and the supervisors of their cases, once, that someone else
    (``actor_id``) did something that lets them act as the holder.  Nothing waits for the
    readers: they can revoke what was done."""
    recipients = {holder_id}
    cases = [m.case_id for m in active_memberships(s, holder_id, now)]
    if cases:
        # Every unexpired membership of those cases in one statement; supervisors among them.
        for other in s.scalars(
            select(Membership).where(Membership.case_id.in_(cases), active_membership(now))
        ):
            if "supervisor" in other.role_list:
                recipients.add(other.user_id)
    for uid in sorted(recipients):
        s.add(
            Notification(
                user_id=uid,
                kind=kind,
                subject_user_id=holder_id,
                actor_user_id=actor_id,
                ref=ref,
                created_at=now,
            )
        )


# -- reading ------------------------------------------------------------------------------------

TOKEN_TEXTS = {
    "ja": "{by} さんが {user} さんのトークン {token} を発行しました。"
    "心当たりがなければ取り消してください。",
    "en": "{by} issued token {token} for {user}. Revoke it if you did not expect this.",
}
LIST_MAX = 200


def list_notices(ctx: Ctx, lang: str, unread_only: bool = False) -> dict[str, Any]:
    """The caller's notifications, newest first, with their text in ``lang`` (ja or en)."""
    lang = lang if lang in ("ja", "en") else "ja"
    with ctx.scope("notification.list"), ctx.vault.read_session() as s:
        query = select(Notification).where(Notification.user_id == ctx.principal.user_id)
        if unread_only:
            query = query.where(Notification.read_at.is_(None))
        rows = list(s.scalars(query.order_by(Notification.id.desc()).limit(LIST_MAX)))
        names = user_names(
            s,
            {n.subject_user_id for n in rows if n.subject_user_id is not None}
            | {n.actor_user_id for n in rows if n.actor_user_id is not None},
        )
        keys: dict[str, bytes | None] = {}
        out = []
        for n in rows:
            if n.text_sealed is None:
                kind = TOKEN_KIND if n.kind == STORED_TOKEN_KIND else n.kind
                text = TOKEN_TEXTS[lang].format(
                    by=names.get(n.actor_user_id or -1, "-"),
                    user=names.get(n.subject_user_id or -1, "-"),
                    token=n.ref or "-",
                )
            else:
                kind = n.kind
                text = _open_text(ctx.vault, s, keys, n, lang)
            out.append(
                {
                    "id": n.id,
                    "kind": kind,
                    "created_at": iso(n.created_at),
                    "read": n.read_at is not None,
                    "case_id": n.case_id,
                    "subject_id": n.ref,
                    "text": text,
                }
            )
        return {"notifications": out}


def _open_text(
    vault: Vault, s: Session, keys: dict[str, bytes | None], n: Notification, lang: str
) -> str:
    assert n.case_id is not None
    assert n.text_sealed is not None
    if n.case_id not in keys:
        case = s.get(Case, n.case_id)
        try:
            keys[n.case_id] = (
                vault.keys.case_key(case.id, case.wrapped_key) if case is not None else None
            )
        except (KeyUnavailable, Gone):  # a shredded case: its notices cannot be read
            keys[n.case_id] = None
    key = keys[n.case_id]
    if key is None:
        return "-"
    ad = f"{n.user_id}/{n.kind}/{n.ref}"
    texts = vault.keys.open_record(key, NOTICE_LABEL, ad, n.text_sealed)
    return f"{texts[lang + '_subject']}: {texts[lang]}"


def mark_read(ctx: Ctx, ids: Any) -> dict[str, Any]:
    """Mark the caller's notifications read (all of them when ``ids`` is None)."""
    with ctx.scope("notification.read") as ev, ctx.vault.write_session() as s:
        if ids is not None and (
            not isinstance(ids, list)
            or len(ids) > 1000
            or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)
        ):
            raise BadRequest("ids must be a list of notification ids", code="invalid_ids")
        query = update(Notification).where(
            Notification.user_id == ctx.principal.user_id, Notification.read_at.is_(None)
        )
        if ids is not None:
            query = query.where(Notification.id.in_(ids))
        marked = s.execute(query.values(read_at=ctx.now())).rowcount  # type: ignore[attr-defined]
        ev.allow(f"marked={marked}")
        s.commit()
        return {"marked": marked}
