"""``kinko review …``: access review tools that work on the data directory directly.

They open the audit store beside a running server (SQLite WAL, write transactions that take the
lock when they begin), bring the review index up to date and print what the API would answer
an auditor.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from vault.cli._common import DataDir, fail, load_settings

review_app = typer.Typer(no_args_is_help=True)


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"


@review_app.callback()
def _group() -> None:
    """Access review (点検・確認) reports."""


@review_app.command("report")
def report_cmd(
    data_dir: DataDir = None,
    date: Annotated[
        str | None,
        typer.Option(help="Calendar day YYYY-MM-DD in KINKO_TIMEZONE (default: today)."),
    ] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="json (default) or csv.")
    ] = ReportFormat.json,
) -> None:
    """Print the day's reads of every case and their review state (like the API's report)."""
    from zoneinfo import ZoneInfo

    from vault.core import Vault
    from vault.services import reviews as service

    settings = load_settings(data_dir)
    if settings.audit_database_url is None and not (settings.data_dir / "audit.db").exists():
        fail(f"no vault in {settings.data_dir}")
    # A bad --date is a KinkoError, reported in one line by the kinko group.
    day = service.parse_day(date, ZoneInfo(settings.timezone))
    vault = Vault.open(settings, start_audit_writer=False)
    try:
        service.sync(vault)
        # The operator sees what an auditor sees (titles included, content never).
        rep = service.report(vault, day, viewer=service.OPERATOR)
    finally:
        vault.close()
    if fmt is ReportFormat.csv:
        # Bytes (UTF-8 with BOM, CRLF), so the file opens in Japanese Excel as the API's does.
        sys.stdout.buffer.write(service.report_csv(rep))
        sys.stdout.buffer.flush()
    else:
        print(json.dumps(rep, ensure_ascii=False, indent=2))
