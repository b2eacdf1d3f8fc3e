"""The assembled vault: settings, stores, key provider, guard and audit log in one object.

Both the HTTP server and the CLI open the data directory through ``Vault.open``, so migrations,
key-file creation and crash clean-up happen the same way whichever starts first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from vault.audit.log import AuditLog
from vault.audit.signing import load_or_create_signer
from vault.authz import Guard
from vault.crypto import KeyProvider, LocalKeyProvider
from vault.db import AUDIT_MIGRATIONS, CATALOG_MIGRATIONS, make_engine, upgrade, writer
from vault.keyring import Keyring
from vault.settings import Settings
from vault.storage import BlobStore, LocalBlobStore


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
        catalog_engine = make_engine(settings.catalog_url)
        upgrade(catalog_engine, CATALOG_MIGRATIONS, "alembic_version")
        audit_engine = make_engine(
            settings.audit_url, busy_timeout_s=settings.audit_timeout_seconds
        )
        upgrade(audit_engine, AUDIT_MIGRATIONS, "alembic_version_audit")

        provider: KeyProvider = LocalKeyProvider.open_or_create(settings.master_key_path)
        blobs = LocalBlobStore(settings.blob_dir)
        if server:
            # Leftovers of uploads cut short by a crash were never acknowledged; they go.  Only
            # the server does this at its start: a CLI command opening the same directory
            # beside a running server must not delete that server's uploads in flight.
            blobs.cleanup_incomplete()

        audit = AuditLog(
            audit_engine,
            timeout=settings.audit_timeout_seconds,
            batch_max=settings.audit_batch_max,
            signer=load_or_create_signer(data_dir),
            checkpoint_interval=settings.checkpoint_interval_seconds,
        )
        if start_audit_writer:
            audit.start()
        return cls(
            settings=settings,
            catalog_engine=catalog_engine,
            audit_engine=audit_engine,
            read_session=sessionmaker(catalog_engine, expire_on_commit=False),
            write_session=sessionmaker(writer(catalog_engine), expire_on_commit=False),
            blobs=blobs,
            keys=Keyring(provider),
            guard=guard,
            audit=audit,
        )

    def close(self) -> None:
        self.audit.stop()
        self.catalog_engine.dispose()
        self.audit_engine.dispose()
