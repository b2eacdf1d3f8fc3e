"""What every ``kinko`` command shares: the ``--data-dir`` option, settings, opening the vault.

Every subcommand imports from here (and nothing from ``vault.cli.main``), so the command
modules form no import cycle: ``main`` registers them, they never import ``main``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn

import typer
from rich.console import Console

from vault.settings import Settings

if TYPE_CHECKING:
    from vault.core import Vault

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

# Exit status of a refused command (bad input, missing store, unusable key): the same as a
# usage error, so scripts can tell "you asked for something impossible" from 1 ("checked, and
# found a problem", as ``kinko audit verify`` answers a tampered bundle).
EXIT_ERROR = 2


class CliError(Exception):
    """A command refuses to go on; the message is the whole line the user sees.

    Raised anywhere below a command, it is printed as ``Error: <message>`` on stderr by the
    ``kinko`` group (``vault.cli.errors``), which also maps the vault's own failures.
    """

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def fail(message: str, exit_code: int = EXIT_ERROR) -> NoReturn:
    raise CliError(message, exit_code)


def read_text_file(path: Path, what: str) -> str:
    """A small text file the user named (a key, a kept checkpoint), or one clear refusal."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{what} {path} does not exist")
    except IsADirectoryError:
        fail(f"{what} {path} is a directory, not a file")
    except UnicodeDecodeError:
        fail(f"{what} {path} is not a text file")
    except OSError as exc:
        fail(f"cannot read {what} {path}: {exc.strerror or exc}")


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
    """Settings for a command; invalid ones are reported by the ``kinko`` group in one line."""
    return load_settings(data_dir)


def open_vault(data_dir: Path | None, *, needs: Literal["catalog", "audit"] = "catalog") -> Vault:
    """Open an existing vault's data directory for a tool, beside a running server or not.

    The audit writer thread is not started: tools append with ``append_many`` directly.
    A directory without the store the command needs is refused, so a typo in ``--data-dir``
    never creates an empty vault somewhere.
    """
    from vault.core import Vault

    settings = cli_settings(data_dir)
    if needs == "catalog":
        present = settings.database_url is not None or (settings.data_dir / "catalog.db").exists()
    else:
        present = (
            settings.audit_database_url is not None or (settings.data_dir / "audit.db").exists()
        )
    if not present:
        fail(f"no vault in {settings.data_dir}")
    # An unusable key provider or database is reported by the ``kinko`` group in one line.
    return Vault.open(settings, start_audit_writer=False)
