"""Procurement cases: creation, listing, members and stage transitions."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.audit.log import parse_time
from vault.authz import CaseView
from vault.catalog.models import Case, Membership, Transition, User
from vault.catalog.queries import evaluator_ids, latest_transition, member_cases, user_names
from vault.domain import (
    CASE_ROLES,
    STAGE_INDEX,
    DomainError,
    validate_case_number,
    validate_case_roles,
    validate_stage,
    validate_title,
)
from vault.errors import BadRequest, Conflict, NotFound
from vault.keys import is_shredded
from vault.services import idempotency
from vault.services.context import Ctx, JsonBody, iso, view_of, visible_case
from vault.services.schemas import CaseCreate, MemberSet, TransitionCreate

# A transition "now" may be a little in the past by the time it reaches the server; anything
# older would rewrite history that readers have already been judged against.
_PAST_TOLERANCE = timedelta(seconds=5)


def create_case(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    with ctx.scope("case.create") as ev:
        ctx.vault.guard.require_case_creator(ctx.principal)
        req = body.parse(CaseCreate)
        try:
            number = validate_case_number(req.number)
            title = validate_title(req.title)
        except DomainError as e:
            raise BadRequest(e.message, code=e.code) from None
        idem_key = idempotency.parse_key(ctx.idempotency_key)
        idem_scope = "case.create"
        fp = idempotency.fingerprint(ctx, "case.create", number, title)
        case_id = uuid.uuid4().hex
        now = ctx.now()
        with ctx.vault.write_session() as s:
            rec = idempotency.lookup(s, ctx, idem_key, idem_scope, fp)
            if rec is not None:
                ev.set(case_id=rec.resource_id)
                # A replay answers only what the caller may see now: one who has left the
                # case gets the 404 of any outsider, not the case's title and stage.
                old, view = visible_case(ctx, s, rec.resource_id)
                ev.allow(reason="idempotent_replay")
                return _case_summary(ctx, old, view)
            ev.set(case_id=case_id)
            existing = s.scalar(select(Case.id).where(Case.number == number))
            if existing is not None:
                _refuse_taken_number(ctx, s, existing)
            # The key is wrapped while this transaction holds the catalog's write lock, so a
            # key rotation counting which master keys are in use cannot miss this case.
            key, wrapped = ctx.vault.keys.new_case_key(case_id)
            if ctx.principal.user_id is None:
                raise BadRequest("a signed-in user is required", code="missing_token")
            s.add(
                Case(
                    id=case_id,
                    number=number,
                    title_sealed=ctx.vault.keys.seal_case_title(key, case_id, title),
                    wrapped_key=wrapped,
                    created_at=now,
                    created_by=ctx.principal.user_id,
                )
            )
            s.add(
                Transition(
                    id=uuid.uuid4().hex,
                    case_id=case_id,
                    stage="drafting",
                    at=now,
                    created_by=ctx.principal.user_id,
                    created_at=now,
                )
            )
            s.add(
                Membership(
                    case_id=case_id,
                    user_id=ctx.principal.user_id,
                    roles="drafter",
                    expires_at=None,
                    updated_at=now,
                )
            )
            idempotency.remember(s, ctx, idem_key, idem_scope, fp, case_id)
            try:
                s.flush()
            except IntegrityError:
                # Another request took the number a moment ago; answer as if it had been seen.
                s.rollback()
                with ctx.vault.read_session() as r:
                    taken = r.scalar(select(Case.id).where(Case.number == number))
                    _refuse_taken_number(ctx, r, taken)
                raise
            ev.allow()
            s.commit()
        return {
            "id": case_id,
            "number": number,
            "title": title,
            "stage": "drafting",
            "roles": ["drafter"],
        }


def _refuse_taken_number(ctx: Ctx, s: Session, existing_id: str | None) -> None:
    """Refuse a taken case number without telling an outsider about a case they cannot see.

    A caller who may see the existing case (a member, an admin or an auditor) is told it
    exists (409 ``case_exists``).  Anyone else gets 409 ``case_number_unavailable`` with a
    message that names no case: that a number is in use cannot be hidden from someone trying
    to take it (numbers are unique), but nothing about the case behind it is revealed.
    """
    view = view_of(ctx, s, existing_id) if existing_id is not None else None
    if view is not None and view.visible:
        raise Conflict("a case with this number exists", code="case_exists")
    raise Conflict(
        "this case number cannot be used; choose another or ask the case's supervisor",
        code="case_number_unavailable",
    )


def _own_roles(view: CaseView) -> list[str]:
    """The caller's unexpired case roles, in the order of SPEC §2 (their own, so never hidden:
    an evaluator knows they are one)."""
    return [r for r in CASE_ROLES if r in view.roles]


def _case_summary(ctx: Ctx, case: Case, view: CaseView) -> dict[str, Any]:
    if is_shredded(case.wrapped_key):
        # Crypto-shredded: the title can no longer be decrypted by anyone.
        return {
            "id": case.id,
            "number": case.number,
            "title": None,
            "stage": view.stage,
            "roles": _own_roles(view),
            "shredded_at": iso(case.shredded_at),
        }
    key = ctx.vault.keys.case_key(case.id, case.wrapped_key)
    return {
        "id": case.id,
        "number": case.number,
        "title": ctx.vault.keys.open_case_title(key, case.id, case.title_sealed),
        "stage": view.stage,
        "roles": _own_roles(view),
    }


def list_cases(ctx: Ctx) -> dict[str, Any]:
    with ctx.scope("case.list"), ctx.vault.read_session() as s:
        now = ctx.now()
        if ctx.vault.guard.sees_every_case(ctx.principal):
            cases = list(s.scalars(select(Case).order_by(Case.number)))
        else:
            cases = member_cases(s, ctx.principal.user_id, now)
        out = []
        for case in cases:
            view = view_of(ctx, s, case.id, now)
            out.append(_case_summary(ctx, case, view))
        return {"cases": out}


def case_detail(
    ctx: Ctx, s: Session, case: Case, view: CaseView, abilities: bool = False
) -> dict[str, Any]:
    show_evaluators = ctx.vault.guard.can_see_evaluators(view)
    secret = set() if show_evaluators else evaluator_ids(s, case.id)
    transitions = list(
        s.scalars(
            select(Transition)
            .where(Transition.case_id == case.id, Transition.cancelled_at.is_(None))
            .order_by(Transition.at, Transition.created_at)
        )
    )
    members = list(s.scalars(select(Membership).where(Membership.case_id == case.id)))
    names = user_names(
        s,
        {t.created_by for t in transitions}
        | {m.user_id for m in members}
        | {m.granted_by for m in members if m.granted_by is not None},
    )
    member_rows = []
    for m in members:
        roles = m.role_list
        if not show_evaluators:
            roles = [r for r in roles if r != "evaluator"]
        if not roles:
            continue
        member_rows.append(
            {
                "name": names.get(m.user_id),
                "roles": roles,
                "expires_at": iso(m.expires_at),
                # Who granted the membership (an admin, say); an evaluator who granted one
                # stays unnamed to those who may not know the evaluators.
                "granted_by": None
                if m.granted_by is None or m.granted_by in secret
                else names.get(m.granted_by),
            }
        )
    member_rows.sort(key=lambda r: str(r["name"]))
    detail = {
        **_case_summary(ctx, case, view),
        "transitions": [
            {
                "id": t.id,
                "stage": t.stage,
                "at": iso(t.at),
                "by": None if t.created_by in secret else names.get(t.created_by),
            }
            for t in transitions
        ],
        "members": member_rows,
    }
    if abilities:
        # What the caller's forms may offer, as the guard decides it; each post is still
        # decided again by the service that carries it out.
        detail["may"] = ctx.vault.guard.case_abilities(ctx.principal, view)
    return detail


def get_case(ctx: Ctx, case_id: str, *, abilities: bool = False) -> dict[str, Any]:
    """The case's detail (SPEC §7); ``abilities`` adds ``may`` (see ``Guard.case_abilities``),
    which the web page uses to offer only the forms the caller may use."""
    with ctx.scope("case.read", case_id=case_id), ctx.vault.read_session() as s:
        case, view = visible_case(ctx, s, case_id)
        return case_detail(ctx, s, case, view, abilities)


def _parse_expiry(value: Any, now: datetime) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("expires_at must be an RFC 3339 time", code="invalid_time")
    t = parse_time(value)
    if t <= now:
        raise BadRequest("expires_at must be in the future", code="invalid_time")
    return t


def set_member(ctx: Ctx, case_id: str, name: str, body: JsonBody) -> dict[str, Any]:
    with ctx.scope("member.set", case_id=case_id, target=name) as ev:
        now = ctx.now()
        with ctx.vault.write_session() as s:
            case, view = visible_case(ctx, s, case_id, now)
            ctx.vault.guard.require_case_action(view, ctx.principal, "@members", "manage")
            req = body.parse(MemberSet)
            roles, expires_at = req.roles, req.expires_at
            try:
                role_list = validate_case_roles(roles)
            except DomainError as e:
                raise BadRequest(e.message, code=e.code) from None
            expiry = _parse_expiry(expires_at, now)
            user = s.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound("user not found", code="user_not_found")
            m = s.get(Membership, (case.id, user.id))
            if m is None:
                m = Membership(case_id=case.id, user_id=user.id, roles="", updated_at=now)
                s.add(m)
            m.roles = ",".join(role_list)
            m.expires_at = expiry
            m.updated_at = now
            m.granted_by = ctx.principal.user_id
            s.flush()
            ev.allow()
            s.commit()
            return {
                "name": user.name,
                "roles": role_list,
                "expires_at": iso(expiry),
                "granted_by": ctx.principal.name,
            }


def remove_member(ctx: Ctx, case_id: str, name: str) -> None:
    with (
        ctx.scope("member.remove", case_id=case_id, target=name) as ev,
        ctx.vault.write_session() as s,
    ):
        case, view = visible_case(ctx, s, case_id)
        ctx.vault.guard.require_case_action(view, ctx.principal, "@members", "manage")
        user = s.scalar(select(User).where(User.name == name))
        m = s.get(Membership, (case.id, user.id)) if user is not None else None
        if m is None:
            raise NotFound("membership not found", code="member_not_found")
        s.delete(m)
        s.flush()
        ev.allow()
        s.commit()


def transition(ctx: Ctx, case_id: str, body: JsonBody) -> dict[str, Any]:
    with ctx.scope("case.transition", case_id=case_id) as ev:
        now = ctx.now()
        with ctx.vault.write_session() as s:
            case, view = visible_case(ctx, s, case_id, now)
            ctx.vault.guard.require_case_action(view, ctx.principal, "@transitions", "manage")
            req = body.parse(TransitionCreate)
            at = req.at
            try:
                stage = validate_stage(req.stage)
            except DomainError as e:
                raise BadRequest(e.message, code=e.code) from None
            idem_key = idempotency.parse_key(ctx.idempotency_key)
            idem_scope = f"case.transition:{case.id}"
            fp = idempotency.fingerprint(ctx, "case.transition", case.id, stage, at)
            rec = idempotency.lookup(s, ctx, idem_key, idem_scope, fp)
            if rec is not None:
                done = s.get(Transition, rec.resource_id)
                assert done is not None
                ev.allow(reason="idempotent_replay")
                return {"id": done.id, "stage": done.stage, "at": iso(done.at)}
            when = now
            if at is not None:
                if not isinstance(at, str):
                    raise BadRequest("at must be an RFC 3339 time", code="invalid_time")
                when = parse_time(at)
                if when < now - _PAST_TOLERANCE:
                    raise BadRequest("a transition cannot be back-dated", code="invalid_time")
                when = max(when, now)
            latest = latest_transition(s, case.id)
            # "Forward" is judged against the latest transition, scheduled or not, so a
            # scheduled announcement cannot be overtaken by an earlier, smaller step.
            if latest is not None and (
                STAGE_INDEX[stage] <= STAGE_INDEX[latest.stage] or when < latest.at
            ):
                raise Conflict(
                    f"transition must go forward from {latest.stage} (at {iso(latest.at)})",
                    code="transition_not_forward",
                )
            assert ctx.principal.user_id is not None
            t = Transition(
                id=uuid.uuid4().hex,
                case_id=case.id,
                stage=stage,
                at=when,
                created_by=ctx.principal.user_id,
                created_at=now,
            )
            s.add(t)
            idempotency.remember(s, ctx, idem_key, idem_scope, fp, t.id)
            s.flush()
            ev.allow(reason="scheduled" if when > now else "ok")
            s.commit()
            return {"id": t.id, "stage": stage, "at": iso(when)}


def cancel_transition(ctx: Ctx, case_id: str, transition_id: str) -> None:
    with ctx.scope("case.transition.cancel", case_id=case_id) as ev:
        now = ctx.now()
        with ctx.vault.write_session() as s:
            case, view = visible_case(ctx, s, case_id, now)
            ctx.vault.guard.require_case_action(view, ctx.principal, "@transitions", "manage")
            t = s.get(Transition, transition_id) if len(transition_id) <= 32 else None
            if t is None or t.case_id != case.id or t.cancelled_at is not None:
                raise NotFound("transition not found", code="transition_not_found")
            if t.at <= now:
                raise Conflict(
                    "only a transition still in the future can be cancelled",
                    code="transition_in_effect",
                )
            t.cancelled_at = now
            s.flush()
            ev.allow()
            s.commit()
