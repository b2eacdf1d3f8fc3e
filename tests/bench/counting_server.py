"""Bench-only: the real Kinko server with counters around the work a request does.

    python tests/bench/counting_server.py --data-dir DIR --port PORT

Used by ``bench_core.py`` to count, per request, what the read path asks of the machine, so
that a regression shows up as a number rather than only as a slower figure:

- ``catalog_statements`` / ``audit_statements``: SQL statements sent to each store
  (SQLAlchemy's ``before_cursor_execute``, which sees every statement, ``BEGIN`` included);
- ``thread_hops``: calls handed from the event loop to a worker thread
  (``anyio.to_thread.run_sync``, which Starlette's and FastAPI's thread-pool helpers use);
- ``audit_handoffs``: events handed to the audit writer thread (``AuditLog.append``);
- ``dek_unwraps`` / ``case_key_unwraps``: data keys unwrapped, and case keys unwrapped by the
  key provider (a case key found in the keyring's cache costs no provider call).

Nothing here changes what the server does: each counter wraps the original call and passes
its result through. ``GET /__bench/counters`` answers the totals so far (this route exists in
this process only). Same application, data directory and uvicorn settings as ``kinko serve``.
"""

from __future__ import annotations

import argparse
import inspect
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import uvicorn
from sqlalchemy import Engine, event

from vault.allocator import tune_allocator
from vault.api.app import create_app
from vault.audit.log import AuditLog
from vault.keys.keyring import Keyring
from vault.keys.local import LocalKeyProvider
from vault.settings import Settings

COUNTS: Counter[str] = Counter()
_LOCK = threading.Lock()


def bump(name: str) -> None:
    with _LOCK:
        COUNTS[name] += 1


def _wrap(owner: Any, attr: str, name: str) -> None:
    original: Callable[..., Any] = getattr(owner, attr)

    def counted(*args: Any, **kwargs: Any) -> Any:
        bump(name)
        return original(*args, **kwargs)

    # A static method stays one, or the wrapper would receive the instance as well.
    static = isinstance(inspect.getattr_static(owner, attr), staticmethod)
    setattr(owner, attr, staticmethod(counted) if static else counted)


def install_counters() -> None:
    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: Any, _cursor: Any, _stmt: str, *_args: Any) -> None:
        database = str(conn.engine.url.database or "")
        bump("audit_statements" if database.endswith("audit.db") else "catalog_statements")

    original_run_sync = anyio.to_thread.run_sync

    async def run_sync(*args: Any, **kwargs: Any) -> Any:
        bump("thread_hops")
        return await original_run_sync(*args, **kwargs)

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
    _wrap(AuditLog, "append", "audit_handoffs")
    _wrap(Keyring, "unwrap_dek", "dek_unwraps")

    # Case keys are unwrapped by the provider only on a miss of the keyring's cache.
    _wrap(LocalKeyProvider, "unwrap", "case_key_unwraps")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--port", required=True, type=int)
    args = ap.parse_args()
    install_counters()
    tune_allocator()  # as kinko serve does
    token = os.environ.get("KINKO_BOOTSTRAP_TOKEN")
    settings = Settings(data_dir=args.data_dir, bootstrap_token=token)  # type: ignore[arg-type]
    app = create_app(settings)

    @app.get("/__bench/counters", include_in_schema=False)
    async def counters() -> dict[str, int]:
        with _LOCK:
            return dict(COUNTS)

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", access_log=True)


if __name__ == "__main__":
    main()
