"""The catalog's questions about who may see what, asked in one place.

"An unexpired membership" and "the stage in force at t" are the two predicates every decision
rests on (SPEC §3, §4.2).  They are written here once; the guard's callers (services for cases,
documents, reviews and the sync manifest) build on these statements instead of repeating them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Select,
    String,
    bindparam,
    func,
    select,
)
from sqlalchemy.orm import Session, aliased

from vault.catalog.models import Case, Document, Membership, Transition, User, Version

# Longest id the catalog hands out; anything longer cannot exist and is not looked up.  The
# lookups below still run a statement of the same shape for such ids, so a missing id costs the
# same as a hidden one (no timing oracle).
MAX_ID = 64
_NO_ID = "-"


def active_membership(at: datetime | ColumnElement[Any]) -> ColumnElement[bool]:
    """A membership that counts at ``at``: expired memberships count as absent."""
    return (Membership.expires_at.is_(None)) | (Membership.expires_at > at)


def stage_at(case_id: Any, at: datetime | ColumnElement[Any]) -> Select[Any]:
    """The stage in force at ``at``: the latest non-cancelled transition with ``at <= t``."""
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


def latest_transition(s: Session, case_id: str) -> Transition | None:
    """The latest non-cancelled transition, scheduled or not ("forward" is judged from it)."""
    return s.scalar(
        select(Transition)
        .where(Transition.case_id == case_id, Transition.cancelled_at.is_(None))
        .order_by(Transition.at.desc(), Transition.created_at.desc())
        .limit(1)
    )


def stage_and_roles(
    s: Session, case_id: str, user_id: int | None, at: datetime
) -> tuple[str, list[str]]:
    """The stage in force at ``at`` and the user's unexpired case roles, in one round trip.

    This runs on every request that touches a case, so both answers come from one statement.
    Every case is created with its drafting transition, so a missing stage only happens for a
    case that does not exist (the caller then answers 404 anyway).
    """
    roles_query = (
        select(Membership.roles)
        .where(
            Membership.case_id == case_id,
            Membership.user_id == (user_id if user_id is not None else -1),
            active_membership(at),
        )
        .scalar_subquery()
    )
    stage, roles = s.execute(select(stage_at(case_id, at).scalar_subquery(), roles_query)).one()
    return stage or "drafting", [r for r in (roles or "").split(",") if r]


def find_case(s: Session, case_id: str) -> Case | None:
    return s.get(Case, case_id if len(case_id) <= MAX_ID else _NO_ID)


def find_document(s: Session, doc_id: str) -> tuple[Document, Case] | None:
    """A document that has at least one version, with its case; None otherwise."""
    row = s.execute(
        select(Document, Case)
        .join(Case, Case.id == Document.case_id)
        .where(Document.id == (doc_id if len(doc_id) <= MAX_ID else _NO_ID))
    ).first()
    if row is None or row[0].latest_version == 0:
        return None
    doc, case = row.tuple()
    return doc, case


@dataclass(frozen=True)
class DocumentRef:
    """What a decision about a document needs, read before anything else is loaded."""

    id: str
    case_id: str
    cls: str
    final_version: int | None


def find_document_ref(s: Session, doc_id: str) -> DocumentRef | None:
    """A document that has at least one version, as plain columns; None otherwise.

    Only these few columns are read until the caller is known to see the document, so a hidden
    document costs what a missing one does: one indexed look-up returning a short row or none
    (loading the full rows as ORM objects first made hidden ids measurably slower).
    """
    row = s.execute(
        select(Document.id, Document.case_id, Document.doc_class, Document.final_version).where(
            Document.id == (doc_id if len(doc_id) <= MAX_ID else _NO_ID),
            Document.latest_version > 0,
        )
    ).first()
    if row is None:
        return None
    return DocumentRef(id=row[0], case_id=row[1], cls=row[2], final_version=row[3])


def member_cases(s: Session, user_id: int | None, at: datetime) -> list[Case]:
    """The cases where the user holds an unexpired membership, by case number."""
    if user_id is None:
        return []
    return list(
        s.scalars(
            select(Case)
            .join(Membership, Membership.case_id == Case.id)
            .where(Membership.user_id == user_id, active_membership(at))
            .order_by(Case.number)
        )
    )


def active_memberships(s: Session, user_id: int | None, at: datetime) -> list[Membership]:
    if user_id is None:
        return []
    return list(
        s.scalars(select(Membership).where(Membership.user_id == user_id, active_membership(at)))
    )


def evaluator_ids(s: Session, case_id: str) -> set[int]:
    """Users whose names are secret in this case: anyone holding or having written as evaluator."""
    ids = {
        m.user_id
        for m in s.scalars(select(Membership).where(Membership.case_id == case_id))
        if "evaluator" in m.role_list
    }
    ids.update(
        s.scalars(
            select(Version.created_by)
            .join(Document, Document.id == Version.document_id)
            .where(Document.case_id == case_id, Version.by_evaluator.is_(True))
        )
    )
    return ids


def user_names(s: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = s.execute(select(User.id, User.name).where(User.id.in_(ids)))
    return {int(uid): str(name) for uid, name in rows}


def membership_grants(s: Session, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """``(case_id, user name) → name of who granted that membership``, where one is recorded."""
    cases = {c for c, _ in pairs}
    granter = aliased(User)
    member = aliased(User)
    rows = s.execute(
        select(Membership.case_id, member.name, granter.name)
        .join(member, member.id == Membership.user_id)
        .join(granter, granter.id == Membership.granted_by)
        .where(Membership.case_id.in_(sorted(cases)))
    )
    return {(c, m): g for c, m, g in rows if (c, m) in pairs}


# -- the content read in one statement -----------------------------------------------------------


@dataclass(frozen=True)
class StoredVersion:
    """What serving one version needs: where its ciphertext is and its sealed key material."""

    version: int
    blob_name: str
    size: int
    sha256_sealed: bytes
    wrapped_dek: bytes
    # The uploaded media type, sealed; None for versions stored before it was kept.
    content_type_sealed: bytes | None = None


@dataclass(frozen=True)
class ReadLookup:
    """Everything a content read decides on and serves from, read in one statement."""

    ref: DocumentRef
    latest_version: int
    wrapped_key: bytes
    stage: str
    roles: list[str]
    # The requested (else the latest) version and the final one: the guard grants one of them.
    versions: dict[int, StoredVersion]
    # The sealed document title, for the download's filename.
    title_sealed: bytes = b""


def _read_statement() -> Select[Any]:
    wanted = aliased(Version, name="wanted")
    final = aliased(Version, name="final")
    user_id: BindParameter[int] = bindparam("user_id")
    at: BindParameter[datetime] = bindparam("at", type_=Transition.at.type)
    # The statement always yields one row, found or not: it starts from the id asked for and
    # joins the document to it, and the stage and roles subqueries run on the document's case
    # or, when there is none, on the id itself.  A missing document thus costs the database
    # the same work as a hidden one (no timing oracle).
    asked = select(bindparam("doc_id", type_=String).label("id")).subquery("asked")
    case_id = func.coalesce(Document.case_id, asked.c.id)
    roles = (
        select(Membership.roles)
        .where(
            Membership.case_id == case_id,
            Membership.user_id == user_id,
            active_membership(at),
        )
        .scalar_subquery()
    )
    return (
        select(
            Document.id,
            Document.case_id,
            Document.doc_class,
            Document.final_version,
            Document.latest_version,
            Case.wrapped_key,
            stage_at(case_id, at).scalar_subquery(),
            roles,
            *(
                col
                for v in (wanted, final)
                for col in (
                    v.version,
                    v.blob_name,
                    v.size,
                    v.sha256_sealed,
                    v.wrapped_dek,
                    v.content_type_sealed,
                )
            ),
            Document.title_sealed,
        )
        .select_from(asked)
        .outerjoin(Document, (Document.id == asked.c.id) & (Document.latest_version > 0))
        .outerjoin(Case, Case.id == Document.case_id)
        .outerjoin(
            wanted,
            (wanted.document_id == Document.id)
            & (wanted.version == func.coalesce(bindparam("requested"), Document.latest_version)),
        )
        .outerjoin(
            final, (final.document_id == Document.id) & (final.version == Document.final_version)
        )
    )


# Built once: SQLAlchemy caches the compiled form, so each read pays only for executing it.
_READ = _read_statement()


def read_lookup(
    conn: Connection, doc_id: str, user_id: int | None, at: datetime, requested: int | None
) -> ReadLookup | None:
    """The document, its case key, the stage in force, the caller's roles and the candidate
    versions, in one indexed statement; None when the document does not exist.

    A content read used to take eight statements in two ORM sessions for this; one statement
    on a plain connection is what lets an audited read run near the speed of a file server.
    A hidden document costs exactly what a visible one does up to the guard's decision, and a
    missing one the same statement with the same subqueries, on a row of nulls (no timing
    oracle).
    """
    row = conn.execute(
        _READ,
        {
            "doc_id": doc_id if len(doc_id) <= MAX_ID else _NO_ID,
            "user_id": user_id if user_id is not None else -1,
            "at": at,
            "requested": requested,
        },
    ).one()
    versions = {
        int(row[i]): StoredVersion(
            int(row[i]), row[i + 1], int(row[i + 2]), row[i + 3], row[i + 4], row[i + 5]
        )
        for i in (8, 14)
        if row[i] is not None
    }
    if row[0] is None:
        return None
    return ReadLookup(
        ref=DocumentRef(id=row[0], case_id=row[1], cls=row[2], final_version=row[3]),
        latest_version=int(row[4]),
        wrapped_key=row[5],
        stage=row[6] or "drafting",
        roles=[r for r in (row[7] or "").split(",") if r],
        versions=versions,
        title_sealed=row[20],
    )


def manifest_state(conn: Connection, user_id: int | None, at: datetime) -> list[tuple[Any, ...]]:
    """What the caller's sync manifest depends on, in one statement: per unexpired membership,
    the case, the caller's roles there, the stage in force at ``at``, whether the case was
    shredded, and the case's revision (bumped by triggers on every change to its documents)."""
    if user_id is None:
        return []
    rows = conn.execute(
        select(
            Membership.case_id,
            Membership.roles,
            stage_at(Membership.case_id, at).scalar_subquery(),
            Case.shredded_at.is_not(None),
            Case.revision,
        )
        .join(Case, Case.id == Membership.case_id)
        .where(Membership.user_id == user_id, active_membership(at))
        .order_by(Membership.case_id)
    )
    return [tuple(r) for r in rows]


def next_transition(s: Session, case_id: str, after: datetime) -> Transition | None:
    """The earliest scheduled (future, not cancelled) transition after ``after``, if any."""
    return s.scalar(
        select(Transition)
        .where(
            Transition.case_id == case_id,
            Transition.cancelled_at.is_(None),
            Transition.at > after,
        )
        .order_by(Transition.at, Transition.created_at)
        .limit(1)
    )


def case_members(s: Session, case_id: str) -> list[tuple[Membership, User]]:
    """Every membership of a case (expired ones too) with its user, by user name."""
    rows = s.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.case_id == case_id)
        .order_by(User.name)
    )
    return [row.tuple() for row in rows]
