"""``kinko storage …``: move the vault's blobs to another backend, collect unreferenced ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from vault.audit.log import AuditLog
from vault.audit.records import cli_record
from vault.cli._common import DataDir, fail, load_settings
from vault.storage import BlobStore, LocalBlobStore, StorageError
from vault.storage.migrate import migrate, read_switch, write_switch

storage_app = typer.Typer(no_args_is_help=True)
console = Console(stderr=True, highlight=False, soft_wrap=True)


@storage_app.command("migrate")
def migrate_cmd(
    to: Annotated[Literal["s3"], typer.Option("--to", help="Destination backend.")],
    data_dir: DataDir = None,
) -> None:
    """Copy every blob to S3 (KINKO_S3_*), verify each by hash, then switch over.

    Interrupted, it can simply be run again: blobs already copied are verified, not copied
    twice.  Restart the server afterwards; until then it keeps writing locally, and those
    blobs stay readable and are copied by the next run.
    """
    from vault.core import open_anchor
    from vault.db import make_engine
    from vault.storage.s3 import S3BlobStore

    settings = load_settings(data_dir)
    if not settings.s3_bucket:
        fail("set KINKO_S3_BUCKET (and KINKO_S3_ENDPOINT_URL for MinIO/Ceph)")
    if not settings.blob_dir.exists():
        fail(f"no local blobs under {settings.blob_dir}")
    # A bucket that is missing or refuses the credentials is a StorageError: one line.
    dest = S3BlobStore.connect(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url,
    )
    source = LocalBlobStore(settings.blob_dir)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[blobs]} blobs"),
        console=console,
    ) as bar:
        task = bar.add_task("copying to S3", total=None, blobs=0)

        def step(_name: str, copied: bool, size: int) -> None:
            done = int(bar.tasks[task].fields["blobs"]) + 1
            bar.update(task, advance=size, blobs=done)

        try:
            report = migrate(source, dest, progress=step)
        except StorageError as exc:
            fail(f"migration stopped: {exc}; run the command again to resume", 1)
    previous = read_switch(settings.data_dir)
    write_switch(
        settings.data_dir,
        {
            "storage": "s3",
            "s3_bucket": settings.s3_bucket,
            "s3_prefix": settings.s3_prefix,
            "s3_endpoint_url": settings.s3_endpoint_url,
        },
    )
    engine = make_engine(settings.audit_url, busy_timeout_s=settings.audit_timeout_seconds)
    try:
        AuditLog(engine, anchor=open_anchor(settings)).append_many(
            [
                cli_record(
                    "storage migrate",
                    "storage.migrate",
                    reason=(
                        f"to=s3 bucket={settings.s3_bucket} copied={report.copied} "
                        f"verified={report.total}"
                    ),
                )
            ]
        )
    finally:
        engine.dispose()
    console.print(
        f"{report.total} blobs in s3://{settings.s3_bucket}/{settings.s3_prefix} "
        f"({report.copied} copied now, {report.already_there} were already there and verified); "
        f"{'switch-over updated' if previous else 'switched over'}: restart the server."
    )


def _where(store: BlobStore) -> str:
    """Where a backend keeps its blobs, for the listing an operator checks before --delete."""
    from vault.storage.s3 import S3BlobStore

    if isinstance(store, S3BlobStore):
        return f"s3://{store.bucket}/{store.prefix}"
    if isinstance(store, LocalBlobStore):
        return "local"
    return type(store).__name__


@storage_app.command("gc")
def gc_cmd(
    data_dir: DataDir = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete the blobs listed (default: only list).")
    ] = False,
    grace_hours: Annotated[
        float,
        typer.Option(
            "--grace-hours",
            min=0.0,
            help="Only blobs older than this are candidates (uploads in flight are younger).",
        ),
    ] = 24.0,
) -> None:
    """List (or with --delete, delete) blobs that no document version refers to.

    Works on the store the server uses, and after a migration on both the new and the old
    store.  Safe beside a running server: a blob younger than the grace period is never a
    candidate, because an upload commits its blob a moment before its version row.
    """
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from vault.catalog.models import Version
    from vault.core import open_anchor, open_blob_store
    from vault.db import make_engine
    from vault.storage.gc import delete_orphans, find_orphans

    settings = load_settings(data_dir)
    if settings.database_url is None and not (settings.data_dir / "catalog.db").exists():
        # Without a catalog every blob would look unreferenced; refusing is the only safe answer.
        fail(f"no vault in {settings.data_dir}")
    try:
        store = open_blob_store(settings)
    except ValueError as exc:  # settings that name no bucket; StorageError is reported above us
        fail(str(exc))

    catalog = make_engine(settings.catalog_url)

    def referenced() -> set[str]:
        with catalog.connect() as conn:
            return set(conn.scalars(select(Version.blob_name)))

    try:
        plan = find_orphans(store, referenced, grace=timedelta(hours=grace_hours))
    except SQLAlchemyError as exc:
        # An unreadable catalog must stop the collection: an empty answer would doom every blob.
        fail(
            f"cannot read the catalog database: {getattr(exc, 'orig', None) or type(exc).__name__}"
        )
    finally:
        catalog.dispose()

    out = Console(highlight=False, soft_wrap=True)
    for orphan in plan.orphans:
        entry = orphan.entry
        out.print(
            f"{entry.name}  {entry.size:>12}  {entry.modified:%Y-%m-%dT%H:%M:%SZ}  "
            f"{_where(orphan.store)}"
        )
    if plan.too_young:
        out.print(
            f"{plan.too_young} unreferenced blobs younger than {grace_hours:g} hours were left "
            "alone (they may belong to uploads in flight)"
        )
    if not delete:
        out.print(
            f"would delete {plan.count} blobs ({plan.total_bytes} bytes); "
            "run again with --delete to delete them"
        )
        return
    if not plan.orphans:
        out.print("deleted 0 blobs (0 bytes)")
        return
    engine = make_engine(settings.audit_url, busy_timeout_s=settings.audit_timeout_seconds)
    try:
        # The event is committed before anything is deleted: if the log cannot be written,
        # nothing is deleted (fail closed), as for every other destructive command.  It
        # records what this run is about to delete; a run stopped half-way says so below,
        # and the next run deletes (and records) the rest.
        AuditLog(engine, anchor=open_anchor(settings)).append_many(
            [
                cli_record(
                    "storage gc",
                    "storage.gc",
                    reason=f"deleted={plan.count} bytes={plan.total_bytes}",
                )
            ]
        )
    finally:
        engine.dispose()
    try:
        deleted, size = delete_orphans(plan)
    except StorageError as exc:
        fail(f"garbage collection stopped: {exc}; run the command again", 1)
    out.print(f"deleted {deleted} blobs ({size} bytes)")
