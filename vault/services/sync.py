"""The sync manifest: everything a workstation client must mirror, cheap to poll.

One answer lists the caller's cases (with the classes they may write now) and every document
they may read right now, each at the version the content route would serve without ``version``
(the latest for rule-1 readers, the final for rule-2-only readers).  The ETag is a SHA-256 over
what that answer is computed from (``state_etag``), so it changes whenever something the client
mirrors can change: a new version or document, a new final, a stage change (scheduled ones
included: the stage is judged at the request's instant), a membership added, changed, removed
or expired; a change in a case the caller does not belong to leaves it alone.

Cost of an unchanged poll (304): one statement (``manifest_state``).  Cost of a full answer,
besides: one query for the caller's cases, one per case for the stage in force and the caller's
roles (the same statement every case route uses), one query for the documents of all those
cases joined with the versions the answer names.  Decisions come from the guard's cached
per-(roles, stage) permission set, never one Casbin ``enforce`` per document.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from vault.authz import CaseView
from vault.catalog.models import Case, Document, Version
from vault.catalog.queries import manifest_state, member_cases
from vault.crypto import IntegrityError
from vault.errors import Forbidden, Gone, IntegrityFailure, NotFound
from vault.keys import KeyUnavailable
from vault.services.context import Ctx, iso, view_of


@dataclass(frozen=True)
class ManifestAnswer:
    """``body`` is None when the caller's ``If-None-Match`` already names the current ETag."""

    etag: str
    body: dict[str, Any] | None

    @property
    def not_modified(self) -> bool:
        return self.body is None


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether a listed tag equals ``etag`` (weak comparison, RFC 9110 §13.1.2).

    ``*`` is deliberately not honoured: an unlogged 304 is only for a client that already
    holds the current answer, never a way to learn that something changed without a record.
    """
    if if_none_match is None:
        return False
    for part in if_none_match.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def _open(fn: Any, *args: Any) -> str:
    try:
        value = fn(*args)
    except (KeyUnavailable, IntegrityError):
        # A sealed field that fails to open means the catalog row was altered or moved.
        raise IntegrityFailure(
            "stored metadata failed authentication", code="integrity_error"
        ) from None
    assert isinstance(value, str)
    return value


def build_manifest(ctx: Ctx, s: Session, now: datetime) -> dict[str, Any]:
    vault = ctx.vault
    guard = vault.guard
    cases_out: list[dict[str, Any]] = []
    live: dict[str, tuple[Case, CaseView, bytes]] = {}
    # The caller's own unexpired memberships, for everyone (admin and auditor included: the
    # manifest is what a sync client mirrors, not an overview of the vault).
    for case in member_cases(s, ctx.principal.user_id, now):
        try:
            key = vault.keys.case_key(case.id, case.wrapped_key)
        except Gone:
            continue  # crypto-shredded: nothing of it can be served, so nothing is mirrored
        # One view per case, at one instant for the whole answer: the permission set comes
        # from the guard's per-(roles, stage) cache.
        view = view_of(ctx, s, case.id, now)
        if not view.member:
            continue  # the membership expired between the two statements' reads
        live[case.id] = (case, view, key)
        cases_out.append(
            {
                "id": case.id,
                "number": case.number,
                "stage": view.stage,
                "writable_classes": guard.writable_classes(view),
            }
        )

    docs_out: list[dict[str, Any]] = []
    if live:
        # Documents of all the caller's cases with their latest and final versions, in one go,
        # as plain columns (ORM objects for ten thousand rows cost more than the rest).
        rows = (
            s.connection()
            .execute(
                select(
                    Document.id,
                    Document.case_id,
                    Document.doc_class,
                    Document.title_sealed,
                    Document.latest_version,
                    Document.final_version,
                    Version.version,
                    Version.size,
                    Version.sha256_sealed,
                )
                .join(
                    Version,
                    and_(
                        Version.document_id == Document.id,
                        or_(
                            Version.version == Document.latest_version,
                            Version.version == Document.final_version,
                        ),
                    ),
                )
                .where(Document.case_id.in_(list(live)), Document.latest_version > 0)
                .order_by(Document.created_at, Document.id, Version.version)
            )
            .all()
        )  # fetched at once: iterating the result row by row cost more than the rows
        versions: dict[str, dict[int, tuple[int, bytes]]] = {}
        docs: list[tuple[str, str, str, bytes, int, int | None]] = []
        for doc_id, case_id, cls, title_sealed, latest, final, number, size, sealed in rows:
            if doc_id not in versions:
                versions[doc_id] = {}
                docs.append((doc_id, case_id, cls, title_sealed, latest, final))
            versions[doc_id][number] = (size, sealed)
        titles = {cid: vault.keys.title_opener(key) for cid, (_, _, key) in live.items()}
        digests = {cid: vault.keys.digest_opener(key) for cid, (_, _, key) in live.items()}
        for doc_id, case_id, cls, title_sealed, latest, final in docs:
            case, view, _key = live[case_id]
            try:
                # Exactly the decision of GET /documents/{id}/content without ``version``.
                grant = guard.content_read(ctx.principal, view, cls, latest, final, None)
            except (NotFound, Forbidden):
                continue
            stored = versions[doc_id].get(grant.version)
            if stored is None:
                continue  # a catalog without the row it names: nothing to serve
            size, sha_sealed = stored
            docs_out.append(
                {
                    "id": doc_id,
                    "case_id": case.id,
                    "case_number": case.number,
                    "class": cls,
                    "title": _open(titles[case_id], doc_id, title_sealed),
                    "version": grant.version,
                    "size": size,
                    "sha256": _open(digests[case_id], doc_id, grant.version, sha_sealed),
                    "final_version": final,
                    "rule": grant.rule,
                }
            )
        docs_out.sort(key=lambda d: str(d["case_number"]))  # stable: keeps creation order

    return {"generated_at": iso(now), "cases": cases_out, "documents": docs_out}


def state_etag(ctx: Ctx, state: list[tuple[Any, ...]]) -> str:
    """A strong ETag over everything the manifest is computed from (see ``manifest_state``).

    The manifest is a function of the caller (id and global roles), their unexpired
    memberships, each case's stage at the instant asked and its documents; the documents are
    represented by the case's revision counter, which the database bumps on every change.  So
    the tag changes whenever the manifest can, and an unchanged poll is answered from one
    small statement instead of building (and decrypting) the whole manifest.
    """
    principal = ctx.principal
    raw = json.dumps(
        [ctx.vault.guard.fingerprint, principal.user_id, sorted(principal.roles), state],
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    ).encode()
    return f'"{hashlib.sha256(raw).hexdigest()}"'


def manifest(ctx: Ctx, if_none_match: str | None) -> ManifestAnswer:
    ev = ctx.scope("sync.manifest")
    try:
        now = ctx.now()
        if if_none_match is not None:
            with ctx.vault.lookup() as conn:
                etag = state_etag(ctx, manifest_state(conn, ctx.principal.user_id, now))
            if etag_matches(if_none_match, etag):
                # SPEC §5: a 304 reveals nothing new and may go unlogged.  Sync clients poll
                # every few seconds, so unchanged polls are not logged: the log records every
                # answer that carried a manifest, and an unchanged poll adds nothing to what
                # the last logged one showed.
                return ManifestAnswer(etag=etag, body=None)
        with ctx.vault.read_session() as s:
            # The tag sent with a body is taken again in the body's own transaction, so both
            # come from one snapshot: a change made and undone in between can never leave a
            # client holding the in-between body under the tag of the state it returned to.
            etag = state_etag(ctx, manifest_state(s.connection(), ctx.principal.user_id, now))
            body = build_manifest(ctx, s, now)
    except Exception as exc:
        ev.fail(exc)
    # Fail closed: the event is committed before the manifest (titles, digests) leaves.
    ev.allow()
    return ManifestAnswer(etag=etag, body=body)
