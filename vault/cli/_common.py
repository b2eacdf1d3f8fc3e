"""What every ``kinko`` command shares: the ``--data-dir`` option, settings, opening the vault.

Every subcommand imports from here (and nothing from ``vault.cli.main``), so the command
modules form no import cycle: ``main`` registers them, they never import ``main``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

from vault.settings import Settings

if TYPE_CHECKING:
    from vault.core import Vault

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="KINKO_DATA_DIR", help="Data directory of the vault."),
]


def load_settings(data_dir: Path | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)  # type: ignore[arg-type]


def cli_settings(data_dir: Path | None) -> Settings:
    """Settings for a command, or one clear line and exit 2 when they are invalid."""
    try:
        return load_settings(data_dir)
    except ValueError as exc:
        err_console.print(f"[red]{exc}")
        raise typer.Exit(2) from None


def open_vault(data_dir: Path | None, *, needs: Literal["catalog", "audit"] = "catalog") -> Vault:
    """Open an existing vault's data directory for a tool, beside a running server or not.

    The audit writer thread is not started: tools append with ``append_many`` directly.
    A directory without the store the command needs is refused, so a typo in ``--data-dir``
    never creates an empty vault somewhere.
    """
    from vault.core import Vault
    from vault.keys import KeyProviderUnavailable

    settings = cli_settings(data_dir)
    if needs == "catalog":
        present = settings.database_url is not None or (settings.data_dir / "catalog.db").exists()
    else:
        present = (settings.data_dir / "audit.db").exists()
    if not present:
        err_console.print(f"[red]no vault in {settings.data_dir}")
        raise typer.Exit(2)
    try:
        return Vault.open(settings, start_audit_writer=False)
    except KeyProviderUnavailable as exc:
        err_console.print(f"[red]key provider unusable: {exc}")
        raise typer.Exit(2) from None
