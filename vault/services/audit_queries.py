"""The audit log for auditors: event queries, the latest checkpoint, its verifier key, and
export bundles.  The API routes (``/api/v1/audit/*``), the web pages (``/ui/audit``) and the
``kinko audit`` commands all come here, so each answers from the same walk.

Every call is one audit event of its own (``audit.query``, ``audit.checkpoint.read``, ...),
written after the guard decided and before the answer leaves.
"""

from __future__ import annotations

import re
import shutil
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from vault.audit.bundle import write_bundle
from vault.audit.models import AuditEvent
from vault.audit.tree import TreeReader
from vault.core import Vault
from vault.db import snapshot
from vault.errors import BadRequest, NotFound
from vault.services.context import Ctx

_INT = re.compile(r"-?[0-9]{1,18}")
DEFAULT_LIMIT = 100


def parse_int(raw: str | None, name: str, default: int | None = None) -> int:
    """An integer query parameter; 400 ``invalid_<name>`` when missing (without a default)
    or not an integer."""
    if raw is None:
        if default is None:
            raise BadRequest(f"{name} is required", code=f"invalid_{name}")
        return default
    if not _INT.fullmatch(raw):
        raise BadRequest(f"{name} must be an integer", code=f"invalid_{name}")
    return int(raw)


@dataclass(frozen=True)
class EventFilters:
    """The filters of ``GET /api/v1/audit/events`` as they arrived (raw text or None)."""

    actor: str | None = None
    case_id: str | None = None
    document_id: str | None = None
    action: str | None = None
    decision: str | None = None
    since: str | None = None
    until: str | None = None
    limit: str | None = None
    cursor: str | None = None


def query_events(ctx: Ctx, filters: EventFilters) -> dict[str, Any]:
    """One page of events in ascending ``seq`` order and the cursor of the next page."""
    with ctx.scope("audit.query", case_id=filters.case_id, document_id=filters.document_id) as ev:
        ctx.vault.guard.require_audit_reader(ctx.principal)
        events, next_cursor = ctx.vault.audit.query(
            actor=filters.actor,
            case_id=filters.case_id,
            document_id=filters.document_id,
            action=filters.action,
            decision=filters.decision,
            since=filters.since,
            until=filters.until,
            limit=parse_int(filters.limit, "limit", DEFAULT_LIMIT),
            cursor=filters.cursor,
        )
        # The query's own event is written before the answer leaves, like every other.
        ev.allow()
        return {"events": events, "next_cursor": next_cursor}


def latest_checkpoint(ctx: Ctx) -> str:
    """The newest signed checkpoint note; 404 before the first one is cut."""
    with ctx.scope("audit.checkpoint.read"):
        ctx.vault.guard.require_audit_reader(ctx.principal)
        note = ctx.vault.audit.latest_checkpoint()
        if note is None:
            raise NotFound("no checkpoint has been cut yet", code="no_checkpoint")
        return note


def verifier_key(ctx: Ctx) -> str:
    """The checkpoint verifier key (signed-note format), ending in a newline."""
    with ctx.scope("audit.public_key.read"):
        ctx.vault.guard.require_audit_reader(ctx.principal)
        signer = ctx.vault.audit.signer
        if signer is None:
            raise NotFound("no checkpoint signing key", code="no_signing_key")
        return signer.verifier_key() + "\n"


# -- export bundles ----------------------------------------------------------------------------


def export_snapshot(vault: Vault, out: Path, since_seq: int = 0) -> int:
    """Write one consistent snapshot of the log as a bundle; returns the number of events.

    The operator's ``kinko audit export`` calls this directly on the data directory; an
    auditor's request goes through ``export_archive``, which checks and logs it first.
    """
    signer = vault.audit.signer
    assert signer is not None
    with snapshot(vault.audit_engine).connect() as conn, conn.begin():
        # Everything below is read inside one transaction that sees one snapshot (vault.db),
        # so events, tree and checkpoints agree even while the nodes keep appending.
        size = vault.audit.size_in(conn)
        first = min(max(since_seq, 0), size)
        frontier = TreeReader(conn).frontier(first) if first > 0 else None
        checkpoints = vault.audit.checkpoints(conn)
        rows = conn.execution_options(yield_per=10_000).execute(
            select(AuditEvent.canonical)
            .where(AuditEvent.seq >= first, AuditEvent.seq < size)
            .order_by(AuditEvent.seq)
        )
        write_bundle(
            out,
            (bytes(r[0]) for r in rows),
            checkpoints,
            signer.verifier_key(),
            signer.name,
            first,
            frontier,
        )
    return size - first


@dataclass(frozen=True)
class Archive:
    path: Path  # the .tar.gz file, inside the caller's work directory
    name: str  # the file name to offer the browser
    events: int


def export_archive(ctx: Ctx, workdir: Path) -> Archive:
    """The whole log as a bundle (what ``kinko audit export`` writes), packed as a tar.gz.

    ``workdir`` is an empty directory the caller owns and removes afterwards; the bundle and
    the archive are written there on disk, so the answer streams from a file and memory does
    not grow with the log.  The ``audit.export`` event is written before the snapshot is
    taken, so the bundle holds the record of its own export.
    """
    with ctx.scope("audit.export") as ev:
        ctx.vault.guard.require_audit_reader(ctx.principal)
        if ctx.vault.audit.signer is None:
            raise NotFound("no checkpoint signing key", code="no_signing_key")
        ev.allow()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"kinko-audit-{stamp}"
        bundle = workdir / name
        count = export_snapshot(ctx.vault, bundle)
        target = workdir / f"{name}.tar.gz"
        with tarfile.open(target, "w:gz") as tar:
            tar.add(bundle, arcname=name)
        # The archive holds everything now; the unpacked copy need not wait for the answer.
        shutil.rmtree(bundle, ignore_errors=True)
        return Archive(path=target, name=f"{name}.tar.gz", events=count)
