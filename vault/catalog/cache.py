"""A short-lived cache of what the catalog said, for the questions every request asks again.

Every request resolves its bearer token to a user; reading that from the database each time
cost more than the rest of an audited 4 KiB read.  The answer is kept here, under two bounds:

- **This process sees its own changes at once.**  Every committed catalog write of this
  process (a revoked token, a disabled user, changed roles — or anything else) empties the
  cache before the writing request answers; see ``Vault.open``, which hooks the write
  sessions' ``after_commit``.
- **Other processes' changes within ``ttl`` seconds** (at most 1 s): an entry is used for no
  longer than that after it was read, so a token revoked by another node or by the CLI stops
  working everywhere within a second.

A value read before an invalidation is never stored after it: ``put`` takes the stamp taken
*before* the database was read and drops the value if the cache has been emptied since, so a
read racing a revocation cannot bring the revoked token back; and an entry's age counts from
that stamp, so the time bound includes however long the read took.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MAX_TTL_SECONDS = 1.0


class CatalogCache(Generic[K, V]):
    def __init__(self, ttl: float = MAX_TTL_SECONDS, max_entries: int = 10_000) -> None:
        if not 0 <= ttl <= MAX_TTL_SECONDS:
            raise ValueError(f"the cache may hold an answer for at most {MAX_TTL_SECONDS:g} s")
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._generation = 0
        self._lock = threading.Lock()

    def stamp(self) -> tuple[int, float]:
        """Take this before reading the database; hand it to ``put`` afterwards.

        It holds the generation (so a value read before an invalidation is dropped) and the
        time (so an entry's age counts from before the read, and the bound holds whatever
        the read took).
        """
        return self._generation, time.monotonic()

    def get(self, key: K) -> V | None:
        if self._ttl == 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if time.monotonic() - entry[0] > self._ttl:
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: K, value: V, stamp: tuple[int, float]) -> None:
        if self._ttl == 0:
            return
        generation, read_at = stamp
        with self._lock:
            if generation != self._generation:
                return  # the catalog changed while this value was being read
            self._entries[key] = (read_at, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
