"""Every node hears of every catalog change: a counter row, a notification, a watcher.

A node keeps some answers of the catalog in memory (``CatalogCache``: what a bearer token
stands for).  Its own commits empty that cache at once; the cache's lifetime (at most 1 s)
bounds how long another node's change can go unseen.  On PostgreSQL, where several nodes share
one catalog, that bound is made much shorter:

- every write session moves the counter row ``catalog_changes`` on and sends a notification
  (``pg_notify``) in the same transaction, so both happen exactly when the change commits;
- each node runs a ``ChangeWatcher``: a thread on a connection of its own that LISTENs and
  empties the cache on every notification, and also re-reads the counter a few times a second,
  because a notification sent while the watcher was reconnecting is lost for good.  The row
  is the truth; the notification is only a wake-up.  After any reconnect the cache is emptied,
  as whatever happened in between cannot be known.

The notification goes out from the catalog's transaction only, never from the audit log's:
``NOTIFY`` takes a cluster-wide lock at commit, which the audit appends must not wait for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from vault.db import CLIENT_KEEPALIVES

log = logging.getLogger("kinko.catalog")

CHANNEL = "kinko_catalog"
_BUMP = text("UPDATE catalog_changes SET version = version + 1 WHERE id = 1")
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', '')")
_READ = "SELECT version FROM catalog_changes WHERE id = 1"


def announce(session: Session) -> None:
    """Mark the session's transaction as a change every node must hear of (PostgreSQL)."""
    session.execute(_BUMP)
    session.execute(_NOTIFY)


def _connect_kwargs(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    kwargs: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
        "connect_timeout": 5,
        "application_name": "kinko-watcher",
        "autocommit": True,
        # The cache's own lifetime bounds staleness until a vanished database is noticed.
        **CLIENT_KEEPALIVES,
    }
    kwargs.update({k: v for k, v in parsed.query.items() if isinstance(v, str)})
    return {k: v for k, v in kwargs.items() if v is not None}


class ChangeWatcher:
    """Calls ``on_change`` soon after any node commits a catalog change (see the module)."""

    def __init__(self, url: str, on_change: Callable[[], None], poll_seconds: float = 0.2):
        self._kwargs = _connect_kwargs(url)
        self._on_change = on_change
        self._poll = poll_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kinko-catalog-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        import psycopg

        while not self._stopping.is_set():
            try:
                with psycopg.connect(**self._kwargs) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    seen = self._version(conn)
                    # Whatever changed while this watcher was not listening is unknown.
                    self._on_change()
                    while not self._stopping.is_set():
                        # Each notification empties the cache at once (a cheap call); the
                        # counter is read once per period, however many changes came.
                        for _ in conn.notifies(timeout=self._poll):
                            self._on_change()
                        now = self._version(conn)
                        if now != seen:
                            seen = now
                            self._on_change()
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("catalog watcher lost its connection (%s); reconnecting", exc)
                self._on_change()
                self._stopping.wait(1.0)

    @staticmethod
    def _version(conn: Any) -> int:
        row = conn.execute(_READ).fetchone()
        return int(row[0]) if row else 0
