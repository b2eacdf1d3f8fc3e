"""What every service call receives: the vault, the caller and the request's audit identity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.audit.records import RequestInfo
from vault.audit.scope import AuditScope
from vault.authz import CaseView, Principal
from vault.catalog.models import Case, Membership, Transition
from vault.catalog.types import utcnow
from vault.core import Vault
from vault.errors import BadRequest, NotFound
from vault.services.errors import translate


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
            self.info,
            self.principal.name,
            action,
            translate=translate,
            **fields,
        )

    @staticmethod
    def now() -> datetime:
        return utcnow()


def _stage_query(case_id: str, at: datetime) -> Any:
    # The stage in force at ``at``: the latest non-cancelled transition with ``at <= t``.
    return (
        select(Transition.stage)
        .where(
            Transition.case_id == case_id,
            Transition.cancelled_at.is_(None),
            Transition.at <= at,
        )
        .order_by(Transition.at.desc(), Transition.created_at.desc())
        .limit(1)
    )


def stage_and_roles(
    session: Session, case_id: str, user_id: int | None, at: datetime
) -> tuple[str, list[str]]:
    """The stage in force at ``at`` and the caller's unexpired case roles, in one round trip.

    This runs on every request that touches a case, so both answers come from one statement.
    Expired memberships count as absent.  Every case is created with its drafting transition,
    so a missing stage only happens in a broken catalog.
    """
    roles_query = (
        select(Membership.roles)
        .where(
            Membership.case_id == case_id,
            Membership.user_id == (user_id if user_id is not None else -1),
            (Membership.expires_at.is_(None)) | (Membership.expires_at > at),
        )
        .scalar_subquery()
    )
    stage, roles = session.execute(
        select(_stage_query(case_id, at).scalar_subquery(), roles_query)
    ).one()
    return stage or "drafting", [r for r in (roles or "").split(",") if r]


def load_case(session: Session, case_id: str) -> Case:
    case = session.get(Case, case_id) if len(case_id) <= 64 else None
    if case is None:
        raise NotFound("case not found", code="case_not_found")
    return case


def view_of(ctx: Ctx, session: Session, case_id: str, at: datetime | None = None) -> CaseView:
    at = at or ctx.now()
    stage, roles = stage_and_roles(session, case_id, ctx.principal.user_id, at)
    return ctx.vault.guard.case_view(ctx.principal, case_id, stage, roles)


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")
