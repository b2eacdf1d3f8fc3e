"""Access review (点検・確認, SPEC §6): the reads waiting for a decision, the decision itself,
and the daily report (照会結果リスト) with its CSV download.

Who may see and decide what is the review service's and the guard's business: the pages only
show what the service returns (each pending item says whether it is the caller's own read)
and pass decisions on.  A decision is posted by htmx, which swaps in the decided row, or by a
plain form, which is answered with a redirect back to the list.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from vault.errors import KinkoError
from vault.services import reviews
from vault.services.context import JsonBody
from vault.web.i18n import N_
from vault.web.ui import MemberUi, Ui

router = APIRouter(prefix="/ui", include_in_schema=False)

# The review states of SPEC §6, as people read them.
STATUSES = {
    "pending": N_("Waiting for review"),
    "confirmed": N_("Confirmed"),
    "flagged": N_("Flagged"),
}


def _htmx(ui: Ui) -> bool:
    return ui.request.headers.get("hx-request") == "true"


async def _list_page(
    ui: Ui, *, status: int = 200, error: str | None = None, flash: str | None = None
) -> Response:
    listed = await ui.call(lambda: reviews.list_items(ui.ctx, "pending", include_own=True))
    return await ui.page(
        "reviews.html",
        status=status,
        nav="reviews",
        items=listed["items"],
        error=error,
        flash=flash,
    )


@router.get("/reviews")
async def review_list(ui: MemberUi, done: str | None = None) -> Response:
    flash = None
    if done is not None and done.isdigit():
        flash = ui._("Your decision was saved.")
    return await _list_page(ui, flash=flash)


@router.post("/reviews/{seq}")
async def decide(ui: MemberUi, seq: str) -> Response:
    form = await ui.form()
    verdict = form.get("verdict", "")
    note = form.get("note", "").strip()
    body: dict[str, Any] = {"verdict": verdict}
    if note:
        body["note"] = note
    try:
        item = await ui.call(reviews.submit, ui.ctx, seq, JsonBody(body, None))
    except KinkoError as exc:
        if _htmx(ui) and seq.isascii() and seq.isdigit():
            # The refusal goes into the row's message slot, leaving the note as typed;
            # kinko.js lets htmx swap a retargeted refusal in despite its status.
            answer = await ui.page(
                "partials/review_error.html", status=exc.status, error=ui.error_text(exc)
            )
            answer.headers["HX-Retarget"] = f"#review-msg-{seq}"
            answer.headers["HX-Reswap"] = "innerHTML"
            return answer
        return await _list_page(ui, status=exc.status, error=ui.error_text(exc))
    if _htmx(ui):
        return await ui.page("partials/review_decided.html", item=item)
    return ui.redirect(f"/ui/reviews?done={item['seq']}")


@router.get("/reviews/report")
async def report(ui: MemberUi, date: str | None = None) -> Response:
    rep = await ui.call(reviews.daily_report, ui.ctx, date or None, None)
    return await ui.page("report.html", nav="reviews", report=rep, statuses=STATUSES)


@router.get("/reviews/report.csv")
async def report_csv(ui: MemberUi, date: str | None = None) -> Response:
    rep = await ui.call(reviews.daily_report, ui.ctx, date or None, "csv")
    return Response(
        content=reviews.report_csv(rep),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="shokai-{rep["date"]}.csv"'},
    )
