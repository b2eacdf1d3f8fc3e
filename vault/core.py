"""The assembled vault: settings, stores, key provider, guard and audit log in one object.

Both the HTTP server and the CLI open the data directory through ``Vault.open``, so migrations,
key-file creation and crash clean-up happen the same way whichever starts first.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, sessionmaker

from vault.audit.anchor import S3Anchor
from vault.audit.log import AuditLog
from vault.audit.signing import load_or_create_signer
from vault.authz import Guard
from vault.catalog.cache import CatalogCache
from vault.catalog.changes import ChangeWatcher, announce
from vault.db import (
    AUDIT_MIGRATIONS,
    AUDIT_WRITE_LOCK,
    CATALOG_MIGRATIONS,
    CATALOG_WRITE_LOCK,
    make_engine,
    single_statement,
    upgrade,
    writer,
)
from vault.fsio import create_private
from vault.keys import AwsKmsKeyProvider, KeyProvider, Keyring, LocalKeyProvider
from vault.settings import Settings
from vault.storage import BlobStore, LocalBlobStore
from vault.storage.fallback import FallbackBlobStore
from vault.storage.migrate import read_switch


def load_or_create_secret(path: Path) -> bytes:
    """A 32-byte server secret kept in a 0600 file, created once (never two)."""
    if not path.exists():
        create_private(path, secrets.token_hex(32).encode() + b"\n")
    value = bytes.fromhex(path.read_text().strip())
    if len(value) != 32:
        raise ValueError(f"{path} does not hold a 32-byte hex secret")
    return value


def open_key_provider(settings: Settings) -> KeyProvider:
    """The master key provider named by the settings (local key file by default)."""
    if settings.key_provider == "aws-kms":
        assert settings.kms_key_id is not None
        return AwsKmsKeyProvider.connect(settings.kms_key_id)
    return LocalKeyProvider.open_or_create(settings.master_key_path)


def open_blob_store(settings: Settings) -> BlobStore:
    """The blob store named by the settings (local files by default).

    Remote backends are checked here, so a missing bucket or wrong credentials stop the server
    at start-up rather than failing the first upload.  After ``kinko storage migrate`` the
    switch-over record in the data directory names the new backend unless KINKO_STORAGE says
    otherwise, and blobs still on the old local store stay readable through a fallback.
    """
    switched = read_switch(settings.data_dir) or {}
    explicit = "storage" in settings.model_fields_set
    storage = settings.storage if explicit else switched.get("storage", settings.storage)
    if storage == "s3":
        from vault.storage.s3 import S3BlobStore

        bucket = settings.s3_bucket or switched.get("s3_bucket")
        if not bucket:
            raise ValueError("S3 storage needs KINKO_S3_BUCKET")
        s3 = S3BlobStore.connect(
            bucket=bucket,
            prefix=settings.s3_prefix or switched.get("s3_prefix", ""),
            endpoint_url=settings.s3_endpoint_url or switched.get("s3_endpoint_url"),
        )
        if switched and settings.blob_dir.exists():
            return FallbackBlobStore(s3, LocalBlobStore(settings.blob_dir))
        return s3
    return LocalBlobStore(settings.blob_dir)


def open_anchor(settings: Settings) -> S3Anchor | None:
    """The WORM checkpoint anchor, when a bucket is configured (checked at start-up)."""
    if settings.audit_anchor_bucket is None:
        return None
    return S3Anchor.connect(
        settings.audit_anchor_bucket,
        settings.audit_anchor_prefix,
        settings.audit_anchor_retention_days,
        endpoint_url=settings.s3_endpoint_url,
    )


@dataclass
class Vault:
    settings: Settings
    catalog_engine: Engine
    audit_engine: Engine
    read_session: sessionmaker[Session]
    write_session: sessionmaker[Session]
    blobs: BlobStore
    keys: Keyring
    guard: Guard
    audit: AuditLog
    # The server key of idempotency fingerprints (vault.services.idempotency).
    idempotency_secret: bytes = b""
    # Bearer token hash -> what it authenticates as (vault.services.users.authenticate).
    tokens: CatalogCache[str, Any] = field(default_factory=CatalogCache)
    # On PostgreSQL, the server's watcher of other nodes' catalog changes.
    watcher: ChangeWatcher | None = None
    # Connections for the hot read path, which asks the catalog one statement per request.
    lookup_engine: Engine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.lookup_engine = single_statement(self.catalog_engine)

    def lookup(self) -> Connection:
        """A catalog connection for exactly one read statement (no BEGIN, no ORM session)."""
        return self.lookup_engine.connect()

    @classmethod
    def open(
        cls, settings: Settings, *, start_audit_writer: bool = True, server: bool = False
    ) -> Vault:
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # The data directory holds the master key and the databases: nobody else on the host
        # needs to list it.
        os.chmod(data_dir, 0o700)

        guard = Guard(settings.policies_dir)
        # A catalog writer may wait for the audit store while holding the catalog lock, so the
        # catalog's busy timeout outlasts the audit's: a slow log gives 503, never "locked".
        catalog_engine = make_engine(
            settings.catalog_url,
            busy_timeout_s=2 * settings.audit_timeout_seconds + 5,
            write_lock=CATALOG_WRITE_LOCK,
        )
        upgrade(catalog_engine, CATALOG_MIGRATIONS, "alembic_version")
        audit_engine = make_engine(
            settings.audit_url,
            busy_timeout_s=settings.audit_timeout_seconds,
            write_lock=AUDIT_WRITE_LOCK,
            # Appends go through the writer thread's one connection; the rest of the audit
            # store's use (queries, proofs, review decisions) needs a few more.
            pool=(4, 8),
        )
        upgrade(audit_engine, AUDIT_MIGRATIONS, "alembic_version_audit")

        provider = open_key_provider(settings)
        blobs = open_blob_store(settings)
        if server:
            # Leftovers of uploads cut short by a crash were never acknowledged; they go.  Only
            # the server does this at its start: a CLI command opening the same directory
            # beside a running server must not delete that server's uploads in flight.
            blobs.cleanup_incomplete()

        audit = AuditLog(
            audit_engine,
            timeout=settings.audit_timeout_seconds,
            batch_max=settings.audit_batch_max,
            signer=load_or_create_signer(settings.audit_signing_key_path),
            checkpoint_interval=settings.checkpoint_interval_seconds,
            anchor=open_anchor(settings),
        )
        if start_audit_writer:
            audit.start()
        tokens: CatalogCache[str, Any] = CatalogCache(ttl=settings.cache_seconds)
        write_session = sessionmaker(writer(catalog_engine), expire_on_commit=False)

        @event.listens_for(write_session, "after_commit")
        def _catalog_changed(_session: Session) -> None:
            # Whatever this process changed in the catalog, no request after this commit may
            # be answered from what the cache held before it (a revoked token, say).
            tokens.invalidate()

        watcher: ChangeWatcher | None = None
        if catalog_engine.dialect.name == "postgresql":
            # Other nodes' caches are emptied too, the moment this commit lands
            # (vault.catalog.changes); the cache's lifetime stays the bound if they miss it.
            event.listen(write_session, "before_commit", announce)
            if server:
                watcher = ChangeWatcher(settings.catalog_url, tokens.invalidate)
                watcher.start()

        return cls(
            settings=settings,
            catalog_engine=catalog_engine,
            audit_engine=audit_engine,
            read_session=sessionmaker(catalog_engine, expire_on_commit=False),
            write_session=write_session,
            blobs=blobs,
            keys=Keyring(provider),
            guard=guard,
            audit=audit,
            idempotency_secret=load_or_create_secret(settings.server_key_path),
            tokens=tokens,
            watcher=watcher,
        )

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.audit.stop()
        self.catalog_engine.dispose()
        self.audit_engine.dispose()
