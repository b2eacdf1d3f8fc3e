"""The audit page (監査) for auditors: event search, review coverage (with its chart), the
latest checkpoint and verifier key, and the export bundle download.

Every figure comes from a service that asks the guard (``require_audit_reader``,
``require_coverage_reader``) and writes its own audit event; the page only parses the form,
lays the answers out and draws the chart.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from vault.errors import BadRequest, Conflict, NotFound
from vault.services import audit_queries, reviews
from vault.services.audit_queries import EventFilters
from vault.web.i18n import N_
from vault.web.ui import MemberUi, Ui

router = APIRouter(prefix="/ui", include_in_schema=False)

FILTER_FIELDS = ("actor", "case_id", "document_id", "action", "decision", "since", "until")
PAGE_FIELDS = (*FILTER_FIELDS, "limit")
# Offered in the action field's list; any other action can still be typed.
ACTIONS = (
    "auth.fail",
    "auth.csrf",
    "auth.sign_in",
    "auth.sign_out",
    "invitation.redeem",
    "user.create",
    "user.update",
    "token.create",
    "case.create",
    "case.transition",
    "member.set",
    "member.remove",
    "document.create",
    "document.write",
    "document.finalize",
    "document.read",
    "document.list",
    "review.submit",
    "audit.query",
    "audit.export",
)
DEFAULT_DAYS = "7"
SVG_NS = "http://www.w3.org/2000/svg"


def _wanted(raw: dict[str, str]) -> dict[str, str]:
    """The search form's non-empty fields (an empty field means no filter)."""
    return {f: raw[f].strip() for f in PAGE_FIELDS if raw.get(f, "").strip()}


def _utc_text(ui: Ui, value: str) -> str:
    """A ``datetime-local`` value (no offset) read as office time, as RFC 3339; anything else
    is passed on unchanged for the service to judge."""
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return value
    if t.tzinfo is None:
        t = t.replace(tzinfo=ui.tz)
    return t.isoformat()


def _filters(ui: Ui, wanted: dict[str, str], cursor: str | None) -> EventFilters:
    since, until = wanted.get("since"), wanted.get("until")
    return EventFilters(
        actor=wanted.get("actor"),
        case_id=wanted.get("case_id"),
        document_id=wanted.get("document_id"),
        action=wanted.get("action"),
        decision=wanted.get("decision"),
        since=_utc_text(ui, since) if since else None,
        until=_utc_text(ui, until) if until else None,
        limit=wanted.get("limit"),
        cursor=cursor or None,
    )


async def _events(ui: Ui, raw: dict[str, str]) -> dict[str, Any]:
    """The search's values for the results part: events, links, or the refusal of a filter."""
    wanted = _wanted(raw)
    cursor = raw.get("cursor") or None
    found: dict[str, Any] = {"events": [], "next_cursor": None}
    error = None
    status = 200
    try:
        found = await ui.call(audit_queries.query_events, ui.ctx, _filters(ui, wanted, cursor))
    except BadRequest as exc:
        # A filter the log cannot use is shown beside the form; refusals of the caller
        # (403) are not caught and become the error page.
        error, status = ui.error_text(exc), exc.status
    next_query = None
    if found["next_cursor"]:
        next_query = urlencode({**wanted, "cursor": found["next_cursor"]})
    return {
        "events": found["events"],
        "next_query": next_query,
        "first_query": urlencode(wanted) if cursor else None,
        "query": urlencode(wanted),
        "wanted": wanted,
        "events_error": error,
        "events_status": status,
    }


async def _optional_text(ui: Ui, fn: Any) -> tuple[str | None, str | None]:
    """A text the page shows if it exists (checkpoint, key): (text, None) or (None, why not)."""
    try:
        return await ui.call(fn, ui.ctx), None
    except NotFound as exc:
        return None, ui.error_text(exc)


@router.get("/audit")
async def audit_page(ui: MemberUi) -> Response:
    raw = dict(ui.request.query_params)
    results = await _events(ui, raw)
    days = raw.get("older_than_days") or DEFAULT_DAYS
    coverage_error = None
    try:
        coverage = await ui.call(reviews.coverage, ui.ctx, days)
    except BadRequest as exc:
        coverage_error = ui.error_text(exc)
        days = DEFAULT_DAYS
        coverage = await ui.call(reviews.coverage, ui.ctx, days)
    checkpoint, checkpoint_missing = await _optional_text(ui, audit_queries.latest_checkpoint)
    key, key_missing = await _optional_text(ui, audit_queries.verifier_key)
    return await ui.page(
        "audit.html",
        status=results["events_status"] if coverage_error is None else 400,
        nav="audit",
        actions=ACTIONS,
        coverage=coverage,
        coverage_error=coverage_error,
        days=days,
        chart_alt=_chart_alt(ui, coverage, days),
        checkpoint=checkpoint,
        checkpoint_missing=checkpoint_missing,
        key=key,
        key_missing=key_missing,
        **results,
    )


@router.get("/audit/events")
async def audit_events(ui: MemberUi) -> Response:
    """The results part alone, for the search form's htmx request."""
    results = await _events(ui, dict(ui.request.query_params))
    answer = await ui.page("partials/audit_events.html", status=results["events_status"], **results)
    # The address bar shows the full page of this search, so it can be kept or shared.
    query = results["query"]
    answer.headers["HX-Push-Url"] = ui.root + "/ui/audit" + (f"?{query}" if query else "")
    return answer


