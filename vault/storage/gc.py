"""Garbage collection: finding and deleting blobs that no catalog version refers to.

Orphans are normal: an upload whose audit event or version row failed after its blob was
committed, a server killed between the two, a copy left by an interrupted migration.  They
are ciphertext nobody can name, but they take space and should not be kept for ever.

The danger is the other way round: an upload commits its blob *before* its version row (the
row must never point at a blob that does not exist), so for a moment every fresh blob looks
like an orphan.  Only blobs older than a grace period are therefore candidates, and the set of
referenced names is read *after* the listing, so a row committed while the listing ran still
saves its blob.  This module sees only blob names; the caller supplies the referenced set (the
catalog is not storage's business).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .base import BlobEntry, BlobStore
from .fallback import FallbackBlobStore

__all__ = ["DEFAULT_GRACE", "GcPlan", "Orphan", "backends", "delete_orphans", "find_orphans"]

# Far longer than any upload takes between committing its blob and committing its row.  S3
# dates a multipart object from the start of its upload, so the grace period must also exceed
# the longest upload (hours for many gigabytes, not a day).
DEFAULT_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class Orphan:
    """An unreferenced blob, and the backend it was found on."""

    store: BlobStore
    entry: BlobEntry


@dataclass
class GcPlan:
    orphans: list[Orphan] = field(default_factory=list)
    # Blobs that are unreferenced but younger than the grace period: left alone this time.
    too_young: int = 0

    @property
    def count(self) -> int:
        return len(self.orphans)

    @property
    def total_bytes(self) -> int:
        return sum(orphan.entry.size for orphan in self.orphans)


def backends(store: BlobStore) -> list[BlobStore]:
    """The stores that actually hold blobs: both sides of a fallback store, else the store.

    After a migration a blob may sit on the old store, the new one, or both; each copy is
    listed, and deleted, where it is.
    """
    if isinstance(store, FallbackBlobStore):
        return backends(store.primary) + backends(store.fallback)
    return [store]


def find_orphans(
    store: BlobStore,
    referenced: Callable[[], Collection[str]],
    *,
    grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None,
) -> GcPlan:
    """List the blobs of ``store`` older than ``grace`` that ``referenced()`` does not name.

    ``referenced`` is called once, after every backend has been listed (see the module
    docstring for why that order matters).
    """
    if grace < timedelta(0):
        raise ValueError("the grace period cannot be negative")
    cutoff = (now or datetime.now(UTC)) - grace
    old: list[Orphan] = []
    too_young: list[str] = []
    for backend in backends(store):
        for entry in backend.entries():
            if entry.modified <= cutoff:
                old.append(Orphan(backend, entry))
            else:
                too_young.append(entry.name)
    names = set(referenced())
    plan = GcPlan(orphans=[o for o in old if o.entry.name not in names])
    plan.too_young = sum(1 for name in too_young if name not in names)
    return plan


def delete_orphans(plan: GcPlan) -> tuple[int, int]:
    """Delete every blob of ``plan`` where it was found; returns (blobs, bytes) deleted."""
    deleted = size = 0
    for orphan in plan.orphans:
        orphan.store.delete(orphan.entry.name)
        deleted += 1
        size += orphan.entry.size
    return deleted, size
