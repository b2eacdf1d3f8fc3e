"""Access review (SPEC §6): listing, decisions, daily reports and coverage.

Review items are derived from the audit log, never written by the read path: ``sync_index``
folds every new allowed ``document.read`` event with reason ``ok`` (a non-disclosed document)
into ``review_items`` and moves a cursor, in the audit store itself.  Reads therefore stay as
cheap as before, and the index can always be rebuilt from the log.

Who decides an item: an auditor (any case) or a supervisor of the item's case *now*, and never
the reader (four eyes).  So that a reviewer can judge a read without looking anything up, every
item also names the case number, the document's class and, where the guard lets the caller see
the document's metadata, its title (unsealed here, for that caller only); times are given in
KINKO_TIMEZONE, with their offset.

A decision is checked, recorded as its ``review.submit`` event and applied in one write
transaction of the audit store, so two reviewers deciding at once cannot both succeed and a
decision never exists without its event.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError

from vault.audit.log import format_time
from vault.audit.reviews import STATUSES, ReviewItem, sync_index
from vault.audit.scope import AuditScope
from vault.authz import CaseView, Principal
from vault.catalog.models import Case, Document
from vault.catalog.queries import active_memberships, membership_grants, stage_and_roles
from vault.catalog.types import utcnow
from vault.core import Vault
from vault.errors import AuditUnavailable, BadRequest, Conflict, NotFound
from vault.keys import is_shredded
from vault.services.context import Ctx, JsonBody, view_of
from vault.services.schemas import ReviewDecision

# Fields of an item in ``GET /api/v1/reviews`` and of a report row (and the CSV column order:
# what the document is stands beside its ids, so a reader of the spreadsheet needs no lookup).
LIST_FIELDS = (
    "seq",
    "actor",
    "case_id",
    "case_number",
    "document_id",
    "class",
    "title",
    "purpose",
    "time",
    "status",
    "reads",
    "token_issuer",
    "membership_granted_by",
)
REPORT_FIELDS = (
    "seq",
    "actor",
    "case_id",
    "case_number",
    "document_id",
    "class",
    "title",
    "purpose",
    "time",
    "reads",
    "status",
    "reviewer",
    "verdict",
    "note",
    "decided_at",
    "token_issuer",
    "membership_granted_by",
)
# Fields filled from the catalog, not from the review index.
_CATALOG_FIELDS = frozenset({"case_number", "class", "title"})
# Time fields, stored in UTC and shown in KINKO_TIMEZONE.
_TIME_FIELDS = ("time", "decided_at")
# Documents looked up per statement (SQLite binds at most a few thousand parameters).
_LOOKUP_CHUNK = 500
# The operator at the data directory (``kinko review report``) sees what an auditor sees: the
# metadata of every case, titles included, and never content.  Its title decisions still go
# through the guard, as an auditor's would.
OPERATOR = Principal(user_id=None, name=None, roles=frozenset({"auditor"}))
MAX_OLDER_THAN_DAYS = 36500
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SEQ_RE = re.compile(r"[0-9]{1,18}")
_INT_RE = re.compile(r"[0-9]{1,9}")


def sync(vault: Vault) -> int:
    """Bring the review index up to date with the log before answering from it."""
    return sync_index(vault.audit_engine, ZoneInfo(vault.settings.timezone))


# -- who may review what -----------------------------------------------------------------------


def supervised_cases(ctx: Ctx) -> set[str]:
    """Cases where the caller's unexpired case roles let them review reads (supervisors)."""
    with ctx.vault.read_session() as s:
        memberships = active_memberships(s, ctx.principal.user_id, ctx.now())
    guard = ctx.vault.guard
    return {m.case_id for m in memberships if guard.reviews_in(m.role_list)}


def _reviewer_scope(ctx: Ctx) -> set[str] | None:
    """None for an auditor (every case), else the supervised cases; 403 if neither."""
    guard = ctx.vault.guard
    if guard.reviews_everywhere(ctx.principal):
        return None
    return guard.review_scope(ctx.principal, supervised_cases(ctx))


def _row(item: Any, fields: Sequence[str]) -> dict[str, Any]:
    return {f: None if f in _CATALOG_FIELDS else getattr(item, f, None) for f in fields}


