"""How a ``kinko`` command fails: one clear line on stderr and exit status 2, never a traceback.

The people at the terminal are office workers and operators, not Python programmers; a page of
stack frames for a mistyped file name tells them nothing and hides the one sentence that would.
Every command runs inside :class:`KinkoGroup`, the click group of the ``kinko`` app, which turns
the failures a user can cause or fix into ``Error: <what is wrong>``:

CliError                   a command's own refusal (bad argument, missing store, ...)
KinkoError                 a service refusal (bad date, unknown case, key administration)
KeyHandlingError           the master key or key provider cannot be used
SigningKeyError, NoteError the audit signing or verifier key is unusable
BundleError, AnchorError   a bundle cannot be written; the WORM anchor is unusable
StorageError               the blob store cannot be used
OSError with a file name   a file that is missing, unreadable or not writable
pydantic ValidationError   invalid ``KINKO_*`` settings (or flags)
SQLAlchemy connection and  the database cannot be reached or its URL is wrong
URL errors, and a missing
database driver

Anything else is a bug and keeps its traceback, so that it can be reported and fixed.
``KINKO_DEBUG=1`` shows the traceback of the known failures too.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from vault.cli._common import EXIT_ERROR, CliError, err_console

__all__ = ["KinkoGroup", "describe"]

# Database drivers SQLAlchemy imports when a URL names them; a missing one is a set-up problem
# (the URL asks for a driver that was never installed), not a bug.
_DB_DRIVERS = frozenset(
    {"psycopg", "psycopg2", "pg8000", "asyncpg", "pymysql", "MySQLdb", "oracledb", "pyodbc"}
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _settings_problem(exc: Any) -> str:
    """Name each invalid setting by the variable a user sets (``KINKO_TIMEZONE``)."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "__root__"]
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        if loc:
            parts.append(f"KINKO_{loc[0].upper()}: {msg}")
        else:
            parts.append(msg)
    return "invalid settings: " + "; ".join(parts)


def describe(exc: BaseException) -> str | None:
    """The line shown for a failure a user can act on, or None for a bug."""
    # Imported here: each pulls in a part of the vault that not every command needs.
    from pydantic import ValidationError
    from sqlalchemy import exc as sa_exc

    from vault.audit.anchor import AnchorError
    from vault.audit.bundle import BundleError
    from vault.audit.note import NoteError
    from vault.audit.signing import SigningKeyError
    from vault.errors import KinkoError
    from vault.keys import KeyHandlingError
    from vault.storage import StorageError

    if isinstance(exc, CliError):
        return exc.message
    if isinstance(exc, KinkoError):
        return exc.message
    if isinstance(exc, KeyHandlingError):
        return f"the master key cannot be used: {exc}"
    if isinstance(exc, SigningKeyError):
        return str(exc)
    if isinstance(exc, NoteError):
        return f"unusable key or checkpoint: {exc}"
    if isinstance(exc, BundleError | AnchorError | StorageError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return _settings_problem(exc)
    if isinstance(exc, sa_exc.NoSuchModuleError | sa_exc.ArgumentError):
        return f"the database URL is not usable: {exc}"
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        # The driver's own message says what failed ("unable to open database file",
        # "connection refused"); SQLAlchemy's wrapper adds the statement and a web link.
        return f"cannot use the database: {exc.orig}"
    if isinstance(exc, ModuleNotFoundError) and exc.name == "psycopg":
        return (
            "PostgreSQL needs the driver psycopg 3, which is not installed "
            "(pip install 'kinko[postgresql]')"
        )
    if isinstance(exc, ModuleNotFoundError) and exc.name in _DB_DRIVERS:
        return (
            f"the database URL needs the driver {exc.name!r}, which is not installed "
            f"(pip install {exc.name})"
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


class KinkoGroup(TyperGroup):
    """The ``kinko`` group: every subcommand's known failures become one line (see above)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # Typer's own control flow (exit codes, usage errors, Ctrl-C) is none of the kinds
            # below, so it passes through unchanged, as do bugs.
            line = describe(exc)
            if line is None or os.environ.get("KINKO_DEBUG") == "1":
                raise
            err_console.print(Text(f"Error: {_one_line(line)}", style="red"))
            code = exc.exit_code if isinstance(exc, CliError) else EXIT_ERROR
            raise typer.Exit(code) from None
