"""The token cache: bounded in time and size, emptied by invalidation, never refilled by a
value read before an invalidation."""

from __future__ import annotations

import time

import pytest

from vault.catalog.cache import CatalogCache


def test_a_value_is_served_until_its_ttl_passes() -> None:
    cache: CatalogCache[str, int] = CatalogCache(ttl=0.2)
    cache.put("k", 1, cache.stamp())
    assert cache.get("k") == 1
    time.sleep(0.25)
    assert cache.get("k") is None


def test_invalidate_empties_at_once() -> None:
    cache: CatalogCache[str, int] = CatalogCache(ttl=1.0)
    cache.put("k", 1, cache.stamp())
    cache.invalidate()
    assert cache.get("k") is None


def test_a_value_read_before_an_invalidation_is_not_stored() -> None:
    cache: CatalogCache[str, int] = CatalogCache(ttl=1.0)
    seen = cache.stamp()  # taken before "reading the database"
    cache.invalidate()  # a revocation commits meanwhile
    cache.put("k", 1, seen)
    assert cache.get("k") is None
    cache.put("k", 2, cache.stamp())
    assert cache.get("k") == 2


def test_age_counts_from_before_the_read() -> None:
    cache: CatalogCache[str, int] = CatalogCache(ttl=0.2)
    seen = cache.stamp()
    time.sleep(0.15)  # a slow read
    cache.put("k", 1, seen)
    time.sleep(0.1)
    assert cache.get("k") is None


def test_size_is_bounded() -> None:
    cache: CatalogCache[int, int] = CatalogCache(ttl=1.0, max_entries=3)
    for i in range(10):
        cache.put(i, i, cache.stamp())
    assert [cache.get(i) for i in range(10)] == [None] * 7 + [7, 8, 9]


def test_ttl_above_the_written_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 1 s"):
        CatalogCache(ttl=1.5)


def test_ttl_zero_caches_nothing() -> None:
    cache: CatalogCache[str, int] = CatalogCache(ttl=0)
    cache.put("k", 1, cache.stamp())
    assert cache.get("k") is None
