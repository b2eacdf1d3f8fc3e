"""``kinko audit …``: tools for auditors that work on a data directory or on an export bundle.

Every command that touches the store opens the data directory directly, also while a server is
running on it; SQLite's WAL lets them read a consistent snapshot beside the server, and what
they write (a checkpoint) is what the server's API returns next.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vault.audit.bundle import Report, verify_bundle
from vault.audit.note import NoteError
from vault.cli._common import (
    DataDir,
    console,
    err_console,
    fail,
    load_settings,
    open_vault,
    read_text_file,
)
from vault.core import Vault
from vault.services.audit_queries import export_snapshot

audit_app = typer.Typer(no_args_is_help=True)


@audit_app.command("public-key")
def public_key(data_dir: DataDir = None) -> None:
    """Print the checkpoint verifier key (signed-note format name+hash+base64)."""
    vault = open_vault(data_dir, needs="audit")
    try:
        assert vault.audit.signer is not None
        print(vault.audit.signer.verifier_key())
    finally:
        vault.close()


@audit_app.command("checkpoint")
def checkpoint(data_dir: DataDir = None) -> None:
    """Cut a signed checkpoint over every event so far and print it."""
    vault = open_vault(data_dir, needs="audit")
    try:
        note = vault.audit.cut_checkpoint(force=True)
        if note is None:
            err_console.print("[yellow]the audit log is empty; nothing to checkpoint")
            raise typer.Exit(1)
        sys.stdout.write(note)
    finally:
        vault.close()


@audit_app.command("query")
def query(
    data_dir: DataDir = None,
    actor: Annotated[str | None, typer.Option(help="Only events of this user.")] = None,
    case_id: Annotated[str | None, typer.Option(help="Only events of this case.")] = None,
    document_id: Annotated[str | None, typer.Option(help="Only events of this document.")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. document.read")] = None,
    decision: Annotated[str | None, typer.Option(help="allow or deny")] = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339 time, inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 time, exclusive.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events (0 = all).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Query the audit log with the API's filters; a table, or JSON lines with --json."""
    vault = open_vault(data_dir, needs="audit")
    try:
        # A bad filter (an unparsable --since, say) is a KinkoError, reported in one line.
        events = list(
            _query_all(vault, actor, case_id, document_id, action, decision, since, until, limit)
        )
    finally:
        vault.close()
    if as_json:
        for ev in events:
            print(json.dumps(ev, ensure_ascii=False, sort_keys=True))
        return
    table = Table(
        "seq", "time", "actor", "action", "decision", "reason", "case", "document", "purpose"
    )
    for ev in events:
        table.add_row(
            str(ev["seq"]),
            ev["time"],
            ev["actor"] or "-",
            ev["action"],
            ev["decision"],
            ev["reason"] or "",
            (ev["case_id"] or "")[:8],
            (ev["document_id"] or "")[:8],
            ev["purpose"] or "",
        )
    console.print(table)


def _query_all(
    vault: Vault,
    actor: str | None,
    case_id: str | None,
    document_id: str | None,
    action: str | None,
    decision: str | None,
    since: str | None,
    until: str | None,
    limit: int,
) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    left = limit if limit > 0 else None
    while True:
        page, cursor = vault.audit.query(
            actor=actor,
            case_id=case_id,
            document_id=document_id,
            action=action,
            decision=decision,
            since=since,
            until=until,
            limit=1000 if left is None else min(1000, left),
            cursor=cursor,
        )
        yield from page
        if left is not None:
            left -= len(page)
            if left <= 0:
                return
        if cursor is None:
            return


