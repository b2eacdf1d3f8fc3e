"""``kinko sync DIR --server URL [--purpose TEXT] [--once] [--restore]``,
``kinko sync status DIR``.

Every download is a content read, and a read must carry the reader's own business purpose
(SPEC §5): the client never makes one up.  The purpose belongs to the folder: the first
``--purpose`` is saved in ``DIR/.kinko/state.db`` and used by every later run, a new
``--purpose`` replaces it, and ``kinko sync status DIR`` shows it.  Without either, the command
refuses before it contacts the server.

Registered as the single command ``sync`` (not a sub-app: a group callback taking DIR would
parse ``kinko sync status DIR`` as DIR="status"). The first argument ``status`` followed by a
directory selects the status report; to sync a directory literally named ``status``, write
``./status``.
"""

from __future__ import annotations

import contextlib
import os
import unicodedata
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from clients.api import KinkoClient

if TYPE_CHECKING:
    from clients.sync.engine import SyncEngine

INTERVAL_SECONDS = 2.0
PURPOSE_MAX = 500  # SPEC §5; the server checks again, this only saves a wasted round trip


def _fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2, like every other ``kinko`` refusal."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def _checked_purpose(text: str) -> str:
    """A purpose the server will accept (SPEC §5), or one clear refusal naming the rule."""
    if not text.strip():
        _fail("--purpose is empty: say why you read these documents (閲覧目的を入力してください)")
    if len(text) > PURPOSE_MAX:
        _fail(f"--purpose is longer than {PURPOSE_MAX} characters")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text):
        _fail("--purpose must be one line without control characters")
    return text


def _saved_purpose(root: Path) -> str | None:
    """The purpose saved for this folder, reading (never creating) its state."""
    from clients.sync.state import PURPOSE_META, State, db_path

    if not db_path(root).is_file():
        return None
    with State.open(root) as state:
        return state.get_meta(PURPOSE_META)


def _token(token_file: Path | None, server: str) -> str:
    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read the token file {token_file}: {getattr(exc, 'strerror', exc)}")
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
    _fail("no API token: set KINKO_TOKEN, pass --token-file, or store it in the keyring")


def sync_command(
    target: Annotated[str, typer.Argument(metavar="DIR", help="Sync folder (or 'status').")],
    status_dir: Annotated[
        Path | None, typer.Argument(metavar="[DIR]", help="With 'status': the sync folder.")
    ] = None,
    server: Annotated[
        str | None, typer.Option("--server", envvar="KINKO_SERVER", help="Server URL.")
    ] = None,
    purpose: Annotated[
        str | None,
        typer.Option(
            help="Why you read these documents (閲覧目的), recorded with every download; "
            "saved for the folder and reused, a new one replaces it.",
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One full pass, then exit.")] = False,
    restore: Annotated[
        bool, typer.Option("--restore", help="Download again documents deleted locally.")
    ] = False,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="File holding the API token.")
    ] = None,
) -> None:
    """Mirror the documents you may read into DIR and upload your edits; or show the status."""
    from clients.sync.engine import SyncEngine, SyncLockedError, status_lines
    from clients.sync.state import PURPOSE_META

    if target == "status" and status_dir is not None:
        lines = status_lines(status_dir)
        for line in lines:
            typer.echo(line)
        raise typer.Exit(1 if lines[0].endswith("state.db)") else 0)
    if status_dir is not None:
        raise typer.BadParameter(f"unexpected argument {status_dir}")
    if server is None:
        _fail("--server URL is required (or set KINKO_SERVER)")
    root = Path(target)
    if root.exists() and not root.is_dir():
        _fail(f"{root} is not a directory")
    # Everything is checked before anything is written or the server is asked.
    saved = _saved_purpose(root)
    if purpose is not None:
        purpose = _checked_purpose(purpose)
    elif saved is not None:
        purpose = saved
    else:
        _fail(
            f"no purpose for {root} (閲覧目的が未設定です): give it once with --purpose "
            '"…" (e.g. --purpose "起案作業 / drafting"); it is saved for the folder'
        )
    token = _token(token_file, server)
    try:
        with (
            KinkoClient(server, token) as client,
            SyncEngine(root, client, purpose=purpose) as engine,
            _progress(engine),
        ):
            if purpose != saved:
                engine.state.set_meta(PURPOSE_META, purpose)
                typer.echo(f"purpose for {root}: {purpose} (saved; used by every later run)")
            _run(engine, once=once, restore=restore)
    except SyncLockedError as exc:
        _fail(str(exc))


def _run(engine: SyncEngine, *, once: bool, restore: bool) -> None:
    """One pass (--once, exit 1 while uploads are pending) or keep the folder in step."""
    from clients.sync.engine import PassReport

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
