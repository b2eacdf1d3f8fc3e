"""Who may read a document: now, and at the case's next scheduled transition.

The answer is computed by asking the guard, member by member, the very question a content read
asks (``Guard.read_grant`` is ``content_read`` as a value), at the stage and with the
memberships in force at each instant: there is no second copy of the rule here to drift from
the real one.  Only admins, auditors and the case's supervisors may ask (``@access`` in the
policy); whoever may not know of the document gets the 404 of a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vault.authz import Principal
from vault.catalog.models import Document, Membership, User
from vault.catalog.queries import case_members, next_transition, stage_at
from vault.domain import CASE_ROLES
from vault.errors import Gone
from vault.keys import is_shredded
from vault.services.context import Ctx, iso, visible_document


def document_access(ctx: Ctx, doc_id: str) -> dict[str, Any]:
    with ctx.scope("document.access", document_id=doc_id) as ev, ctx.vault.read_session() as s:
        doc, case, view = visible_document(ctx, s, ev, doc_id)
        guard = ctx.vault.guard
        guard.require_access_overview(ctx.principal, view)
        if is_shredded(case.wrapped_key):
            raise Gone("the case was shredded: its key is destroyed", code="case_shredded")
        now = ctx.now()
        members = case_members(s, doc.case_id)
        # Evaluators are secret to whoever may not read evaluator_names (SPEC §4.3); the
        # callers allowed here may by default, but an edited policy must not change that.
        show_evaluators = guard.can_see_evaluators(view)
        readers_now = _readers(ctx, doc, members, view.stage, now, show_evaluators)
        out: dict[str, Any] = {
            "document_id": doc.id,
            "case_id": doc.case_id,
            "class": doc.doc_class,
            "at": iso(now),
            "stage": view.stage,
            "final_version": doc.final_version,
            "public": guard.disclosed(doc.doc_class, view.stage, doc.final_version),
            "readers": readers_now,
            "next_transition": None,
        }
        upcoming = next_transition(s, doc.case_id, now)
        if upcoming is not None:
            stage = s.scalar(stage_at(doc.case_id, upcoming.at)) or upcoming.stage
            then = _readers(ctx, doc, members, stage, upcoming.at, show_evaluators)
            before = {r["name"] for r in readers_now}
            after = {r["name"] for r in then}
            out["next_transition"] = {
                "id": upcoming.id,
                "stage": stage,
                "at": iso(upcoming.at),
                "public": guard.disclosed(doc.doc_class, stage, doc.final_version),
                "readers": then,
                "gains": sorted(after - before),
                "loses": sorted(before - after),
            }
        return out


def _readers(
    ctx: Ctx,
    doc: Document,
    members: list[tuple[Membership, User]],
    stage: str,
    at: datetime,
    show_evaluators: bool,
) -> list[dict[str, Any]]:
    """The members the guard lets read the document at ``at``, with the roles that do it.

    ``rule`` 1 reads every version through a case role; ``rule`` 2 only the disclosed final
    version (as anyone may then).  A disabled user reads nothing, and an expired membership
    counts as absent, exactly as for a real request.
    """
    out = []
    for membership, user in members:
        if user.disabled:
            continue
        if membership.expires_at is not None and membership.expires_at <= at:
            continue
        roles = [r for r in membership.role_list if r in CASE_ROLES]
        if not show_evaluators:
            roles = [r for r in roles if r != "evaluator"]
        if not roles:
            # Nobody is named for a membership the caller may not see (an evaluator's).
            continue
        principal = Principal(user.id, user.name, frozenset(user.role_list))
        rule = _rule(ctx, principal, doc, stage, roles)
        if rule is None:
            continue
        # The roles that give the read are those that would give it alone: the rule is
        # "any role permits" (SPEC §4.2), so each is asked on its own.
        giving = [r for r in roles if _rule(ctx, principal, doc, stage, [r]) == 1]
        out.append(
            {
                "name": user.name,
                "roles": giving,
                "rule": rule,
                "expires_at": iso(membership.expires_at),
            }
        )
    return out


def _rule(
    ctx: Ctx, principal: Principal, doc: Document, stage: str, roles: list[str]
) -> int | None:
    """The guard's answer to a default content read by ``principal`` holding ``roles``."""
    guard = ctx.vault.guard
    view = guard.case_view(principal, doc.case_id, stage, roles)
    grant = guard.read_grant(principal, view, doc.doc_class, doc.latest_version, doc.final_version)
    return None if grant is None else grant.rule
