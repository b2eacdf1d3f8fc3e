"""Writing a bundle directory (``write_bundle``); the layout is in docs/audit-bundle.md."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from vault.audit.bundle.format import (
    BUNDLE_FORMAT,
    CHECKPOINT_DIR,
    EVENTS_FILE,
    KEY_FILE,
    MANIFEST_FILE,
    PREFIX_FILE,
    BundleError,
    checkpoint_filename,
)
from vault.audit.merkle import CompactRange
from vault.audit.note import NoteError, parse_checkpoint
from vault.fsio import fsync_dir

__all__ = ["write_bundle"]


def write_bundle(
    path: Path,
    events: Iterable[bytes],
    checkpoints: Iterable[str],
    verifier_key: str,
    origin: str,
    first_seq: int,
    prefix_frontier: list[tuple[int, int, bytes]] | None,
    *,
    exported_at: datetime | None = None,
) -> int:
    """Write a bundle directory atomically and return the number of events written.

    Everything goes into a fresh sibling directory ``<path>.tmp-<random>`` that is renamed to
    ``path`` only once every file is complete and synced, so a crash or error never leaves a
    half-written bundle under the final name.
    """
    path = Path(path)
    if path.exists():
        raise BundleError(f"{path} already exists")
    _check_prefix(first_seq, prefix_frontier)
    key_line = verifier_key.strip()
    if not key_line or "\n" in key_line:
        raise BundleError("the verifier key must be one line")

    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}")
    tmp.mkdir(parents=False)
    try:
        count = _write_events(tmp / EVENTS_FILE, events, first_seq)
        _write_checkpoints(tmp / CHECKPOINT_DIR, checkpoints)
        _write_text(tmp / KEY_FILE, key_line + "\n")
        if first_seq > 0 and prefix_frontier is not None:
            prefix = {
                "size": first_seq,
                "frontier": [[lvl, idx, _b64(h)] for lvl, idx, h in prefix_frontier],
            }
            _write_text(tmp / PREFIX_FILE, json.dumps(prefix, indent=1) + "\n")
        when = (exported_at or datetime.now(UTC)).astimezone(UTC)
        manifest = {
            "format": BUNDLE_FORMAT,
            "origin": origin,
            "first_seq": first_seq,
            "event_count": count,
            "exported_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        _write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
        # Directory entries (the new files and the final rename) are only durable once the
        # directories holding them are synced.
        fsync_dir(tmp / CHECKPOINT_DIR)
        fsync_dir(tmp)
        tmp.rename(path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count


def _check_prefix(first_seq: int, prefix_frontier: list[tuple[int, int, bytes]] | None) -> None:
    if first_seq < 0:
        raise BundleError("first_seq must not be negative")
    if first_seq > 0:
        if prefix_frontier is None:
            raise BundleError("a bundle starting after seq 0 needs the prefix frontier")
        try:
            CompactRange.from_frontier(first_seq, prefix_frontier)
        except ValueError as exc:
            raise BundleError(f"invalid prefix frontier: {exc}") from None
    elif prefix_frontier:
        raise BundleError("a bundle starting at seq 0 has no prefix")


def _write_events(target: Path, events: Iterable[bytes], first_seq: int) -> int:
    count = 0
    with open(target, "wb", buffering=1 << 20) as f:
        for ev in events:
            if b"\n" in ev:
                raise BundleError(f"event {first_seq + count} contains a newline")
            f.write(ev)
            f.write(b"\n")
            count += 1
        f.flush()
        os.fsync(f.fileno())
    return count


def _write_checkpoints(cp_dir: Path, checkpoints: Iterable[str]) -> None:
    cp_dir.mkdir()
    for note in checkpoints:
        try:
            size = parse_checkpoint(_note_body(note)).size
        except NoteError as exc:
            raise BundleError(f"not a checkpoint note: {exc}") from None
        target = cp_dir / checkpoint_filename(size)
        if target.exists():
            raise BundleError(f"two checkpoints of size {size}")
        _write_text(target, note)


def _write_text(target: Path, text: str) -> None:
    # Not vault.fsio.create_private: a bundle is meant to be handed to auditors, so its files
    # keep the ordinary umask-derived mode rather than 0600; the directory is new and private
    # to this export until the rename, so nothing else can race for these names.
    with open(target, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _note_body(note: str) -> str:
    """The text of a signed note without checking its signature (used only to name files)."""
    split = note.rfind("\n\n")
    if split < 0:
        raise BundleError("not a signed note")
    return note[: split + 1]
