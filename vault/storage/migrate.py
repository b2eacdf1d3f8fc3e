"""Copying every blob from one store to another, verified, resumable, then switching over.

Blobs keep their names in the new store, so the catalog does not change and a resumed run
finds what an interrupted one already copied: an existing blob is verified by hash (read, not
copied again).  Each copy is hashed while it streams and read back from the destination and
hashed again before it counts.  Only when every blob is in place does the switch-over record
get written; until then the vault keeps using the old store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.fsio import replace_private

from .base import BlobExists, BlobStore, StorageError

SWITCH_FILE = "storage.json"
CHUNK = 1 << 20


class MigrationError(StorageError):
    pass


@dataclass
class MigrationReport:
    copied: int = 0
    already_there: int = 0
    bytes_copied: int = 0
    total: int = 0


def _digest(store: BlobStore, name: str) -> str:
    sha = hashlib.sha256()
    with store.open(name) as reader:
        for chunk in reader.iter_chunks(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def copy_blob(source: BlobStore, dest: BlobStore, name: str) -> tuple[bool, int]:
    """Copy one blob under its own name and verify it; returns (copied, bytes)."""
    if dest.exists(name):
        # An earlier, interrupted run (or a concurrent one) got here first.
        if _digest(dest, name) != _digest(source, name):
            raise MigrationError(f"blob {name} differs in the destination; refusing to go on")
        return False, 0
    sha = hashlib.sha256()
    size = 0
    with source.open(name) as reader, dest.writer(name) as writer:
        for chunk in reader.iter_chunks(CHUNK):
            sha.update(chunk)
            size += len(chunk)
            writer.write(chunk)
        try:
            writer.commit()
        except BlobExists:
            # Lost a race with another migration run: verify theirs instead.
            return copy_blob(source, dest, name)
    if _digest(dest, name) != sha.hexdigest():
        raise MigrationError(f"blob {name} did not read back identically after the copy")
    return True, size


def migrate(
    source: BlobStore,
    dest: BlobStore,
    *,
    progress: Callable[[str, bool, int], None] | None = None,
) -> MigrationReport:
    """Copy every blob of ``source`` to ``dest``, passing again until nothing new appears.

    A server still writing to ``source`` meanwhile adds blobs; the repeated pass picks them
    up, so the switch-over happens only after a pass that found nothing left to do.
    """
    report = MigrationReport()
    done: set[str] = set()
    while True:
        pending = [n for n in source.names() if n not in done]
        if not pending:
            return report
        for name in pending:
            copied, size = copy_blob(source, dest, name)
            done.add(name)
            report.total += 1
            if copied:
                report.copied += 1
                report.bytes_copied += size
            else:
                report.already_there += 1
            if progress is not None:
                progress(name, copied, size)


def write_switch(data_dir: Path, config: dict[str, Any]) -> None:
    """Record the switch-over durably: a server restarted after a crash must find it whole."""
    data = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    replace_private(data_dir / SWITCH_FILE, data)


def read_switch(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / SWITCH_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise MigrationError(f"{path} is not a JSON object")
    return data
