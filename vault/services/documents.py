"""Documents and versions: listing, metadata, streaming upload and streaming download.

This service owns the whole walk of a content request, so every entry point (API routes, web
pages, disclosure links) calls the same two functions and copies nothing:

- ``read(ctx, doc_id, version, purpose)`` → catalog lookup → guard → key unwrap and first
  segment decrypted → audit event committed → an ``OpenedRead`` whose bytes the caller sends;
- ``upload(ctx, target, chunks)`` → guard → ciphertext streamed to an invisible blob → audit
  event committed → version row committed → the result.  A write that fails at any step
  leaves no visible version, and its blob is removed.

Both run inside one audit scope opened here, like every other service call.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.audit.scope import AuditScope
from vault.catalog.models import Case, Document, IdempotencyRecord, Version
from vault.catalog.queries import (
    MAX_ID,
    ReadLookup,
    StoredVersion,
    evaluator_ids,
    read_lookup,
    user_names,
)
from vault.core import Vault
from vault.crypto import IntegrityError, StreamDecryptor, StreamEncryptor
from vault.crypto.stream import ciphertext_size, new_data_key
from vault.db import STORE_ERRORS
from vault.domain import (
    DEFAULT_MEDIA_TYPE,
    DomainError,
    check_purpose,
    media_type,
    parse_positive_int,
    validate_class,
    validate_title,
)
from vault.errors import (
    BadRequest,
    Conflict,
    IntegrityFailure,
    NotFound,
    PreconditionFailed,
)
from vault.keys import KeyUnavailable, is_shredded
from vault.services import idempotency
from vault.services.context import (
    Ctx,
    JsonBody,
    iso,
    load_case,
    view_of,
    visible_case,
    visible_document,
)
from vault.services.schemas import FinalSet
from vault.storage import BlobNotFound, BlobReader

READ_CHUNK = 1 << 20
# A document up to this size is decrypted and verified whole before its event is written and
# sent in one piece; larger ones stream in READ_CHUNK pieces.  Memory per read stays bounded by
# this constant, whatever the document's size, and a small read saves the thread hops of a
# stream (each piece of a streamed body is fetched from a worker thread).
WHOLE_READ_MAX = 1 << 20

log = logging.getLogger("kinko.documents")


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
    # An entity tag is quoted; a bare number is accepted too, a half-quoted one is not.
    if len(v) >= 2 and v[0] == v[-1] == '"':
        v = v[1:-1]
    number = parse_positive_int(v)
    if number is None:
        raise BadRequest('If-Match must be a version ETag such as "3"', code="invalid_if_match")
    return number


def parse_version(raw: str | None) -> int | None:
    if raw is None:
        return None
    number = parse_positive_int(raw)
    if number is None:
        raise BadRequest("version must be a positive integer", code="invalid_version")
    return number


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
        # Disclosed documents of a case the caller does not belong to are listed only at
        # /public/documents: the case listing itself stays 404 for non-members (SPEC §4.3).
        case, view = visible_case(ctx, s, case_id)
        # A crypto-shredded case answers 410 case_shredded here (from case_key).
        open_title = ctx.vault.keys.title_opener(ctx.vault.keys.case_key(case.id, case.wrapped_key))
        # Plain columns, not ORM objects, and one guard decision per (class, has a final)
        # instead of one per document: a case of 10,000 documents is listed in tens of milliseconds.
        rows = (
            s.connection()
            .execute(
                select(
                    Document.id,
                    Document.doc_class,
                    Document.title_sealed,
                    Document.latest_version,
                    Document.final_version,
                )
                .where(Document.case_id == case.id, Document.latest_version > 0)
                .order_by(Document.created_at, Document.id)
            )
            .all()
        )  # fetched at once: iterating the result row by row cost more than the rows
        scope_of = ctx.vault.guard.listing_scopes(view)
        out = []
        for doc_id, cls, title_sealed, latest, final in rows:
            shown = scope_of(cls, final)
            if shown is not None:
                out.append(
                    {
                        "id": doc_id,
                        "case_id": case.id,
                        "class": cls,
                        "title": open_title(doc_id, title_sealed),
                        "latest_version": final if shown == "final" else latest,
                        "final_version": final,
                    }
                )
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
        )
        stages: dict[str, str] = {}
        for doc, case in rows:
            if case.id not in stages:
                stages[case.id] = view_of(ctx, s, case.id).stage
            if guard.disclosed(doc.doc_class, stages[case.id], doc.final_version):
                if is_shredded(case.wrapped_key):
                    continue  # nothing of a shredded case can be served any more
                key = ctx.vault.keys.case_key(case.id, case.wrapped_key)
                # The case number is public once a document of the case is: the public
                # page names the case a document belongs to.
                item = _doc_item(ctx, key, doc, final_only=True)
                out.append({**item, "case_number": case.number})
        return {"documents": out}


def document_metadata(ctx: Ctx, doc_id: str, *, abilities: bool = False) -> dict[str, Any]:
    """The document's metadata and versions (SPEC §7).

    ``abilities`` adds what the web page may offer, as the guard decides it: ``may`` (``write``:
    a new version and marking final; ``case``: whether the case itself is visible) and, per
    version, ``download``: ``"purpose"`` (a read that must declare one), ``"public"`` (the
    disclosed final version, read without one) or None (refused).
    """
    with ctx.scope("document.meta", document_id=doc_id) as ev, ctx.vault.read_session() as s:
        doc, case, view = visible_document(ctx, s, ev, doc_id)
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
        names = user_names(s, ids)
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
        if abilities:
            guard = ctx.vault.guard
            item["may"] = {
                "write": guard.may_write(view, doc.doc_class),
                "case": view.visible,
                "disclose": guard.may_request_disclosure(
                    ctx.principal, view, doc.doc_class, doc.latest_version, doc.final_version
                ),
            }
            for row in item["versions"]:
                grant = guard.read_grant(
                    ctx.principal,
                    view,
                    doc.doc_class,
                    doc.latest_version,
                    doc.final_version,
                    row["version"],
                )
                row["download"] = (
                    None if grant is None else "purpose" if grant.purpose_required else "public"
                )
        return item


# -- writing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewDocument:
    """Upload target: a new document (version 1) in a case."""

    case_id: str
    cls: str | None
    raw_title: str | None  # the X-Kinko-Title header, still percent-encoded
    raw_content_type: str | None = None  # the Content-Type header, as sent


@dataclass(frozen=True)
class NewVersion:
    """Upload target: the next version of a document."""

    doc_id: str
    raw_if_match: str | None
    raw_content_type: str | None = None  # the Content-Type header, as sent


UploadTarget = NewDocument | NewVersion


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
    # The checked Content-Type, kept (sealed) with the version and sent back on every read.
    content_type: str = "application/octet-stream"
    # An earlier request under the same Idempotency-Key; compared once the body is hashed.
    earlier: IdempotencyRecord | None = None

    def fingerprint(self, ctx: Ctx, digest: str) -> str:
        if self.create:
            return idempotency.fingerprint(
                ctx, "create", self.case_id, self.cls, self.title, digest
            )
        return idempotency.fingerprint(ctx, "version", self.doc_id, self.if_match, digest)


def _replay_result(ctx: Ctx, s: Session, rec: IdempotencyRecord, create: bool) -> dict[str, Any]:
    doc = s.get(Document, rec.resource_id)
    if doc is None:
        raise NotFound("document not found", code="document_not_found")
    if not create:
        return {"version": rec.version}
    case = load_case(s, doc.case_id)
    key = ctx.vault.keys.case_key(case.id, case.wrapped_key)
    return {
        "id": doc.id,
        "class": doc.doc_class,
        "title": ctx.vault.keys.open_title(key, doc.id, doc.title_sealed),
        "version": rec.version,
    }


def _title_of(raw_title: str | None) -> str:
    if raw_title is None:
        raise BadRequest("the X-Kinko-Title header is required", code="title_required")
    title = decode_header_text(raw_title)
    if title is None:
        raise BadRequest("X-Kinko-Title must be percent-encoded UTF-8", code="invalid_title")
    try:
        return validate_title(title)
    except DomainError as e:
        raise BadRequest(e.message, code=e.code) from None


def _content_type_of(raw: str | None) -> str:
    try:
        return media_type(raw)
    except DomainError as e:
        raise BadRequest(e.message, code=e.code) from None


def _plan(ctx: Ctx, ev: AuditScope, target: UploadTarget, idem_key: str | None) -> WritePlan:
    """Decide a write before its body is read: 404 → 403 → 400, then If-Match (412)."""
    guard = ctx.vault.guard
    with ctx.vault.read_session() as s:
        if isinstance(target, NewDocument):
            case, view = visible_case(ctx, s, target.case_id)
            try:
                cls = validate_class(target.cls)
            except DomainError as e:
                raise BadRequest(e.message, code=e.code) from None
            ev.set(cls=cls)
            guard.require_write(view, cls)
            title: str | None = _title_of(target.raw_title)
            doc_id, version, base, if_match = uuid.uuid4().hex, 1, None, None
            scope = f"create:{case.id}:{cls}"
        else:
            if_match = parse_if_match(target.raw_if_match)
            doc, case, view = visible_document(ctx, s, ev, target.doc_id)
            cls = doc.doc_class
            guard.require_write(view, cls)
            title, doc_id, version, base = None, doc.id, doc.latest_version + 1, doc.latest_version
            scope = f"version:{doc.id}"
        # Checked once the caller may write (404 → 403 → 400), before any byte is stored.
        content_type = _content_type_of(target.raw_content_type)
        earlier = idempotency.find(s, ctx, idem_key)
        if earlier is None and if_match is not None and if_match != base:
            raise PreconditionFailed(
                f"the latest version is {base}, not {if_match}", code="version_mismatch"
            )
        return WritePlan(
            case_id=case.id,
            doc_id=doc_id,
            version=version,
            cls=cls,
            create=isinstance(target, NewDocument),
            title=title,
            base_version=base,
            if_match=if_match,
            idem_key=idem_key,
            idem_scope=scope,
            case_key=ctx.vault.keys.case_key(case.id, case.wrapped_key),
            dek=new_data_key(),
            by_evaluator="evaluator" in view.roles,
            earlier=earlier,
            content_type=content_type,
        )


def upload(ctx: Ctx, target: UploadTarget, chunks: Iterable[bytes]) -> dict[str, Any]:
    """Store a new document or version from a stream of plaintext chunks (blocking).

    ``chunks`` may block while the client sends; memory stays flat whatever the size.
    """
    if isinstance(target, NewDocument):
        ev = ctx.scope("document.create", case_id=target.case_id)
    else:
        ev = ctx.scope("document.write", document_id=target.doc_id)
    with ev:
        plan = _plan(ctx, ev, target, idempotency.parse_key(ctx.idempotency_key))
        if plan.earlier is not None:
            # A retry: the body is read (and only hashed) so that a key reused with another
            # body is told apart from a true retry, which creates nothing new.
            digest = _digest_only(chunks)
            return _replay(ctx, ev, plan, plan.earlier, digest)
        blob_name, size, digest = _store(ctx, plan, chunks)
        return _commit(ctx, ev, plan, blob_name, size, digest)


def _digest_only(chunks: Iterable[bytes]) -> str:
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    return sha.hexdigest()


def _replay(
    ctx: Ctx, ev: AuditScope, plan: WritePlan, rec: IdempotencyRecord, digest: str
) -> dict[str, Any]:
    idempotency.check(rec, plan.idem_scope, plan.fingerprint(ctx, digest))
    ev.set(document_id=rec.resource_id, version=rec.version)
    with ctx.vault.read_session() as s:
        result = _replay_result(ctx, s, rec, create=plan.create)
    ev.allow(reason="idempotent_replay")
    return result


def _store(ctx: Ctx, plan: WritePlan, chunks: Iterable[bytes]) -> tuple[str, int, str]:
    """Encrypt the plaintext stream into a new, still invisible blob; returns its name."""
    encryptor = StreamEncryptor(plan.dek, plan.doc_id, plan.version)
    sha = hashlib.sha256()
    size = 0
    with ctx.vault.blobs.writer() as writer:
        for chunk in chunks:
            sha.update(chunk)
            size += len(chunk)
            out = encryptor.update(chunk)
            if out:
                writer.write(out)
        writer.write(encryptor.finalize())
        name = writer.commit()
    return name, size, sha.hexdigest()


def _commit(
    ctx: Ctx, ev: AuditScope, plan: WritePlan, blob_name: str, size: int, digest: str
) -> dict[str, Any]:
    """Make an uploaded version visible, after its audit event is committed."""
    vault = ctx.vault
    now = ctx.now()
    fp = plan.fingerprint(ctx, digest)
    committing = False
    try:
        with vault.write_session() as s:
            # Everything decided before the upload is decided again under the write lock: the
            # stage may have moved or the membership expired while the body was streaming.
            case = load_case(s, plan.case_id)
            view = view_of(ctx, s, case.id, now)
            vault.guard.require_write(view, plan.cls)
            rec = idempotency.lookup(s, ctx, plan.idem_key, plan.idem_scope, fp)
            if rec is not None:
                _discard(ctx, blob_name)
                ev.set(document_id=rec.resource_id, version=rec.version)
                result = _replay_result(ctx, s, rec, create=plan.create)
                ev.allow(reason="idempotent_replay")
                return result
            if ctx.principal.user_id is None:
                raise NotFound("case not found", code="case_not_found")
            if plan.create:
                if plan.title is None:
                    raise BadRequest("the X-Kinko-Title header is required", code="title_required")
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
                if existing is None:
                    raise NotFound("document not found", code="document_not_found")
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
                    content_type_sealed=vault.keys.seal_content_type(
                        plan.case_key, plan.doc_id, plan.version, plan.content_type
                    ),
                )
            )
            doc.latest_version = plan.version
            idempotency.remember(
                s, ctx, plan.idem_key, plan.idem_scope, fp, plan.doc_id, plan.version
            )
            s.flush()
            ev.set(document_id=plan.doc_id, version=plan.version)
            ev.allow()
            committing = True
            s.commit()
    except BaseException as exc:
        # A commit that failed on the connection (a database failover, a node cut off at
        # that moment) may have landed all the same: the version would then be visible and
        # need its blob.  Such a blob is kept; if the version did not land, it is ciphertext
        # nobody refers to, which ``kinko storage gc`` removes.
        if not (committing and isinstance(exc, STORE_ERRORS)):
            _discard(ctx, blob_name)
        raise
    if plan.create:
        return {"id": plan.doc_id, "class": plan.cls, "title": plan.title, "version": 1}
    return {"version": plan.version}


def _discard(ctx: Ctx, blob_name: str) -> None:
    """Remove the blob of a write that did not become visible.

    A failure to delete must not replace the error the caller should see (a 409 or 412): the
    blob is ciphertext nobody references, which ``kinko storage gc`` collects later.
    """
    try:
        ctx.vault.blobs.delete(blob_name)
    except Exception:
        log.warning("could not remove the blob of a failed write; storage gc will", exc_info=True)


def finalize(ctx: Ctx, doc_id: str, body: JsonBody) -> dict[str, Any]:
    with (
        ctx.scope("document.finalize", document_id=doc_id) as ev,
        ctx.vault.write_session() as s,
    ):
        doc, _case, view = visible_document(ctx, s, ev, doc_id)
        ctx.vault.guard.require_write(view, doc.doc_class)
        version = body.parse(FinalSet).version
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
    """A read that is authorised, audited and verified up to its first chunk.

    ``first`` is verified plaintext in pieces (a small document: all of it, one piece per
    segment); ``rest`` yields what follows, if anything.
    """

    version: int
    size: int
    sha256: str
    first: list[bytes]
    rest: Generator[bytes, None, None]
    # What the response says about the bytes (see vault.api.documents._content_headers):
    # the media type the version was uploaded with, and the document title for its filename.
    content_type: str = DEFAULT_MEDIA_TYPE
    title: str = ""


def nothing_more() -> Generator[bytes, None, None]:
    """The rest of a read that was decrypted whole: nothing."""
    yield from ()


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


def _purpose_of(raw: str | None) -> str:
    """The decoded, checked purpose; 400 ``purpose_required`` / ``purpose_invalid``."""
    if raw is None:
        text = None
    else:
        text = decode_header_text(raw)
        if text is None:
            raise BadRequest(
                "X-Access-Purpose must be percent-encoded UTF-8", code="purpose_invalid"
            )
    try:
        return check_purpose(text)
    except DomainError as e:
        raise BadRequest(e.message, code=e.code) from None


def _usable_purpose(text: str | None) -> str | None:
    try:
        return check_purpose(text)
    except DomainError:
        return None


def read(
    ctx: Ctx, doc_id: str, version: str | None, purpose: str | None, *, head: bool = False
) -> OpenedRead:
    """A content read by a case member (rule 1) or of a disclosed final version (rule 2).

    ``head`` is ``HEAD`` on the content route: the same decision (404 → 403 → 400, purpose
    included, so HEAD answers what GET would), the same checks of the stored version, and the
    same headers, but no byte of content leaves.  It is audited as ``document.head`` with the
    purpose it declared: a probe of size, digest and type is on the record, and it opens no
    access review, because no content was read (SPEC §6 reviews content reads).
    """
    return _read(ctx, doc_id, version, purpose, public=False, head=head)


def read_public(ctx: Ctx, doc_id: str, *, head: bool = False) -> OpenedRead:
    """The final version of a disclosed document, to anyone, with no purpose and no review."""
    return _read(ctx, doc_id, None, None, public=True, head=head)


def _read(
    ctx: Ctx,
    doc_id: str,
    raw_version: str | None,
    raw_purpose: str | None,
    *,
    public: bool,
    head: bool = False,
) -> OpenedRead:
    vault = ctx.vault
    guard = vault.guard
    action = "document.head" if head else "document.read"
    with ctx.scope(action, document_id=doc_id) as ev:
        requested = parse_version(raw_version)
        # What was sent is recorded (decoded, capped) even when it is refused below; a read
        # that needs no purpose keeps it only if it is a usable one (below).
        sent = decode_header_text(raw_purpose)
        ev.set(purpose=sent[:500] if sent else None)
        with vault.lookup() as conn:
            found = read_lookup(conn, doc_id, ctx.principal.user_id, ctx.now(), requested)
        if found is None:
            # The view of a missing document is computed (and thrown away) like that of a
            # hidden one, so that both refusals do the same work.
            guard.case_view(ctx.principal, doc_id[:MAX_ID], "drafting", ())
            guard.require_document(None, None, None)
            raise NotFound("document not found", code="document_not_found")  # unreachable
        ref = found.ref
        ev.set(case_id=ref.case_id, cls=ref.cls)
        view = guard.require_document(
            guard.case_view(ctx.principal, ref.case_id, found.stage, found.roles),
            ref.cls,
            ref.final_version,
        )
        if public:
            grant = guard.public_read(view, ref.cls, ref.final_version)
        else:
            grant = guard.content_read(
                ctx.principal, view, ref.cls, found.latest_version, ref.final_version, requested
            )
        ev.set(version=grant.version)
        if grant.purpose_required:
            ev.set(purpose=_purpose_of(raw_purpose))
        else:
            # Disclosed content needs no purpose; an unusable header is not recorded as if
            # it were one (it could hold line breaks posing as several report rows).
            ev.set(purpose=_usable_purpose(sent))
        opened = open_version(vault, found, grant.version)
        try:
            # "disclosed" marks a read that needs no purpose and opens no access review (§6).
            ev.allow(reason="disclosed" if not grant.purpose_required else "ok")
        except BaseException:
            opened.rest.close()
            raise
        return opened


def open_version(vault: Vault, found: ReadLookup, version: int) -> OpenedRead:
    """One version of a looked-up document, opened and verified up to its first chunk.

    Whoever calls this has decided the read is allowed; it writes no audit event, which is
    the caller's to write before the first byte leaves (content reads, disclosure links).
    """
    ref = found.ref
    row = found.versions.get(version)
    if row is None:
        raise IntegrityFailure("the catalog names a missing version", code="integrity_error")
    key = vault.keys.case_key(ref.case_id, found.wrapped_key)
    try:
        digest = vault.keys.open_digest(key, ref.id, row.version, row.sha256_sealed)
        dek = vault.keys.unwrap_dek(key, ref.id, row.version, row.wrapped_dek)
        content_type, title = _described(vault, key, ref.id, found.title_sealed, row)
    except (KeyUnavailable, IntegrityError):
        # A sealed field that fails to open means the catalog row was altered or moved.
        raise IntegrityFailure(
            "stored key material failed authentication", code="integrity_error"
        ) from None
    try:
        reader = vault.blobs.open(row.blob_name)
    except BlobNotFound:
        raise IntegrityFailure("stored content is missing", code="content_missing") from None
    decryptor = StreamDecryptor(dek, ref.id, row.version)
    try:
        # The first chunk is decrypted and verified before the event is written and
        # before the response starts, so a swapped or corrupted blob is answered with an
        # error status instead of a 200 that breaks off.  A small document is fetched in
        # one read and verified to its end; a large one streams in READ_CHUNK pieces.
        # The blob's own size is checked too: the catalog's size is not sealed, and a
        # replaced blob must not be read into memory whole whatever its length.
        if row.size <= WHOLE_READ_MAX and reader.size <= ciphertext_size(WHOLE_READ_MAX):
            with reader:
                first = decryptor.decrypt_all(reader.read())
            if sum(len(piece) for piece in first) != row.size:
                raise IntegrityError
            chunks = nothing_more()
        else:
            chunks = _plaintext_chunks(reader, decryptor)
            first = [next(chunks, b"")]
    except IntegrityError:
        reader.close()
        raise IntegrityFailure(
            "stored content failed authentication", code="integrity_error"
        ) from None
    return OpenedRead(
        version=row.version,
        size=row.size,
        sha256=digest,
        first=first,
        rest=chunks,
        content_type=content_type,
        title=title,
    )


def _described(
    vault: Vault, key: bytes, doc_id: str, title_sealed: bytes, row: StoredVersion
) -> tuple[str, str]:
    """The version's media type and the document's title, both opened from their seals."""
    sealed = row.content_type_sealed
    content_type = (
        DEFAULT_MEDIA_TYPE
        if sealed is None
        else vault.keys.open_content_type(key, doc_id, row.version, sealed)
    )
    return content_type, vault.keys.open_title(key, doc_id, title_sealed)
