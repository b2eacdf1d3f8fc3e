"""What every service call receives: the vault, the caller and the request's audit identity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.orm import Session

from vault.audit.records import RequestInfo
from vault.audit.scope import AuditScope
from vault.authz import CaseView, Principal
from vault.catalog.models import Case, Document
from vault.catalog.queries import (
    MAX_ID,
    DocumentRef,
    find_case,
    find_document,
    find_document_ref,
    stage_and_roles,
)
from vault.catalog.types import utcnow
from vault.core import Vault
from vault.errors import BadRequest, NotFound
from vault.services.errors import translate
from vault.services.schemas import RequestBody

B = TypeVar("B", bound=RequestBody)


@dataclass(frozen=True)
class JsonBody:
    """A parsed JSON object, or the reason it could not be parsed.

    Bodies are parsed here rather than by FastAPI's model binding so that a malformed body
    reaches the service, which records the refusal in the audit log like any other.
    """

    data: dict[str, Any] | None
    problem: str | None

    def require(self) -> dict[str, Any]:
        if self.data is None:
            raise BadRequest(self.problem or "a JSON object is required", code="invalid_json")
        return self.data

    def parse(self, model: type[B]) -> B:
        """The body validated by its schema; 400 with the failing field's code otherwise."""
        data = self.require()
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err.get("loc") else ""
            if err.get("type") == "extra_forbidden":
                raise BadRequest(f"unknown field: {field}", code="unknown_field") from None
            code = model.codes.get(field, "invalid_body")
            raise BadRequest(f"{field}: {err.get('msg')}", code=code) from None


@dataclass
class Ctx:
    vault: Vault
    principal: Principal
    info: RequestInfo
    # The raw Idempotency-Key header; services parse it inside their audit scope.
    idempotency_key: str | None = None

    def scope(self, action: str, **fields: Any) -> AuditScope:
        return AuditScope(
            self.vault.audit,
            self.info.with_issuer(self.principal.token_issuer),
            self.principal.name,
            action,
            translate=translate,
            **fields,
        )

    @staticmethod
    def now() -> datetime:
        return utcnow()


def view_of(ctx: Ctx, session: Session, case_id: str, at: datetime | None = None) -> CaseView:
    at = at or ctx.now()
    stage, roles = stage_and_roles(session, case_id, ctx.principal.user_id, at)
    return ctx.vault.guard.case_view(ctx.principal, case_id, stage, roles)


def case_and_view(
    ctx: Ctx, session: Session, case_id: str, at: datetime | None = None
) -> tuple[Case | None, CaseView | None]:
    """The case and the caller's view of it; both None when it does not exist.

    The view is computed for a missing case too (and thrown away), so that "does not exist"
    and "exists but hidden" cost the same statements and a non-member cannot tell them apart
    by the time the 404 takes.
    """
    case = find_case(session, case_id)
    view = view_of(ctx, session, case.id if case is not None else case_id[:MAX_ID], at)
    return (case, view) if case is not None else (None, None)


def load_case(session: Session, case_id: str) -> Case:
    case = find_case(session, case_id)
    if case is None:
        raise NotFound("case not found", code="case_not_found")
    return case


def visible_case(
    ctx: Ctx, session: Session, case_id: str, at: datetime | None = None
) -> tuple[Case, CaseView]:
    """A case the caller may see, with their view of it; 404 otherwise (same work either way)."""
    case, maybe_view = case_and_view(ctx, session, case_id, at)
    view = ctx.vault.guard.require_case_found(maybe_view)
    if case is None:  # unreachable: no view without a case; keeps the type checker informed
        raise NotFound("case not found", code="case_not_found")
    return case, view


def document_ref_and_view(
    ctx: Ctx, session: Session, doc_id: str, at: datetime | None = None
) -> tuple[DocumentRef | None, CaseView | None]:
    """The document's decision columns and the caller's view of its case; (None, None) when
    it is missing.

    As for cases, a missing document still costs the view's statement, so a 404 for a hidden
    document and for one that never existed take the same time.
    """
    ref = find_document_ref(session, doc_id)
    view = view_of(ctx, session, ref.case_id if ref is not None else doc_id[:MAX_ID], at)
    return (ref, view) if ref is not None else (None, None)


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def visible_document(
    ctx: Ctx, s: Session, ev: AuditScope, doc_id: str
) -> tuple[Document, Case, CaseView]:
    """The document, its case and the caller's view; 404 when missing or not to be known.

    The event names the case and class even when the answer is 404: only auditors see the
    log, and a denied attempt must be findable by case.  The rows themselves are loaded only
    once the caller may know of the document.
    """
    ref, maybe_view = document_ref_and_view(ctx, s, doc_id)
    if ref is not None:
        ev.set(case_id=ref.case_id, cls=ref.cls)
    view = ctx.vault.guard.require_document(
        maybe_view, ref.cls if ref else None, ref.final_version if ref else None
    )
    found = find_document(s, ref.id) if ref is not None else None
    if found is None:  # deleted between the two statements (or unreachable): the same 404
        raise NotFound("document not found", code="document_not_found")
    doc, case = found
    return doc, case, view
