"""The case list (the start page) and case creation."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from vault.errors import KinkoError
from vault.services import cases
from vault.services.context import JsonBody
from vault.web.ui import MemberUi

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/")
async def case_list(ui: MemberUi) -> Response:
    listed = await ui.call(cases.list_cases, ui.ctx)
    return await ui.page("cases.html", nav="cases", cases=listed["cases"], error=None, form={})


@router.post("/cases")
async def create_case(ui: MemberUi) -> Response:
    form = await ui.form()
    body = JsonBody(
        {"number": form.get("number", "").strip(), "title": form.get("title", "")}, None
    )
    try:
        created = await ui.call(cases.create_case, ui.ctx, body)
    except KinkoError as exc:
        listed = await ui.call(cases.list_cases, ui.ctx)
        return await ui.page(
            "cases.html",
            status=exc.status,
            nav="cases",
            cases=listed["cases"],
            error=ui.error_text(exc),
            form=form,
        )
    return ui.redirect(f"/ui/cases/{created['id']}")
