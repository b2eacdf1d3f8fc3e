"""``kinko sync DIR --server URL [--purpose TEXT] [--once] [--restore]``,
``kinko sync status DIR``.

Registered as the single command ``sync`` (not a sub-app: a group callback taking DIR would
parse ``kinko sync status DIR`` as DIR="status"). The first argument ``status`` followed by a
directory selects the status report; to sync a directory literally named ``status``, write
``./status``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from clients.api import KinkoClient

DEFAULT_PURPOSE = "workstation sync"
INTERVAL_SECONDS = 2.0


def _token(token_file: Path | None, server: str) -> str:
    if token_file is not None:
        return token_file.read_text(encoding="utf-8").strip()
    token = os.environ.get("KINKO_TOKEN", "").strip()
    if token:
        return token
    # The OS keyring, when the optional ``keyring`` package is installed:
    # ``keyring set kinko <server URL>`` stores the token there.
    try:
        import keyring  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        keyring = None
    if keyring is not None:
        stored = keyring.get_password("kinko", server)
        if stored:
            return str(stored).strip()
    raise typer.BadParameter("set KINKO_TOKEN, pass --token-file, or store it in the keyring")


def sync_command(
    target: Annotated[str, typer.Argument(metavar="DIR", help="Sync folder (or 'status').")],
    status_dir: Annotated[
        Path | None, typer.Argument(metavar="[DIR]", help="With 'status': the sync folder.")
    ] = None,
    server: Annotated[
        str | None, typer.Option("--server", envvar="KINKO_SERVER", help="Server URL.")
    ] = None,
    purpose: Annotated[
        str, typer.Option(help="Access purpose recorded with every download.")
    ] = DEFAULT_PURPOSE,
    once: Annotated[bool, typer.Option("--once", help="One full pass, then exit.")] = False,
    restore: Annotated[
        bool, typer.Option("--restore", help="Download again documents deleted locally.")
    ] = False,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="File holding the API token.")
    ] = None,
) -> None:
    """Mirror the documents you may read into DIR and upload your edits; or show the status."""
    from clients.sync.engine import PassReport, SyncEngine, status_lines

    if target == "status" and status_dir is not None:
        lines = status_lines(status_dir)
        for line in lines:
            typer.echo(line)
        raise typer.Exit(1 if lines[0].endswith("state.db)") else 0)
    if status_dir is not None:
        raise typer.BadParameter(f"unexpected argument {status_dir}")
    if server is None:
        raise typer.BadParameter("--server is required")
    root = Path(target)
    with (
        KinkoClient(server, _token(token_file, server)) as client,
        SyncEngine(root, client, purpose=purpose) as engine,
        _progress(engine),
    ):
        if once:
            report = engine.run_once(restore=restore)
            _print(report)
            raise typer.Exit(0 if report.in_step else 1)
        from clients.sync.watch import watch

        # watchdog warns when a directory created during a burst is registered twice and then
        # replaces the callback; harmless, and noise on a user's terminal.
        warnings.filterwarnings(
            "ignore", message="Callback with id .* already exists", category=RuntimeWarning
        )

        def show(report: PassReport) -> None:
            if report.downloaded or report.uploaded or report.errors or report.conflicts:
                _print(report)

        # Watches DIR (a local change is sent once it settles), polls the server every
        # INTERVAL_SECONDS and returns on Ctrl-C.
        watch(engine, poll_seconds=INTERVAL_SECONDS, restore=restore, on_report=show)


@contextlib.contextmanager
def _progress(engine: Any) -> Iterator[None]:
    """A Rich progress bar (bytes and files) on the terminal while files move."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[files]} files"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("syncing", total=None, files=0)

        def moved(path: str, nbytes: int, finished: bool) -> None:
            files = int(bar.tasks[task].fields["files"]) + (1 if finished else 0)
            bar.update(task, advance=nbytes, files=files, description=path[-40:])

        engine.on_transfer = moved
        try:
            yield
        finally:
            engine.on_transfer = None


def _print(report: object) -> None:
    from clients.sync.engine import PassReport

    assert isinstance(report, PassReport)
    for label, items in (
        ("downloaded", report.downloaded),
        ("uploaded", report.uploaded),
        ("conflict", report.conflicts),
        ("removed", report.removed),
        ("quarantined", report.quarantined),
        ("not uploaded (no write access)", report.blocked),
        ("error", report.errors),
    ):
        for item in items:
            typer.echo(f"{label}: {item}")
    state = "in step" if report.in_step else f"{report.pending_uploads} upload(s) pending"
    typer.echo(f"sync pass done: {state}")