@audit_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="New directory to write the bundle to.")],
    data_dir: DataDir = None,
    since_seq: Annotated[int, typer.Option("--since-seq", help="First event to include.")] = 0,
) -> None:
    """Export events, every checkpoint and the verifier key as one consistent bundle."""
    if out.exists():
        fail(f"{out} exists; give a new directory")
    if not out.parent.is_dir():
        fail(f"{out.parent} is not a directory; the bundle goes into a new directory inside one")
    vault = open_vault(data_dir, needs="audit")
    try:
        n = export_snapshot(vault, out, since_seq)
    except OSError as exc:
        fail(f"cannot write the bundle to {out}: {exc.strerror or exc}")
    finally:
        vault.close()
    err_console.print(f"exported {n} events to {out}")


@audit_app.command("verify")
def verify(
    bundle: Annotated[Path | None, typer.Argument(help="An exported bundle directory.")] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="File holding the verifier key.")
    ] = None,
    trusted: Annotated[
        Path | None, typer.Option("--trusted", help="A checkpoint you kept from earlier.")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Verify the live store of this data directory instead."),
    ] = None,
    anchored: Annotated[
        bool,
        typer.Option(
            "--anchored",
            help="Also trust every checkpoint anchored in KINKO_AUDIT_ANCHOR_BUCKET (WORM).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Verify a bundle offline (no server, no network), or the live store with --data-dir."""
    trusted_note = [read_text_file(trusted, "the kept checkpoint")] if trusted else []
    if anchored:
        trusted_note += _anchored_notes()
    if data_dir is not None:
        if bundle is not None:
            fail("give either a bundle or --data-dir, not both")
        vault = open_vault(data_dir, needs="audit")
        try:
            assert vault.audit.signer is not None
            vkey = vault.audit.signer.verifier_key()
            with tempfile.TemporaryDirectory(prefix="kinko-verify-") as tmp:
                export_snapshot(vault, Path(tmp) / "bundle")
                report = verify_bundle(Path(tmp) / "bundle", vkey, trusted_note)
        finally:
            vault.close()
    else:
        if bundle is None or key is None:
            fail("usage: kinko audit verify DIR --key FILE [--trusted FILE]")
        if not bundle.is_dir():
            fail(f"the bundle {bundle} is not a directory (give what kinko audit export wrote)")
        vkey = read_text_file(key, "the key file").strip()
        try:
            report = verify_bundle(bundle, vkey, trusted_note)
        except NoteError as exc:
            # Only the key itself raises: everything wrong with the bundle is a finding.
            fail(f"the key file {key} does not hold a verifier key ({exc})")
    _print_report(report, as_json)
    raise typer.Exit(0 if report.ok else 1)


def _anchored_notes() -> list[str]:
    from vault.core import open_anchor

    settings = load_settings()
    anchor = open_anchor(settings)
    if anchor is None:
        fail("--anchored needs KINKO_AUDIT_ANCHOR_BUCKET")
    notes = anchor.notes()
    err_console.print(f"trusting {len(notes)} anchored checkpoints from {anchor.bucket}")
    return notes


def _print_report(report: Report, as_json: bool) -> None:
    data = report.to_dict()
    if as_json:
        # Every finding stays listed (up to the per-kind cap) for programs; ``problems`` is
        # the same folded as the text below, with exact counts.
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    console.print(
        f"{'[green]OK' if report.ok else '[red]FAILED'}[/]: {report.event_count} events, "
        f"{report.checkpoints} checkpoints, verified up to size {report.verified_size}, "
        f"unverified tail {report.unverified_tail}"
    )
    # Where the proof of completeness ends, on a line of its own: an "OK" alone would let a
    # reader believe the bundle cannot have been cut short after its newest checkpoint.
    console.print(report.coverage, markup=False)
    # One line per distinct problem: a single tampered event breaks the root of every later
    # checkpoint, and twenty copies of that would hide the line saying where the change is.
    for p in report.problems:
        if p.count == 1:
            console.print(f"  {p.kind}: {p.first}: {p.detail}", markup=False)
        else:
            console.print(
                f"  {p.kind}: {p.count} times, from {p.first} to {p.last}; the first: {p.detail}",
                markup=False,
            )