def _local(value: str | None, tz: ZoneInfo) -> str | None:
    """An RFC 3339 UTC time of the index as ISO 8601 in ``tz`` with its offset, to the second."""
    if value is None:
        return None
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t.astimezone(tz).isoformat(timespec="seconds")


def _described(vault: Vault, viewer: Principal, items: list[dict[str, Any]]) -> None:
    """Fill case number, class and title (where ``viewer`` may see it); show local times.

    Titles are sealed under their case key; each is opened here only after the guard decided,
    from the viewer's view of the case now, that the viewer may see the document's metadata.
    A document of a crypto-shredded case has no title any more.
    """
    tz = ZoneInfo(vault.settings.timezone)
    for item in items:
        for f in _TIME_FIELDS:
            if f in item:
                item[f] = _local(item[f], tz)
    doc_ids = sorted({i["document_id"] for i in items if i["document_id"]})
    if not doc_ids:
        return
    guard = vault.guard
    now = utcnow()
    found: dict[str, tuple[Document, Case]] = {}
    views: dict[str, CaseView] = {}
    with vault.read_session() as s:
        for start in range(0, len(doc_ids), _LOOKUP_CHUNK):
            chunk = doc_ids[start : start + _LOOKUP_CHUNK]
            rows = s.execute(
                select(Document, Case)
                .join(Case, Case.id == Document.case_id)
                .where(Document.id.in_(chunk))
            )
            found.update({doc.id: (doc, case) for doc, case in rows})
        for case_id in sorted({case.id for _doc, case in found.values()}):
            stage, roles = stage_and_roles(s, case_id, viewer.user_id, now)
            views[case_id] = guard.case_view(viewer, case_id, stage, roles)
    for item in items:
        hit = found.get(item["document_id"])
        if hit is None:
            continue
        doc, case = hit
        item["case_number"] = case.number
        item["class"] = doc.doc_class
        shown = guard.title_visible(views[case.id], doc.doc_class, doc.final_version)
        if shown and not is_shredded(case.wrapped_key):
            key = vault.keys.case_key(case.id, case.wrapped_key)
            item["title"] = vault.keys.open_title(key, doc.id, doc.title_sealed)


