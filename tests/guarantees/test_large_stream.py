"""Guarantee (SPEC §7): uploads and downloads stream; memory does not grow with document size.

A 1 GiB document is uploaded from a generator and downloaded as a stream, hashed on the fly
on both sides, while the server's resident set size is sampled every 50 ms.  Peak RSS must
stay under 200 MiB for the whole round trip.
"""

from __future__ import annotations

import pytest
from guarantee_support import assert_gib_round_trip_flat


@pytest.mark.slow
def test_one_gib_round_trip_memory_stays_flat(fresh_server) -> None:
    assert_gib_round_trip_flat(fresh_server, "local backend")
