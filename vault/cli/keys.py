"""``kinko keys …``: master key rotation and usage, on the data directory directly.

Both commands work beside a running server (see ``vault/keys/admin.py`` for how rotation stays
safe for it).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from vault.cli._common import DataDir, console, err_console, open_vault

keys_app = typer.Typer(no_args_is_help=True)


@keys_app.command("rotate")
def rotate(
    data_dir: DataDir = None,
    kms_key_id: Annotated[
        str | None,
        typer.Option("--kms-key-id", help="aws-kms only: the KMS key to re-wrap under."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Cases read per batch.")] = 100,
    grace: Annotated[
        float, typer.Option(help="Seconds to wait before re-scanning for stragglers.")
    ] = 2.0,
) -> None:
    """Make a new master key current and re-wrap every case key under it (content stays)."""
    from vault.keys import admin as keys_admin

    vault = open_vault(data_dir)
    try:
        # Refusals are KinkoErrors or KeyHandlingErrors: one line from the kinko group.
        report = keys_admin.rotate(
            vault,
            kms_key_id=kms_key_id,
            batch_size=batch_size,
            grace_seconds=grace,
            log=lambda m: console.print(m),
        )
    finally:
        vault.close()
    console.print(
        f"rotated {report.provider}: {report.old_key_id} -> {report.new_key_id}; "
        f"{report.rewrapped + report.stragglers} case keys re-wrapped "
        f"({report.stragglers} stragglers)"
    )
    for key_id, n in sorted(report.in_use.items()):
        console.print(f"  {key_id}: {n} case keys")
    if report.failed:
        err_console.print(
            f"[red]{len(report.failed)} case keys could not be unwrapped and were left as they "
            f"are (no key version was dropped): {', '.join(report.failed)}"
        )
        raise typer.Exit(1)
    if report.provider == "aws-kms":
        console.print(
            f"[bold]ACTION REQUIRED: set KINKO_KMS_KEY_ID={report.new_key_id} for every server "
            "and restart it; until then a running server wraps NEW cases under the old key "
            "(run `kinko keys rotate` again afterwards to re-wrap those). Keep the old KMS key "
            "enabled until `kinko keys status` shows it unused."
        )


@keys_app.command("status")
def status(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Key versions: which is current and how many case keys each still wraps."""
    from vault.keys import admin as keys_admin

    vault = open_vault(data_dir)
    try:
        rows = keys_admin.key_status(vault)
        provider = vault.keys.provider.name
    finally:
        vault.close()
    if as_json:
        print(
            json.dumps(
                {
                    "provider": provider,
                    "keys": [
                        {
                            "id": r.id,
                            "current": r.current,
                            "cases": r.cases,
                            "available": r.in_provider,
                        }
                        for r in rows
                    ],
                }
            )
        )
        return
    table = Table("key version", "current", "case keys", "available", title=provider)
    for r in rows:
        table.add_row(
            r.id,
            "yes" if r.current else "",
            str(r.cases),
            "yes" if r.in_provider else ("?" if provider == "aws-kms" else "MISSING"),
        )
    console.print(table)
