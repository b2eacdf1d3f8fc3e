"""``kinko case …``: case operations run by the operator on the data directory."""

from __future__ import annotations

from typing import Annotated

import typer

from vault.cli._common import DataDir, console, fail, open_vault

case_app = typer.Typer(no_args_is_help=True)


@case_app.command("shred")
def shred(
    case: Annotated[str, typer.Argument(help="Case id or case number.")],
    data_dir: DataDir = None,
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Required: the case's content is lost for good.")
    ] = False,
    delete_blobs: Annotated[
        bool, typer.Option("--delete-blobs", help="Also delete the (now useless) ciphertext.")
    ] = False,
) -> None:
    """Crypto-shred a closed case: destroy its key, so none of its documents can be read again."""
    from vault.keys import admin as keys_admin

    if not confirm:
        fail(
            "refusing to shred without --confirm: this destroys the case key, and every "
            "document of the case becomes unreadable for good"
        )
    vault = open_vault(data_dir)
    try:
        # Refusals (an unknown or open case) are KinkoErrors: one line from the kinko group.
        shredded, deleted = keys_admin.shred_case(vault, case, delete_blobs=delete_blobs)
    finally:
        vault.close()
    console.print(f"case {shredded.number} ({shredded.id}) shredded; its key is destroyed")
    if delete_blobs:
        console.print(f"deleted {deleted} blobs")
    console.print(
        "note: a running server may still hold the case key in its memory cache; it refuses "
        "the case's documents at once because it reads the tombstone from the catalog"
    )
