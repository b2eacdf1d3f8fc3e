"""``kinko``: serve the vault, run a demo, and (later) audit and key tools."""

from __future__ import annotations

from typing import Annotated

import typer

from vault.cli._common import DataDir, load_settings
from vault.cli.errors import KinkoGroup

app = typer.Typer(
    cls=KinkoGroup,
    help="Kinko: an encrypted, stage-aware document vault for public procurement.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback of a bug must never print local variables: they hold tokens and keys.
    pretty_exceptions_show_locals=False,
)


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (0 = any free).")] = None,
) -> None:
    """Run the HTTP server (embedded default: SQLite, local blobs, local key file)."""
    import logging

    import uvicorn

    from vault.allocator import tune_allocator
    from vault.api.app import create_app
    from vault.cli.listen import listen, url
    from vault.core import Vault
    from vault.web.app import RedactInvitationLinks

    settings = load_settings(data_dir, host=host, port=port)
    tune_allocator()
    sock = listen(settings.host, settings.port)
    vault: Vault | None = None
    try:
        # Opened before the server starts, so that an unusable key, database, bucket or
        # policy is one line from the kinko group (inside uvicorn's start-up it would be a
        # logged traceback); the application then uses this vault and closes it when it stops.
        vault = Vault.open(settings, server=True)
        # The application prints links with the port actually bound (--port 0 picks one).
        bound = settings.model_copy(update={"port": int(sock.getsockname()[1])})
        config = uvicorn.Config(
            create_app(bound, vault),
            host=settings.host,
            port=int(sock.getsockname()[1]),
            log_level="info",
            # The access log would record URLs only, which hold ids and never titles; it stays
            # on for operators, while the audit log is the record that counts.
            access_log=True,
        )
        server = uvicorn.Server(config)
        logging.getLogger("uvicorn.access").addFilter(RedactInvitationLinks())
        # uvicorn names the address only when it binds the socket itself.
        logging.getLogger("uvicorn.error").info(
            "Kinko listening on %s (Press CTRL+C to quit)", url(settings.host, config.port)
        )
        server.run(sockets=[sock])
    finally:
        sock.close()
        if vault is not None:
            # The application closes it when it stops; closing again is harmless, and
            # needed when the server never started.
            vault.close()
    if not server.started:
        raise typer.Exit(3)  # start-up failed (logged above), as uvicorn.run reports it


@app.command()
def demo(
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 8700,
    check: Annotated[
        bool, typer.Option(help="Seed, run the printed tour against the server, then exit.")
    ] = False,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the demo's data directory when it stops.")
    ] = False,
) -> None:
    """Start a server with a sample case, users in every role and documents; print a tour.

    The data directory is a new temporary one (or --data-dir, if it does not exist yet); it is
    removed when the demo stops, unless --keep is given.  A directory that existed before is
    never removed.
    """
    from vault.cli.demo import run_demo

    raise typer.Exit(run_demo(data_dir=data_dir, host=host, port=port, check=check, keep=keep))


def _register_subcommands() -> None:
    # Imported here so that ``kinko serve`` does not pay for tools it does not use.
    from vault.cli.audit import audit_app
    from vault.cli.case import case_app
    from vault.cli.keys import keys_app
    from vault.cli.review import review_app
    from vault.cli.storage import storage_app
    from vault.cli.users import users_app

    app.add_typer(audit_app, name="audit", help="Audit log: query, checkpoints, export, verify.")
    app.add_typer(review_app, name="review", help="Access review (点検・確認) reports.")
    app.add_typer(keys_app, name="keys", help="Master keys: rotate, status.")
    app.add_typer(case_app, name="case", help="Case operations: crypto-shred a closed case.")
    app.add_typer(users_app, name="users", help="Users: invite (a link to set a password).")
    app.add_typer(
        storage_app, name="storage", help="Blob storage: migrate to S3, collect unreferenced blobs."
    )
    # A plain command, not a sub-app: ``kinko sync status DIR`` must not parse as DIR="status".
    from clients.sync.cli import sync_command

    app.command("sync")(sync_command)


_register_subcommands()

if __name__ == "__main__":
    app()
