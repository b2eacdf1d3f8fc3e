"""Key administration without HTTP: master key rotation, key usage, crypto-shredding.

These functions work on an opened :class:`~vault.core.Vault` and are what ``kinko keys …`` and
``kinko case shred`` run, also beside a server on the same data directory.

Rotation never re-encrypts content.  Only the case keys' wrapping changes: each
``Case.wrapped_key`` is unwrapped with the old master key and wrapped under the new one, one
case per short write transaction, so readers never wait long and always find a wrapping that
opens (the case key itself is unchanged, so everything sealed under it stays valid).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.audit.records import cli_record
from vault.catalog.models import Case, Document, Version
from vault.catalog.queries import stage_and_roles
from vault.errors import BadRequest, Conflict, NotFound
from vault.keys.errors import KeyAdminError, KeyUnavailable
from vault.keys.keyring import SHREDDED_KEY, is_shredded
from vault.keys.kms import AwsKmsKeyProvider
from vault.keys.local import LocalKeyProvider
from vault.keys.provider import KeyProvider
from vault.storage import BlobNotFound

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from vault.audit.log import AuditLog
    from vault.keys.keyring import Keyring
    from vault.storage import BlobStore


class Vault(Protocol):
    """The parts of the assembled vault (``vault.core.Vault``) that key administration uses.

    Named here rather than imported, because ``vault.core`` is built from this package: key
    administration depends on what a vault offers, not on how it is assembled.
    """

    read_session: sessionmaker[Session]
    write_session: sessionmaker[Session]
    keys: Keyring
    blobs: BlobStore
    audit: AuditLog


UNREADABLE = "?"


@dataclass
class RotationReport:
    provider: str
    old_key_id: str
    new_key_id: str
    rewrapped: int = 0
    stragglers: int = 0
    failed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    in_use: dict[str, int] = field(default_factory=dict)


@dataclass
class KeyVersion:
    id: str
    current: bool
    cases: int
    in_provider: bool


# -- usage -----------------------------------------------------------------------------------------


def key_usage(
    vault: Vault, provider: KeyProvider | None = None, session: Session | None = None
) -> Counter[str]:
    """How many (unshredded) case keys each master key version wraps."""
    provider = provider or vault.keys.provider
    usage: Counter[str] = Counter()
    with contextlib.nullcontext(session) if session is not None else vault.read_session() as s:
        for (wrapped,) in s.execute(select(Case.wrapped_key)):
            if is_shredded(wrapped):
                continue
            try:
                usage[provider.key_ids_of(wrapped)] += 1
            except KeyUnavailable:
                usage[UNREADABLE] += 1
    return usage


def key_status(vault: Vault) -> list[KeyVersion]:
    """Every key version the provider holds or a case needs, with its number of case keys."""
    provider = vault.keys.provider
    usage = key_usage(vault, provider)
    current = provider.current_key_id()
    known = provider.key_ids() if isinstance(provider, LocalKeyProvider) else [current]
    ids = list(dict.fromkeys([*known, *sorted(usage)]))
    return [
        KeyVersion(id=i, current=i == current, cases=usage.get(i, 0), in_provider=i in known)
        for i in ids
    ]


# -- rotation --------------------------------------------------------------------------------------


def rewrap_cases(
    vault: Vault,
    old: KeyProvider,
    new: KeyProvider,
    *,
    batch_size: int = 100,
    failed: list[str] | None = None,
) -> int:
    """Re-wrap every case key not yet wrapped by ``new``'s current key; return how many.

    Ids are read in batches; each case is then re-wrapped in its own write transaction that
    re-reads the row, so a case changed meanwhile (shredded, or re-wrapped by a concurrent
    run) is handled correctly and the catalog lock is held only for one row at a time.
    """
    target = new.current_key_id()
    done = 0
    last = ""
    while True:
        with vault.read_session() as s:
            ids = list(
                s.scalars(
                    select(Case.id)
                    .where(Case.id > last, Case.shredded_at.is_(None))
                    .order_by(Case.id)
                    .limit(batch_size)
                )
            )
        if not ids:
            return done
        last = ids[-1]
        for case_id in ids:
            with vault.write_session() as s:
                case = s.get(Case, case_id)
                if case is None or is_shredded(case.wrapped_key):
                    continue
                try:
                    if new.key_ids_of(case.wrapped_key) == target:
                        continue
                except KeyUnavailable:
                    pass  # another provider's format: unwrap below decides
                ctx = {"case_id": case.id}
                try:
                    key = old.unwrap(case.wrapped_key, ctx)
                except KeyUnavailable:
                    if failed is not None:
                        failed.append(case.id)
                    continue
                rewrapped = new.wrap(key, ctx)
                if new.unwrap(rewrapped, ctx) != key:  # never store a wrap we cannot open
                    raise KeyAdminError(f"re-wrapped key of case {case.id} does not round-trip")
                case.wrapped_key = rewrapped
                s.commit()
                done += 1


def rotate(
    vault: Vault,
    *,
    kms_key_id: str | None = None,
    batch_size: int = 100,
    grace_seconds: float = 2.0,
    log: Callable[[str], None] = lambda _m: None,
) -> RotationReport:
    """Make a new master key current, re-wrap every case key under it, drop unused versions.

    Local provider: a new key version is added to the key file and made current.  A server
    running on the same directory notices the replaced file (it re-reads it when it meets an
    unknown key id and before every new wrap), so it unwraps re-wrapped keys and wraps new
    cases under the new key.  After the re-wrap pass we wait ``grace_seconds`` and re-scan for
    stragglers (cases created by a server that wrapped with the old key just before it saw
    the new file), then drop from the file every version no case references.

    AWS KMS: ``kms_key_id`` names the KMS key to move to; case keys are re-wrapped under it.
    KMS keys are never deleted by Kinko.  The operator must then set KINKO_KMS_KEY_ID to it.
    """
    provider = vault.keys.provider
    old_id = provider.current_key_id()
    new: KeyProvider
    if isinstance(provider, LocalKeyProvider):
        if kms_key_id is not None:
            raise BadRequest("--kms-key-id applies to KINKO_KEY_PROVIDER=aws-kms only")
        new_id = provider.rotate()
        new = provider
        log(f"added master key version {new_id} to {provider.path} (now current)")
    else:
        if not isinstance(provider, AwsKmsKeyProvider):
            raise BadRequest(f"provider {provider.name!r} does not support rotation")
        if kms_key_id is None:
            raise BadRequest(
                "with aws-kms, pass --kms-key-id NEW_KEY (rotation of a KMS key's own "
                "material is KMS automatic key rotation, which needs nothing from Kinko)"
            )
        new = provider.rewrap_to(kms_key_id)
        new_id = new.current_key_id()
        log(f"re-wrapping case keys under KMS key {new_id}")
    report = RotationReport(provider.name, old_id, new_id)
    report.rewrapped = rewrap_cases(
        vault, provider, new, batch_size=batch_size, failed=report.failed
    )
    log(f"re-wrapped {report.rewrapped} case keys")
    # Stragglers: a server that wrapped a new case with the old key right before it noticed
    # the rotation.  Re-scan until a pass after the grace period finds none (bounded).
    for _ in range(5):
        time.sleep(grace_seconds)
        n = rewrap_cases(vault, provider, new, batch_size=batch_size, failed=report.failed)
        report.stragglers += n
        if n == 0:
            break
    # The final count and the pruning happen under the catalog's write lock: a case being
    # created wraps its key inside its own write transaction, so it either committed before
    # this count (and is counted) or wraps after it, with the file's new current key.
    with vault.write_session() as s:
        usage = key_usage(vault, new, session=s)
        report.in_use = dict(usage)
        if isinstance(provider, LocalKeyProvider) and not report.failed:
            report.dropped = provider.retain({k for k in usage if k != UNREADABLE})
            if report.dropped:
                log(f"dropped unused master key versions: {', '.join(report.dropped)}")
        s.rollback()
    vault.audit.append_many(
        [
            cli_record(
                "keys rotate",
                "keys.rotate",
                reason=f"rewrapped={report.rewrapped + report.stragglers}",
                target=new_id,
            )
        ]
    )
    return report


# -- crypto-shredding ------------------------------------------------------------------------------


def find_case(vault: Vault, ref: str) -> Case:
    with vault.read_session() as s:
        case = s.get(Case, ref) if len(ref) <= 32 else None
        if case is None:
            case = s.scalar(select(Case).where(Case.number == ref))
        if case is None:
            raise NotFound(f"no case with id or number {ref!r}", code="case_not_found")
        return case


def shred_case(vault: Vault, ref: str, *, delete_blobs: bool = False) -> tuple[Case, int]:
    """Destroy a closed case's key; return the case and the number of blobs deleted.

    The wrapped case key is overwritten with the tombstone and ``shredded_at`` set in one
    write transaction; from then on nothing sealed under the case key can be opened by
    anyone.  Blob deletion (optional) is only tidying up: the ciphertext is useless already.
    """
    now = datetime.now(UTC)
    found = find_case(vault, ref)
    with vault.write_session() as s:
        case = s.get(Case, found.id)
        assert case is not None
        if case.shredded_at is not None or is_shredded(case.wrapped_key):
            raise Conflict("the case is already shredded", code="case_shredded")
        stage, _roles = stage_and_roles(s, case.id, None, now)
        if stage != "closed":
            raise Conflict(
                f"only a closed case can be shredded (case {case.number} is {stage})",
                code="case_not_closed",
            )
        old_wrapped = case.wrapped_key
        case.wrapped_key = SHREDDED_KEY
        case.shredded_at = now
        blob_names = list(
            s.scalars(
                select(Version.blob_name)
                .join(Document, Document.id == Version.document_id)
                .where(Document.case_id == case.id)
            )
        )
        # The audit event is committed before the catalog change: if the log cannot be
        # written the shred does not happen (fail closed), never the other way round.
        vault.audit.append_many(
            [cli_record("case shred", "case.shred", reason="ok", case_id=case.id)]
        )
        s.commit()
    vault.keys.forget(case.id, old_wrapped)
    deleted = 0
    if delete_blobs:
        for name in blob_names:
            with contextlib.suppress(BlobNotFound):  # missing is as good as deleted
                vault.blobs.delete(name)
                deleted += 1
    return case, deleted
