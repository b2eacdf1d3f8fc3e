"""Access review routes (SPEC §6, §7 ``/api/v1/reviews*``): thin, the service does the work."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from vault.api.deps import Body, UserCtx, body_schema
from vault.api.openapi import answers
from vault.api.schemas import ReviewCoverage, ReviewDecided, ReviewList, ReviewReport
from vault.services import reviews as service
from vault.services.schemas import ReviewDecision

router = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])


def wants_csv(accept: str | None) -> bool:
    """Whether the Accept header prefers ``text/csv`` to JSON (ties go to the explicit type)."""
    if not accept:
        return False
    best: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        best[media] = max(best.get(media, 0.0), q)
    csv_q = best.get("text/csv", 0.0)
    json_q = best.get("application/json", 0.0)
    return csv_q > 0 and csv_q >= json_q


@router.get("", **answers(ReviewList, 400, 403))
def list_reviews(ctx: UserCtx, status: str | None = None) -> dict[str, Any]:
    return service.list_items(ctx, status)


@router.get(
    "/report",
    **answers(
        ReviewReport,
        400,
        403,
        extra={
            200: {
                "model": ReviewReport,
                "description": "JSON, or CSV (with a header row) for `Accept: text/csv` or "
                "`format=csv`.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    ),
)
def review_report(
    ctx: UserCtx,
    request: Request,
    date: str | None = None,
    fmt: Annotated[str | None, Query(alias="format")] = None,
) -> Response:
    rep = service.daily_report(ctx, date, fmt)
    if fmt == "csv" or (fmt is None and wants_csv(request.headers.get("accept"))):
        return Response(
            content=service.report_csv(rep),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="kinko-review-{rep["date"]}.csv"'
            },
        )
    return JSONResponse(rep)


@router.get("/coverage", **answers(ReviewCoverage, 400, 403))
def review_coverage(ctx: UserCtx, older_than_days: str | None = None) -> dict[str, Any]:
    return service.coverage(ctx, older_than_days)


@router.post(
    "/{seq}",
    openapi_extra=body_schema(ReviewDecision),
    **answers(ReviewDecided, 400, 403, 404, 409),
)
def submit_review(ctx: UserCtx, seq: str, body: Body) -> dict[str, Any]:
    return service.submit(ctx, seq, body)
