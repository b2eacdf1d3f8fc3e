"""``kinko storage …``: move the vault's blobs to another backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from vault.audit.log import AuditLog
from vault.storage import LocalBlobStore, StorageError
from vault.storage.migrate import migrate, read_switch, write_switch

storage_app = typer.Typer(no_args_is_help=True)
console = Console(stderr=True, highlight=False, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="KINKO_DATA_DIR", help="Data directory of the vault."),
]


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
    from vault.cli.main import load_settings
    from vault.core import open_anchor
    from vault.db import make_engine
    from vault.storage.s3 import S3BlobStore

    settings = load_settings(data_dir)
    if not settings.s3_bucket:
        console.print("[red]set KINKO_S3_BUCKET (and KINKO_S3_ENDPOINT_URL for MinIO/Ceph)")
        raise typer.Exit(2)
    if not settings.blob_dir.exists():
        console.print(f"[red]no local blobs under {settings.blob_dir}")
        raise typer.Exit(2)
    try:
        dest = S3BlobStore.connect(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
        )
    except StorageError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from None
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
            console.print(f"[red]migration stopped: {exc}\nrun the command again to resume")
            raise typer.Exit(1) from None
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
                {
                    "action": "storage.migrate",
                    "decision": "allow",
                    "reason": (
                        f"to=s3 bucket={settings.s3_bucket} copied={report.copied} "
                        f"verified={report.total}"
                    ),
                    "client": {"ip": None, "user_agent": "kinko storage migrate", "device": None},
                }
            ]
        )
    finally:
        engine.dispose()
    console.print(
        f"{report.total} blobs in s3://{settings.s3_bucket}/{settings.s3_prefix} "
        f"({report.copied} copied now, {report.already_there} were already there and verified); "
        f"{'switch-over updated' if previous else 'switched over'}: restart the server."
    )
