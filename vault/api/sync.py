"""Sync route: the manifest a workstation client polls to mirror what its user may read."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Header, Response

from vault.api.deps import UserCtx
from vault.api.openapi import errors
from vault.api.schemas import SyncManifest
from vault.services import sync

router = APIRouter(prefix="/api/v1/sync", tags=["sync"])

MANIFEST_DESCRIPTION = """\
Every document the caller may read right now in the cases they belong to (unexpired
memberships), at the version `GET /api/v1/documents/{id}/content` would serve without
`version`: the latest for readers by case role (`rule` 1), the final version for readers of a
disclosed document only (`rule` 2; drafts are not mentioned).  Disclosed documents of cases the
caller does not belong to are not included (see `/api/v1/public/documents`).  `cases` lists the
caller's cases with the stage in force and the classes the caller may write now.  Crypto-shredded
cases are left out.  Admin and auditor never read content, so they get no documents (and only
the cases they are members of).

Poll with `If-None-Match: <ETag of the last answer>`: while nothing the answer is computed from
has changed the server answers `304 Not Modified` with no body and writes no audit event
(SPEC §5).  The ETag is a strong validator over what the answer depends on (the caller, their
unexpired memberships and roles, the stage in force in each case, a per-case revision the
database bumps on every change to the case's documents, and the policies in force), so it
changes with any new version or document, new final version, stage change (a scheduled
transition counts from its instant, with no other request needed), membership change, removal
or expiry, and policy change; a change in a case the caller does not belong to leaves it alone.
A document or case that disappears from the answer is one the caller may no longer read.
"""

MANIFEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The manifest; audited as `sync.manifest`.",
        "headers": {
            "ETag": {"description": "Strong validator.", "schema": {"type": "string"}},
            "Cache-Control": {"description": "`no-store`", "schema": {"type": "string"}},
        },
    },
    304: {
        "description": "Nothing changed since the ETag in If-None-Match; no body, not audited.",
        "headers": {"ETag": {"schema": {"type": "string"}}},
    },
}


@router.get(
    "/manifest",
    response_model=SyncManifest,
    response_model_by_alias=True,
    responses={**MANIFEST_RESPONSES, **errors()},
    summary="What the caller's sync client must mirror",
    description=MANIFEST_DESCRIPTION,
)
def manifest(
    ctx: UserCtx,
    if_none_match: str | None = Header(
        None,
        alias="If-None-Match",
        description="The ETag of a previous answer; 304 if it is still current.",
    ),
) -> Response:
    answer = sync.manifest(ctx, if_none_match)
    headers = {"ETag": answer.etag, "Cache-Control": "no-store"}
    if answer.body is None:
        return Response(status_code=304, headers=headers)
    # orjson: the same compact UTF-8 bytes as json.dumps, in a fraction of the time.
    raw = orjson.dumps(answer.body)
    return Response(raw, media_type="application/json", headers=headers)
