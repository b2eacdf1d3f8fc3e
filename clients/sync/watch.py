"""Live sync: react to local changes at once, poll the server, rescan now and then.

A watchdog observer on DIR only *marks* that something changed locally (with the time of the
latest event); it never touches the disk or the network. One loop decides when to run
:meth:`SyncEngine.run_once` (which always scans the whole tree, so any pass is a full rescan):

* local changes, once they have been quiet for ``settle_seconds`` (trailing-edge debounce:
  an editor's atomic save - temp file, rename over, lock/backup files - and a burst of writes
  produce many events but one pass, hence one version);
* every ``poll_seconds``, for remote changes (the manifest request is conditional: cheap);
* every ``rescan_seconds`` regardless, for events the OS dropped (inotify queue overflow).

While local changes are still settling no pass starts at all, not even a poll: a pass in the
middle of a save could see the target renamed away and upload the backup file. Continuous
changes delay a pass by at most ``MAX_SETTLE_WAIT_SECONDS``.

When a pass reports errors (typically the server is unreachable) the next one waits 1, 2, 4, 8,
then 15 s (capped), back to normal after a clean pass; edits made meanwhile are picked up by
the scan of the pass that succeeds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from clients.sync.engine import PassReport, SyncEngine
from clients.sync.naming import STATE_DIR, is_ignored

__all__ = ["MAX_BACKOFF_SECONDS", "MAX_SETTLE_WAIT_SECONDS", "backoff_seconds", "watch"]

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 15.0
MAX_SETTLE_WAIT_SECONDS = 10.0
_STOP_CHECK_SECONDS = 0.25
_IDLE_TYPES = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})


def backoff_seconds(failures: int) -> float:
    """Wait after ``failures`` failed passes in a row: 1, 2, 4, 8, 15, 15, ... (0 for none)."""
    if failures <= 0:
        return 0.0
    return min(MAX_BACKOFF_SECONDS, 2.0 ** min(failures - 1, 4))


class _LocalChanges(FileSystemEventHandler):
    """Remembers that something relevant changed under ``root``, and when (no I/O)."""

    def __init__(self, root: Path, wake: threading.Event) -> None:
        self._root = str(root)
        self._wake = wake
        self._lock = threading.Lock()
        self._first: float | None = None  # first event since the last pass started
        self._last = 0.0

    def _relevant(self, path: str | bytes) -> bool:
        rel = os.path.relpath(os.fsdecode(path), self._root)
        if rel == "." or rel.startswith(".."):
            return False
        parts = rel.split(os.sep)
        return parts[0] != STATE_DIR and not is_ignored(parts[-1])

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IDLE_TYPES:
            return  # our own scans read every file
        if event.is_directory and event.event_type in (EVENT_TYPE_MODIFIED, EVENT_TYPE_ATTRIB):
            return  # a child changed: reported by the child's own event
        # A move counts for both ends: the destination is a modification, the source a deletion.
        paths = [event.src_path] + ([event.dest_path] if event.dest_path else [])
        if not any(self._relevant(p) for p in paths):
            return
        now = time.monotonic()
        with self._lock:
            if self._first is None:
                self._first = now
            self._last = now
        self._wake.set()

    def settled(self, now: float, settle: float) -> tuple[bool, bool]:
        """(dirty, ready): whether local changes are pending, and whether a pass may run."""
        with self._lock:
            if self._first is None:
                return False, True
            ready = now - self._last >= settle or now - self._first >= MAX_SETTLE_WAIT_SECONDS
            return True, ready

    def take(self) -> None:
        """A pass starts: events from now on belong to the next one."""
        with self._lock:
            self._first = None


def watch(
    engine: SyncEngine,
    *,
    poll_seconds: float = 2.0,
    settle_seconds: float = 0.5,
    rescan_seconds: float = 30.0,
    stop: threading.Event | None = None,
    restore: bool = False,
    on_report: Callable[[PassReport], None] | None = None,
) -> None:
    """Keep ``engine.root`` in step until ``stop`` is set (or KeyboardInterrupt).

    ``restore`` applies to the first pass only; ``on_report`` is called after every pass.
    """
    stop = stop or threading.Event()
    wake = threading.Event()
    changes = _LocalChanges(engine.root, wake)
    observer = Observer()
    observer.daemon = True
    try:
        observer.schedule(changes, str(engine.root), recursive=True)
        observer.start()
        watching = True
    except OSError as exc:  # e.g. ENOSPC: the inotify watch limit is reached
        log.warning("not watching %s (%s); polling every %.1f s", engine.root, exc, poll_seconds)
        watching = False
    failures = 0
    first = True
    next_poll = next_rescan = retry_at = time.monotonic()  # first pass at once
    try:
        while not stop.is_set():
            wake.clear()  # before reading the state: a later event cuts the wait short
            now = time.monotonic()
            dirty, ready = changes.settled(now, settle_seconds)
            timer_due = now >= next_poll or now >= next_rescan
            if ready and now >= retry_at and (timer_due or dirty):
                changes.take()
                report = engine.run_once(restore=restore and first)
                first = False
                failures = failures + 1 if report.errors else 0
                end = time.monotonic()
                retry_at = end + backoff_seconds(failures)
                next_poll = end + poll_seconds
                next_rescan = end + rescan_seconds  # every pass scans the whole tree
                if on_report is not None:
                    on_report(report)
                continue
            # Sleep until the next thing that could make a pass due, or an event arrives.
            wake_at = max(retry_at, min(next_poll, next_rescan))
            if dirty:
                wake_at = max(retry_at, min(wake_at, now + settle_seconds / 4))
            wake.wait(max(0.01, min(wake_at - now, _STOP_CHECK_SECONDS)))
    except KeyboardInterrupt:
        pass
    finally:
        if watching:
            observer.stop()
            observer.join(timeout=5)
