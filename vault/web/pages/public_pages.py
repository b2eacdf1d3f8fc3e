"""The public page: documents disclosed under the decision rule's second clause (SPEC §4.2),
for anyone, signed in or not."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from vault.services import documents
from vault.web.ui import AnyUi

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/public")
async def public_documents(ui: AnyUi) -> Response:
    # The download links point at the API's public content route: disclosed content needs
    # no purpose and no sign-in, so a plain link is the whole of a download.
    listed = await ui.call(documents.list_public_documents, ui.ctx)
    return await ui.page("public.html", nav="public", documents=listed["documents"])
