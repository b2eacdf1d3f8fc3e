"""Notifications about a user, for the user and the supervisors of their cases.

Stored as references only (kinds and ids), never as text: what a reader sees is rendered from
them when shown (DEVELOPERS.md guarantee 1).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.catalog.models import Membership, Notification
from vault.catalog.queries import active_membership, active_memberships


def notify_about_user(
    s: Session, holder_id: int, kind: str, actor_id: int | None, ref: str | None, now: datetime
) -> None:
    """Tell ``holder_id`` and the supervisors of their cases, once, that someone else
    (``actor_id``) did something that lets them act as the holder.  Nothing waits for the
    readers: they can revoke what was done."""
    recipients = {holder_id}
    cases = [m.case_id for m in active_memberships(s, holder_id, now)]
    if cases:
        # Every unexpired membership of those cases in one statement; supervisors among them.
        for other in s.scalars(
            select(Membership).where(Membership.case_id.in_(cases), active_membership(now))
        ):
            if "supervisor" in other.role_list:
                recipients.add(other.user_id)
    for uid in sorted(recipients):
        s.add(
            Notification(
                user_id=uid,
                kind=kind,
                subject_user_id=holder_id,
                actor_user_id=actor_id,
                ref=ref,
                created_at=now,
            )
        )
