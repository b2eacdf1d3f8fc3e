"""A store that writes to a new backend and still reads blobs left on the old one.

Used after ``kinko storage migrate``: a server that was still running on local storage while
the migration switched over may have written a few last blobs locally.  Reads fall back to the
old store for them until the next migration pass copies them, so nothing becomes unreadable.
"""

from __future__ import annotations

from collections.abc import Iterator

from .base import BlobEntry, BlobNotFound, BlobReader, BlobStore, BlobWriter


class FallbackBlobStore:
    def __init__(self, primary: BlobStore, fallback: BlobStore) -> None:
        self.primary = primary
        self.fallback = fallback

    def writer(self, name: str | None = None) -> BlobWriter:
        return self.primary.writer(name)

    def open(self, name: str) -> BlobReader:
        try:
            return self.primary.open(name)
        except BlobNotFound:
            return self.fallback.open(name)

    def delete(self, name: str) -> None:
        self.primary.delete(name)
        self.fallback.delete(name)

    def exists(self, name: str) -> bool:
        return self.primary.exists(name) or self.fallback.exists(name)

    def names(self) -> Iterator[str]:
        seen = set()
        for name in self.primary.names():
            seen.add(name)
            yield name
        for name in self.fallback.names():
            if name not in seen:
                yield name

    def entries(self) -> Iterator[BlobEntry]:
        # Like names(): a blob on both stores is listed once, as the primary has it, because
        # that is the copy reads are served from.
        seen = set()
        for entry in self.primary.entries():
            seen.add(entry.name)
            yield entry
        for entry in self.fallback.entries():
            if entry.name not in seen:
                yield entry

    def cleanup_incomplete(self) -> int:
        return self.primary.cleanup_incomplete() + self.fallback.cleanup_incomplete()
