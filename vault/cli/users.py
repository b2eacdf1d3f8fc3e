"""``kinko users …``: user operations run by the operator on the data directory."""

from __future__ import annotations

from typing import Annotated

import typer

from vault.cli._common import DataDir, console, open_vault

users_app = typer.Typer(no_args_is_help=True)


@users_app.command("invite")
def invite(
    name: Annotated[str, typer.Argument(help="The user who is to set a (new) password.")],
    data_dir: DataDir = None,
) -> None:
    """Print a one-time link (valid 72 hours) with which the user sets a password.

    A new invitation replaces an unused earlier one, and redeeming it resets a forgotten
    password.  The link is a credential: hand it to the user only.
    """
    from vault.services.accounts import invite_as_operator

    vault = open_vault(data_dir)
    try:
        link = invite_as_operator(vault, name, vault.settings.link_base)
    finally:
        vault.close()
    console.print(link["url"])
    console.print(f"valid until {link['expires_at']}; it can be used once", style="dim")
