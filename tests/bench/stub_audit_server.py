"""Bench-only: a Kinko server whose audit append is stubbed out (never a production setting).

    python tests/bench/stub_audit_server.py --data-dir DIR --port PORT

Used by ``bench_audit.py`` as the baseline for audited reads. It is the real application
(``vault.api.app.create_app``) on the same kind of data directory and with the same uvicorn
settings as ``kinko serve``, except that, in this process only, ``AuditLog.append`` returns a
fake event without writing anything and ``AuditLog.cut_checkpoint`` does nothing. The ratio
kinko / stub is therefore the cost of the durable audit append (group commit, fsync, tree rows,
checkpoints) per read. ``append_many`` (start-up bootstrap) still writes, so the data directory
stays a valid vault. The bootstrap token comes from ``KINKO_BOOTSTRAP_TOKEN`` as for the server.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from vault.allocator import tune_allocator
from vault.api.app import create_app
from vault.audit import log as audit_log
from vault.settings import Settings

STUB_CALLS = 0


def fake_append(self: audit_log.AuditLog, record: Mapping[str, Any]) -> dict[str, Any]:
    """What ``AuditLog.append`` returns, but nothing is written (seq -1 marks it fake)."""
    global STUB_CALLS
    STUB_CALLS += 1
    event = {k: record.get(k) for k in audit_log.EVENT_FIELDS}
    event["seq"] = -1
    event["time"] = audit_log.format_time(datetime.now(UTC))
    return event


def fake_cut_checkpoint(self: audit_log.AuditLog, *, force: bool = False) -> str | None:
    return None


def install_stub() -> None:
    audit_log.AuditLog.append = fake_append  # type: ignore[method-assign]
    audit_log.AuditLog.cut_checkpoint = fake_cut_checkpoint  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--port", required=True, type=int)
    args = ap.parse_args()
    install_stub()
    tune_allocator()  # as kinko serve does
    token = os.environ.get("KINKO_BOOTSTRAP_TOKEN")
    settings = Settings(data_dir=args.data_dir, bootstrap_token=token)  # type: ignore[arg-type]
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=args.port,
        log_level="info",
        access_log=True,
    )


if __name__ == "__main__":
    main()