# -- coverage chart ----------------------------------------------------------------------------

BARS = (
    ("reads", N_("Reads"), "#0b5cad"),
    ("reviewed", N_("Reviewed"), "#1a6b2f"),
    ("flagged", N_("Flagged"), "#a4161a"),
    ("unreviewed_older", N_("Unreviewed, older than %(days)s days"), "#8a5a00"),
)


def _bar_label(ui: Ui, label: str, days: str) -> str:
    text = ui._(label)
    return text % {"days": days} if "%(days)s" in label else text


def _chart_alt(ui: Ui, coverage: dict[str, Any], days: str) -> str:
    parts = [f"{_bar_label(ui, label, days)}: {coverage[key]}" for key, label, _c in BARS]
    return ui._("Review coverage") + " — " + ", ".join(parts)


def coverage_svg(ui: Ui, coverage: dict[str, Any], days: str) -> bytes:
    """A horizontal bar chart of the coverage figures, drawn here as SVG.

    Colours are presentation attributes, not ``style``: the pages' CSP refuses inline style,
    in a served SVG as anywhere else.  The figures are written beside the bars as text, so
    the chart never relies on colour or length alone.
    """
    width, left, bar_h, gap, top = 560, 230, 26, 14, 36
    height = top + len(BARS) * (bar_h + gap) + 10
    scale = max(coverage["reads"], 1)
    title = _chart_alt(ui, coverage, days)
    svg = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "width": str(width),
            "height": str(height),
            "viewBox": f"0 0 {width} {height}",
            "role": "img",
            "aria-label": title,
            "font-family": "sans-serif",
            "font-size": "14",
        },
    )
    ET.SubElement(svg, "title").text = title
    ET.SubElement(svg, "rect", x="0", y="0", width=str(width), height=str(height), fill="#ffffff")
    share = coverage["share_reviewed"]
    heading = ui._("Share reviewed") + ": " + ("-" if share is None else f"{share:.0%}")
    ET.SubElement(
        svg, "text", {"x": "8", "y": "22", "fill": "#1b1f24", "font-weight": "bold"}
    ).text = heading
    room = width - left - 70
    for i, (key, label, colour) in enumerate(BARS):
        y = top + i * (bar_h + gap)
        value = int(coverage[key])
        length = round(room * value / scale) if value else 0
        ET.SubElement(svg, "text", x="8", y=str(y + 18), fill="#1b1f24").text = _bar_label(
            ui, label, days
        )
        ET.SubElement(
            svg,
            "rect",
            {
                "x": str(left),
                "y": str(y),
                "width": str(max(length, 1)),
                "height": str(bar_h),
                "fill": colour,
                "data-figure": key,
                "data-value": str(value),
            },
        )
        ET.SubElement(
            svg, "text", x=str(left + length + 6), y=str(y + 18), fill="#1b1f24"
        ).text = str(value)
    return bytes(ET.tostring(svg, encoding="utf-8", xml_declaration=True))


@router.get("/audit/coverage.svg")
async def coverage_chart(ui: MemberUi, older_than_days: str | None = None) -> Response:
    days = older_than_days or DEFAULT_DAYS
    coverage = await ui.call(reviews.coverage, ui.ctx, days)
    return Response(coverage_svg(ui, coverage, days), media_type="image/svg+xml; charset=utf-8")


# -- export ------------------------------------------------------------------------------------


# One export at a time on a node: each snapshots the whole log to disk, and the worker
# threads it would hold are the ones every other request (sign-in included) needs.
_EXPORTING = threading.Lock()
# Folders of exports whose answer never finished (a crash) are removed after this long.
_STALE_EXPORT = 3600.0
_EXPORT_PREFIX = "web-export-"


def _export_dir(data_dir: Path) -> Path:
    """A fresh folder for one export, in the data directory rather than /tmp, which is often
    memory (tmpfs): the log's copy must not take the server's memory."""
    base = data_dir / "exports"
    base.mkdir(mode=0o700, exist_ok=True)
    now = time.time()
    for old in base.glob(_EXPORT_PREFIX + "*"):
        try:
            if now - old.stat().st_mtime > _STALE_EXPORT:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix=_EXPORT_PREFIX, dir=base))


def _stream_and_remove(path: Path, workdir: Path) -> Iterator[bytes]:
    """The archive's bytes; its folder is removed when the answer ends, however it ends."""
    try:
        with path.open("rb") as f:
            while chunk := f.read(256 * 1024):
                yield chunk
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@router.post("/audit/export")
async def export(ui: MemberUi) -> Response:
    """The audit bundle as a tar.gz download.

    A POST with the form's CSRF token, not a GET: an export snapshots the whole log to disk,
    which no link, prefetch or foreign page should be able to set off.
    """
    await ui.form()
    if not _EXPORTING.acquire(blocking=False):
        raise Conflict("another export is running; try again when it is done", code="export_busy")
    workdir = _export_dir(ui.vault.settings.data_dir)
    try:
        archive = await ui.call(audit_queries.export_archive, ui.ctx, workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        _EXPORTING.release()
    return StreamingResponse(
        _stream_and_remove(archive.path, workdir),
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{archive.name}"',
            "Content-Length": str(archive.path.stat().st_size),
        },
    )