def _with_grants(vault: Vault, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add who granted each reader's membership in the item's case (from the catalog now).

    A membership an admin granted is shown beside the reads it made possible, so a reviewer
    notices access that no supervisor of the case arranged.
    """
    pairs = {(i["case_id"], i["actor"]) for i in items if i["case_id"] and i["actor"]}
    if not pairs:
        return items
    with vault.read_session() as s:
        grants = membership_grants(s, pairs)
    for item in items:
        item["membership_granted_by"] = grants.get((item["case_id"], item["actor"]))
    return items


# -- listing -----------------------------------------------------------------------------------


def list_items(ctx: Ctx, status: str | None, *, include_own: bool = False) -> dict[str, Any]:
    """The review items the caller may decide (the API's list).

    With ``include_own`` (the web page), the caller's own reads in the cases they review are
    listed too, each item saying ``"own": True`` or ``False`` as the guard's four-eyes rule
    decides, so the page can show them as waiting for another reviewer without offering them.
    """
    with ctx.scope("review.list") as ev:
        cases = _reviewer_scope(ctx)
        wanted = "pending" if status is None else status
        if wanted not in (*STATUSES, "all"):
            raise BadRequest(
                "status must be pending, confirmed, flagged or all", code="invalid_status"
            )
        sync(ctx.vault)
        stmt = select(ReviewItem)
        if not include_own:
            # Nobody reviews their own reads, so they are not offered to them either.
            stmt = stmt.where(ReviewItem.actor != ctx.principal.name)
        if wanted != "all":
            stmt = stmt.where(ReviewItem.status == wanted)
        if cases is not None:
            stmt = stmt.where(ReviewItem.case_id.in_(sorted(cases)))
        guard = ctx.vault.guard
        items: list[dict[str, Any]] = []
        with ctx.vault.audit_engine.connect() as conn:
            for r in conn.execute(stmt.order_by(ReviewItem.seq)):
                # Reads the caller made through someone's token, or made through a token the
                # caller issued, are theirs too: the guard refuses them as own reads.
                own = guard.own_read(ctx.principal, r.actor, r.token_issuer)
                if include_own:
                    items.append({**_row(r, LIST_FIELDS), "own": own})
                elif not own:
                    items.append(_row(r, LIST_FIELDS))
        _with_grants(ctx.vault, items)
        _described(ctx.vault, ctx.principal, items)
        ev.allow()
        return {"items": items}


# -- deciding ----------------------------------------------------------------------------------


def _parse_decision(body: JsonBody) -> tuple[str, str | None]:
    req = body.parse(ReviewDecision)
    verdict, note = req.verdict, req.note
    if verdict == "flagged" and (note is None or not note.strip()):
        raise BadRequest("a flagged read needs a note saying why", code="note_required")
    return str(verdict), (note or None)


def submit(ctx: Ctx, raw_seq: str, body: JsonBody) -> dict[str, Any]:
    vault = ctx.vault
    with ctx.scope("review.submit") as ev:
        sync(vault)
        not_found = NotFound("review item not found", code="review_not_found")
        if not _SEQ_RE.fullmatch(raw_seq):
            raise not_found
        seq = int(raw_seq)
        with vault.audit_engine.connect() as conn:
            item = conn.execute(select(ReviewItem).where(ReviewItem.seq == seq)).first()
        if item is None:
            raise not_found
        # The log names what was probed, as for document reads; the caller sees only the answer.
        ev.set(case_id=item.case_id, document_id=item.document_id, target=item.actor)
        view = None
        if item.case_id is not None:
            with vault.read_session() as s:
                view = view_of(ctx, s, item.case_id)
        vault.guard.require_reviewer(ctx.principal, view, item.actor, item.token_issuer)
        verdict, note = _parse_decision(body)
        return _decide(ctx, ev, seq, verdict, note)


def _decide(ctx: Ctx, ev: AuditScope, seq: int, verdict: str, note: str | None) -> dict[str, Any]:
    """Check, record and apply a decision in one write transaction of the audit store.

    ``BEGIN IMMEDIATE`` serialises deciders: the second of two concurrent reviewers finds the
    item decided and gets 409 (its refusal is logged by the scope after the rollback).  The
    ``review.submit`` event is appended inside the same transaction, before the item changes,
    so the decision and its event commit together or not at all.
    """
    writer = ctx.vault.audit_engine.execution_options(kinko_write=True)
    try:
        with writer.begin() as conn:
            status = conn.execute(
                select(ReviewItem.status).where(ReviewItem.seq == seq)
            ).scalar_one()
            if status != "pending":
                raise Conflict(f"this read was already reviewed ({status})", code="already_decided")
            # AuditLog.insert_events is the in-transaction append (events and the Merkle nodes they
            # complete); the audit writer thread cannot be used here, as this transaction holds
            # the store's write lock.
            event = ctx.vault.audit.insert_events(conn, [ev.record("allow", verdict)])[0]
            conn.execute(
                update(ReviewItem)
                .where(ReviewItem.seq == seq)
                .values(
                    status=verdict,
                    reviewer=ctx.principal.name,
                    verdict=verdict,
                    note=note,
                    decided_at=event["time"],
                )
            )
    except SQLAlchemyError as exc:
        # The audit store could not be written: fail closed, nothing was decided.
        raise AuditUnavailable(f"the audit log could not be written: {exc}") from exc
    ev.event = event
    with ctx.vault.audit_engine.connect() as conn:
        item = conn.execute(select(ReviewItem).where(ReviewItem.seq == seq)).one()
    items = _with_grants(ctx.vault, [_row(item, REPORT_FIELDS)])
    _described(ctx.vault, ctx.principal, items)
    return items[0]


# -- daily report ------------------------------------------------------------------------------


def parse_day(value: str | None, tz: ZoneInfo) -> date:
    """A YYYY-MM-DD date; today in ``tz`` when omitted."""
    if value is None:
        return datetime.now(tz).date()
    if not _DATE_RE.fullmatch(value):
        raise BadRequest("date must be YYYY-MM-DD", code="invalid_date")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"not a calendar date: {value}", code="invalid_date") from None
    # The report spans the day up to the next midnight; at the calendar's edge that midnight
    # does not exist (9999-12-31), and no procurement record lives there anyway.
    if not 1970 <= day.year <= 9000:
        raise BadRequest("date out of range (years 1970-9000)", code="invalid_date")
    return day


def report(
    vault: Vault, day: date, cases: Iterable[str] | None = None, *, viewer: Principal
) -> dict[str, Any]:
    """The day's review items (first read on ``day`` in KINKO_TIMEZONE) with their state.

    ``cases`` restricts the report to those cases (None: every case); ``viewer`` is who the
    report is for, which decides where titles are shown.  The day is turned into
    a UTC time range with today's time-zone setting, so the report always means a calendar day
    in the configured zone (also across a daylight-saving change).
    """
    tz_name = vault.settings.timezone
    tz = ZoneInfo(tz_name)
    start = datetime.combine(day, dtime.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), dtime.min, tzinfo=tz)
    stmt = select(ReviewItem).where(
        ReviewItem.time >= format_time(start), ReviewItem.time < format_time(end)
    )
    if cases is not None:
        stmt = stmt.where(ReviewItem.case_id.in_(sorted(cases)))
    with vault.audit_engine.connect() as conn:
        items = [_row(r, REPORT_FIELDS) for r in conn.execute(stmt.order_by(ReviewItem.seq))]
    _with_grants(vault, items)
    _described(vault, viewer, items)
    return {"date": day.isoformat(), "timezone": tz_name, "items": items}


def report_csv(rep: dict[str, Any]) -> bytes:
    """The report as a spreadsheet opens it: RFC 4180 CSV, always with the header row.

    UTF-8 with a byte order mark, because Japanese Excel reads a CSV without one as Shift_JIS
    and turns every title and purpose into mojibake; CRLF line ends and minimal quoting, as
    Excel writes them.  A title the reader may not see is an empty cell.
    """
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(REPORT_FIELDS)
    for item in rep["items"]:
        w.writerow(["" if item[f] is None else item[f] for f in REPORT_FIELDS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def daily_report(ctx: Ctx, raw_date: str | None, fmt: str | None) -> dict[str, Any]:
    """The report for the caller (supervisor: their cases; auditor: all).

    ``fmt`` (the ``format`` query parameter) is only checked here, inside the audit scope, so a
    bad value is a logged 400; the route renders JSON or CSV.
    """
    with ctx.scope("review.report") as ev:
        cases = _reviewer_scope(ctx)
        if fmt not in (None, "json", "csv"):
            raise BadRequest("format must be json or csv", code="invalid_format")
        day = parse_day(raw_date, ZoneInfo(ctx.vault.settings.timezone))
        sync(ctx.vault)
        rep = report(ctx.vault, day, cases, viewer=ctx.principal)
        ev.allow()
        return rep


# -- coverage ----------------------------------------------------------------------------------


def coverage(ctx: Ctx, raw_days: str | None) -> dict[str, Any]:
    with ctx.scope("review.coverage") as ev:
        ctx.vault.guard.require_coverage_reader(ctx.principal)
        if raw_days is None:
            days = 7
        elif _INT_RE.fullmatch(raw_days) and int(raw_days) <= MAX_OLDER_THAN_DAYS:
            days = int(raw_days)
        else:
            raise BadRequest(
                f"older_than_days must be an integer from 0 to {MAX_OLDER_THAN_DAYS}",
                code="invalid_older_than_days",
            )
        sync(ctx.vault)
        cutoff = format_time(datetime.now(UTC) - timedelta(days=days))
        with ctx.vault.audit_engine.connect() as conn:
            reads = conn.execute(select(func.count()).select_from(ReviewItem)).scalar_one()
            by_status = dict(
                conn.execute(
                    select(ReviewItem.status, func.count()).group_by(ReviewItem.status)
                ).all()
            )
            older = conn.execute(
                select(func.count())
                .select_from(ReviewItem)
                .where(ReviewItem.status == "pending", ReviewItem.time < cutoff)
            ).scalar_one()
        reviewed = int(by_status.get("confirmed", 0)) + int(by_status.get("flagged", 0))
        ev.allow()
        return {
            "reads": int(reads),
            "reviewed": reviewed,
            # No reads, no share: null rather than a 100 % that nobody earned.
            "share_reviewed": reviewed / reads if reads else None,
            "flagged": int(by_status.get("flagged", 0)),
            "unreviewed_older": int(older),
        }
