"""Documents and versions: listing, metadata, streaming upload and streaming download.

A read is one straight walk: catalog lookup → guard → key unwrap and first segment decrypted →
audit event committed → bytes leave.  A write is: guard → ciphertext streamed to an invisible
blob → audit event committed → version row committed → 201.  A write that fails at any step
leaves no visible version, and its blob is removed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.audit.scope import AuditScope
from vault.catalog.models import Case, Document, IdempotencyRecord, User, Version
from vault.crypto import IntegrityError, StreamDecryptor, StreamEncryptor
from vault.crypto.stream import new_data_key
from vault.domain import DomainError, validate_class, validate_purpose, validate_title
from vault.errors import (
    BadRequest,
    Conflict,
    IntegrityFailure,
    NotFound,
    PreconditionFailed,
)
from vault.keys import KeyUnavailable, is_shredded
from vault.services import idempotency
from vault.services.cases import evaluator_ids
from vault.services.context import Ctx, JsonBody, iso, load_case, view_of
from vault.storage import BlobNotFound, BlobReader, BlobWriter

READ_CHUNK = 1 << 20


# -- header decoding -----------------------------------------------------------------------------


def decode_header_text(raw: str | None) -> str | None:
    """Percent-decode a header exactly once, as UTF-8; None when absent or undecodable."""
    if raw is None:
        return None
    try:
        # Starlette hands headers over as latin-1; a client that sent raw UTF-8 bytes gets them
        # back intact this way, and a percent-encoded value is plain ASCII either way.
        raw_bytes = raw.encode("latin-1")
        text = raw_bytes.decode("utf-8")
        return unquote(text, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return None


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    v = v.strip('"')
    if not v.isdigit():
        raise BadRequest('If-Match must be a version ETag such as "3"', code="invalid_if_match")
    return int(v)


# -- listing and metadata ------------------------------------------------------------------------


def _doc_item(ctx: Ctx, case_key: bytes, doc: Document, final_only: bool) -> dict[str, Any]:
    return {
        "id": doc.id,
        "case_id": doc.case_id,
        "class": doc.doc_class,
        "title": ctx.vault.keys.open_title(case_key, doc.id, doc.title_sealed),
        "latest_version": doc.final_version if final_only else doc.latest_version,
        "final_version": doc.final_version,
    }


def list_case_documents(ctx: Ctx, case_id: str) -> dict[str, Any]:
    with ctx.scope("document.list", case_id=case_id), ctx.vault.read_session() as s:
        case = load_case(s, case_id)
        view = view_of(ctx, s, case.id)
        guard = ctx.vault.guard
        # Disclosed documents of a case the caller does not belong to are listed only at
        # /public/documents: the case listing itself stays 404 for non-members (SPEC §4.3).
        guard.require_case(view)
        # A crypto-shredded case answers 410 case_shredded here (from case_key).
        key = ctx.vault.keys.case_key(case.id, case.wrapped_key)
        out = []
        docs = s.scalars(
            select(Document)
            .where(Document.case_id == case.id, Document.latest_version > 0)
            .order_by(Document.created_at, Document.id)
        )
        for doc in docs:
            if view.overseer or view.may(doc.doc_class, "read"):
                out.append(_doc_item(ctx, key, doc, final_only=False))
            elif guard.disclosed(doc.doc_class, view.stage, doc.final_version):
                out.append(_doc_item(ctx, key, doc, final_only=True))
        return {"documents": out}


def list_public_documents(ctx: Ctx) -> dict[str, Any]:
    with ctx.scope("document.list"), ctx.vault.read_session() as s:
        guard = ctx.vault.guard
        out = []
        rows = s.execute(
            select(Document, Case)
            .join(Case, Case.id == Document.case_id)
            .where(Document.final_version.is_not(None))
            .order_by(Case.number, Document.created_at, Document.id)
        ).tuples()
        stages: dict[str, str] = {}
        for doc, case in rows:
            if case.id not in stages:
                stages[case.id] = view_of(ctx, s, case.id).stage
            if guard.disclosed(doc.doc_class, stages[case.id], doc.final_version):
                if is_shredded(case.wrapped_key):
                    continue  # nothing of a shredded case can be served any more
                key = ctx.vault.keys.case_key(case.id, case.wrapped_key)
                out.append(_doc_item(ctx, key, doc, final_only=True))
        return {"documents": out}


def _load_document(s: Session, doc_id: str) -> tuple[Document, Case]:
    row = (
        s.execute(
            select(Document, Case)
            .join(Case, Case.id == Document.case_id)
            .where(Document.id == doc_id)
        ).first()
        if len(doc_id) <= 64
        else None
    )
    if row is None or row[0].latest_version == 0:
        raise NotFound("document not found", code="document_not_found")
    doc, case = row.tuple()
    return doc, case


def document_metadata(ctx: Ctx, doc_id: str) -> dict[str, Any]:
    with ctx.scope("document.meta", document_id=doc_id) as ev, ctx.vault.read_session() as s:
        doc, case = _load_document(s, doc_id)
        # The event names the case and class even when the answer is 404: only auditors see
        # the log, and a denied attempt must be findable by case.
        ev.set(case_id=case.id, cls=doc.doc_class)
        view = view_of(ctx, s, case.id)
        scope = ctx.vault.guard.metadata_scope(
            ctx.principal, view, doc.doc_class, doc.final_version
        )
        key = ctx.vault.keys.case_key(case.id, case.wrapped_key)
        stmt = select(Version).where(Version.document_id == doc.id).order_by(Version.version)
        if scope == "final":
            stmt = stmt.where(Version.version == doc.final_version)
        versions = list(s.scalars(stmt))
        show_evaluators = ctx.vault.guard.can_see_evaluators(view)
        secret = set() if show_evaluators else evaluator_ids(s, case.id)
        ids = {v.created_by for v in versions}
        names = dict(s.execute(select(User.id, User.name).where(User.id.in_(ids))).tuples().all())
        item = _doc_item(ctx, key, doc, final_only=scope == "final")
        item["versions"] = [
            {
                "version": v.version,
                "size": v.size,
                "sha256": ctx.vault.keys.open_digest(key, doc.id, v.version, v.sha256_sealed),
                "created_at": iso(v.created_at),
                "created_by": None
                if (v.by_evaluator or v.created_by in secret) and not show_evaluators
                else names.get(v.created_by),
                "final": v.version == doc.final_version,
            }
            for v in versions
        ]
        return item


# -- writing -------------------------------------------------------------------------------------


@dataclass
class WritePlan:
    """Everything decided before the body is read; the body is then streamed against it."""

    case_id: str
    doc_id: str
    version: int
    cls: str
    create: bool
    title: str | None
    base_version: int | None
    if_match: int | None
    idem_key: str | None
    idem_scope: str
    case_key: bytes = field(repr=False)
    dek: bytes = field(repr=False)
    by_evaluator: bool = False
    replay: dict[str, Any] | None = None


def _replay_result(ctx: Ctx, s: Session, rec: IdempotencyRecord, create: bool) -> dict[str, Any]:
    doc = s.get(Document, rec.resource_id)
    assert doc is not None
    if not create:
        return {"version": rec.version}
    case = s.get(Case, doc.case_id)
    assert case is not None
    key = ctx.vault.keys.case_key(case.id, case.wrapped_key)
    return {
        "id": doc.id,
        "class": doc.doc_class,
        "title": ctx.vault.keys.open_title(key, doc.id, doc.title_sealed),
        "version": rec.version,
    }


def plan_create(
    ctx: Ctx,
    ev: AuditScope,
    case_id: str,
    cls: str | None,
    raw_title: str | None,
    idem_key: str | None,
) -> WritePlan:
    with ctx.vault.read_session() as s:
        case = load_case(s, case_id)
        view = view_of(ctx, s, case.id)
        ctx.vault.guard.require_case(view)
        try:
            klass = validate_class(cls)
        except DomainError as e:
            raise BadRequest(e.message, code=e.code) from None
        ev.set(cls=klass)
        ctx.vault.guard.require_write(view, klass)
        title = decode_header_text(raw_title)
        if raw_title is None:
            raise BadRequest("the X-Kinko-Title header is required", code="title_required")
        if title is None:
            raise BadRequest("X-Kinko-Title must be percent-encoded UTF-8", code="invalid_title")
        try:
            validate_title(title)
        except DomainError as e:
            raise BadRequest(e.message, code=e.code) from None
        scope = f"create:{case.id}:{klass}"
        rec = idempotency.lookup(s, ctx, idem_key, scope)
        key = ctx.vault.keys.case_key(case.id, case.wrapped_key)
        plan = WritePlan(
            case_id=case.id,
            doc_id=uuid.uuid4().hex,
            version=1,
            cls=klass,
            create=True,
            title=title,
            base_version=None,
            if_match=None,
            idem_key=idem_key,
            idem_scope=scope,
            case_key=key,
            dek=new_data_key(),
            by_evaluator="evaluator" in view.roles,
        )
        if rec is not None:
            plan.replay = _replay_result(ctx, s, rec, create=True)
            ev.set(document_id=rec.resource_id, version=rec.version)
        return plan


def plan_version(
    ctx: Ctx, ev: AuditScope, doc_id: str, if_match: int | None, idem_key: str | None
) -> WritePlan:
    with ctx.vault.read_session() as s:
        doc, case = _load_document(s, doc_id)
        ev.set(case_id=case.id, cls=doc.doc_class)
        view = view_of(ctx, s, case.id)
        if not ctx.vault.guard.document_visible(view, doc.doc_class, doc.final_version):
            raise NotFound("document not found", code="document_not_found")
        ctx.vault.guard.require_write(view, doc.doc_class)
        scope = f"version:{doc.id}:{if_match}"
        rec = idempotency.lookup(s, ctx, idem_key, scope)
        key = ctx.vault.keys.case_key(case.id, case.wrapped_key)
        plan = WritePlan(
            case_id=case.id,
            doc_id=doc.id,
            version=doc.latest_version + 1,
            cls=doc.doc_class,
            create=False,
            title=None,
            base_version=doc.latest_version,
            if_match=if_match,
            idem_key=idem_key,
            idem_scope=scope,
            case_key=key,
            dek=new_data_key(),
            by_evaluator="evaluator" in view.roles,
        )
        if rec is not None:
            plan.replay = _replay_result(ctx, s, rec, create=False)
            ev.set(version=rec.version)
            return plan
        if if_match is not None and if_match != doc.latest_version:
            raise PreconditionFailed(
                f"the latest version is {doc.latest_version}, not {if_match}",
                code="version_mismatch",
            )
        return plan


class EncryptingSink:
    """Encrypts plaintext into a blob writer while hashing it; runs in a worker thread."""

    def __init__(self, plan: WritePlan, writer: BlobWriter) -> None:
        self.plan = plan
        self.writer = writer
        self.encryptor = StreamEncryptor(plan.dek, plan.doc_id, plan.version)
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.size += len(data)
        out = self.encryptor.update(data)
        if out:
            self.writer.write(out)

    def finish(self) -> str:
        self.writer.write(self.encryptor.finalize())
        return self.writer.commit()


def commit_write(
    ctx: Ctx, ev: AuditScope, plan: WritePlan, blob_name: str, size: int, digest: str
) -> dict[str, Any]:
    """Make an uploaded version visible, after its audit event is committed."""
    vault = ctx.vault
    now = ctx.now()
    try:
        with vault.write_session() as s:
            # Everything decided before the upload is decided again under the write lock: the
            # stage may have moved or the membership expired while the body was streaming.
            case = load_case(s, plan.case_id)
            view = view_of(ctx, s, case.id, now)
            vault.guard.require_write(view, plan.cls)
            rec = idempotency.lookup(s, ctx, plan.idem_key, plan.idem_scope)
            if rec is not None:
                vault.blobs.delete(blob_name)
                ev.set(document_id=rec.resource_id, version=rec.version)
                result = _replay_result(ctx, s, rec, create=plan.create)
                ev.allow(reason="idempotent_replay")
                return result
            assert ctx.principal.user_id is not None
            if plan.create:
                assert plan.title is not None
                doc = Document(
                    id=plan.doc_id,
                    case_id=case.id,
                    doc_class=plan.cls,
                    title_sealed=vault.keys.seal_title(plan.case_key, plan.doc_id, plan.title),
                    created_at=now,
                    created_by=ctx.principal.user_id,
                    latest_version=0,
                    final_version=None,
                )
                s.add(doc)
            else:
                existing = s.get(Document, plan.doc_id)
                assert existing is not None
                doc = existing
                if doc.latest_version != plan.base_version:
                    if plan.if_match is not None:
                        raise PreconditionFailed(
                            f"the latest version is {doc.latest_version}, not {plan.if_match}",
                            code="version_mismatch",
                        )
                    raise Conflict(
                        "another version was written at the same time; retry",
                        code="concurrent_write",
                    )
            s.add(
                Version(
                    document_id=plan.doc_id,
                    version=plan.version,
                    blob_name=blob_name,
                    size=size,
                    sha256_sealed=vault.keys.seal_digest(
                        plan.case_key, plan.doc_id, plan.version, digest
                    ),
                    wrapped_dek=vault.keys.wrap_dek(
                        plan.case_key, plan.doc_id, plan.version, plan.dek
                    ),
                    created_at=now,
                    created_by=ctx.principal.user_id,
                    by_evaluator=plan.by_evaluator,
                )
            )
            doc.latest_version = plan.version
            idempotency.remember(s, ctx, plan.idem_key, plan.idem_scope, plan.doc_id, plan.version)
            s.flush()
            ev.set(document_id=plan.doc_id, version=plan.version)
            ev.allow()
            s.commit()
    except BaseException:
        vault.blobs.delete(blob_name)
        raise
    if plan.create:
        return {"id": plan.doc_id, "class": plan.cls, "title": plan.title, "version": 1}
    return {"version": plan.version}


def finalize(ctx: Ctx, doc_id: str, body: JsonBody) -> dict[str, Any]:
    with (
        ctx.scope("document.finalize", document_id=doc_id) as ev,
        ctx.vault.write_session() as s,
    ):
        doc, case = _load_document(s, doc_id)
        ev.set(case_id=case.id, cls=doc.doc_class)
        view = view_of(ctx, s, case.id)
        if not ctx.vault.guard.document_visible(view, doc.doc_class, doc.final_version):
            raise NotFound("document not found", code="document_not_found")
        ctx.vault.guard.require_write(view, doc.doc_class)
        version = body.require().get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise BadRequest("version must be an integer", code="invalid_version")
        ev.set(version=version)
        if not 1 <= version <= doc.latest_version:
            raise BadRequest("no such version", code="unknown_version")
        previous = doc.final_version
        doc.final_version = version
        s.flush()
        ev.allow(reason="ok" if previous in (None, version) else f"replaces_final_{previous}")
        s.commit()
        return {"id": doc.id, "final_version": version, "previous_final_version": previous}


# -- reading -------------------------------------------------------------------------------------


@dataclass
class OpenedRead:
    """A read that is authorised, audited and verified up to its first chunk."""

    version: int
    size: int
    sha256: str
    first: bytes
    rest: Generator[bytes, None, None]


def _plaintext_chunks(
    reader: BlobReader, decryptor: StreamDecryptor
) -> Generator[bytes, None, None]:
    try:
        for chunk in reader.iter_chunks(READ_CHUNK):
            out = decryptor.update(chunk)
            if out:
                yield out
        tail = decryptor.finalize()
        if tail:
            yield tail
    finally:
        reader.close()


def open_read(
    ctx: Ctx,
    ev: AuditScope,
    doc_id: str,
    version: int | None,
    raw_purpose: str | None,
    *,
    public: bool,
) -> OpenedRead:
    vault = ctx.vault
    purpose = decode_header_text(raw_purpose)
    with vault.read_session() as s:
        doc, case = _load_document(s, doc_id)
        # An unusable purpose is still recorded (capped), so the refusal shows what was sent.
        ev.set(case_id=case.id, cls=doc.doc_class, purpose=(purpose or None) and purpose[:500])
        view = view_of(ctx, s, case.id)
        # The public route serves disclosed final versions only, whoever asks.
        if public and not vault.guard.disclosed(doc.doc_class, view.stage, doc.final_version):
            raise NotFound("document not found", code="document_not_found")
        grant = vault.guard.content_read(
            ctx.principal,
            view,
            doc.doc_class,
            doc.latest_version,
            doc.final_version,
            None if public else version,
        )
        ev.set(case_id=case.id, cls=doc.doc_class, version=grant.version)
        usable = validate_purpose(purpose)
        if grant.purpose_required and usable is None:
            raise BadRequest(
                "a business purpose is required in X-Access-Purpose (1-500 characters)",
                code="purpose_required",
            )
        row = s.get(Version, (doc.id, grant.version))
        assert row is not None
        key = vault.keys.case_key(case.id, case.wrapped_key)
        try:
            digest = vault.keys.open_digest(key, doc.id, row.version, row.sha256_sealed)
            dek = vault.keys.unwrap_dek(key, doc.id, row.version, row.wrapped_dek)
        except (KeyUnavailable, IntegrityError):
            # A sealed field that fails to open means the catalog row was altered or moved.
            raise IntegrityFailure(
                "stored key material failed authentication", code="integrity_error"
            ) from None
    try:
        reader = vault.blobs.open(row.blob_name)
    except BlobNotFound:
        raise IntegrityFailure("stored content is missing", code="content_missing") from None
    chunks = _plaintext_chunks(reader, StreamDecryptor(dek, doc.id, row.version))
    try:
        # The first chunk is decrypted and verified before the event is written and before the
        # response starts, so a swapped or corrupted blob is answered with an error status
        # instead of a 200 that breaks off.
        first = next(chunks, b"")
    except IntegrityError:
        reader.close()
        raise IntegrityFailure(
            "stored content failed authentication", code="integrity_error"
        ) from None
    try:
        # "disclosed" marks a read that needs no purpose and opens no access review (§6).
        ev.allow(reason="disclosed" if not grant.purpose_required else "ok")
    except BaseException:
        chunks.close()
        raise
    return OpenedRead(version=row.version, size=row.size, sha256=digest, first=first, rest=chunks)
