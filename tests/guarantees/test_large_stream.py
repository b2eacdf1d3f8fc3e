"""Guarantee (SPEC §7): uploads and downloads stream; memory does not grow with document size.

A 1 GiB document is uploaded from a generator and downloaded as a stream, hashed on the fly
on both sides, while the server's resident set size is sampled every 50 ms.  Peak RSS must
stay under 200 MiB for the whole round trip.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Iterator

import psutil
from guarantee_support import purpose_header

MIB = 1 << 20
TOTAL = 1024 * MIB
LIMIT = 200 * MIB


class RssSampler:
    """Samples the RSS of a process and its children every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value = self.rss()
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, value)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _blocks(sha: hashlib._Hash) -> Iterator[bytes]:
    """1 GiB of incompressible, non-repeating bytes: one random MiB, a counter in front."""
    base = os.urandom(MIB)
    for i in range(TOTAL // MIB):
        block = i.to_bytes(8, "big") + base[8:]
        sha.update(block)
        yield block


def test_one_gib_round_trip_memory_stays_flat(fresh_server) -> None:
    srv = fresh_server
    tag = secrets.token_hex(4)
    drafter = srv.user(f"drafter-{tag}", ["procurement"])
    case_id = drafter.create_case(f"L-{tag}", "large case")["id"]
    doc = drafter.create_document(case_id, "proposal", "small first", b"v1")
    assert srv.proc is not None
    pid = srv.proc.pid

    baseline = RssSampler(pid).rss()
    sent = hashlib.sha256()
    t0 = time.monotonic()
    with RssSampler(pid) as up:
        r = drafter.http.put(
            f"/api/v1/documents/{doc['id']}/content", content=_blocks(sent), timeout=300
        )
    t_up = time.monotonic() - t0
    assert r.status_code == 201, r.text
    assert r.json() == {"version": 2}

    meta = drafter.document(doc["id"])
    assert meta["versions"][-1]["size"] == TOTAL
    assert meta["versions"][-1]["sha256"] == sent.hexdigest()

    got = hashlib.sha256()
    received = 0
    t0 = time.monotonic()
    with (
        RssSampler(pid) as down,
        drafter.http.stream(
            "GET",
            f"/api/v1/documents/{doc['id']}/content",
            params={"version": "2"},
            headers=purpose_header("large download check"),
            timeout=300,
        ) as resp,
    ):
        assert resp.status_code == 200
        assert int(resp.headers["content-length"]) == TOTAL
        for chunk in resp.iter_raw(MIB):
            got.update(chunk)
            received += len(chunk)
    t_down = time.monotonic() - t0

    print(
        f"\nRSS baseline {baseline / MIB:.1f} MiB, peak upload {up.peak / MIB:.1f} MiB "
        f"({up.samples} samples, {t_up:.1f} s), peak download {down.peak / MIB:.1f} MiB "
        f"({down.samples} samples, {t_down:.1f} s)"
    )
    assert received == TOTAL
    assert got.hexdigest() == sent.hexdigest()
    assert up.samples >= 10
    assert down.samples >= 10
    assert up.peak < LIMIT, f"upload peak RSS {up.peak / MIB:.1f} MiB"
    assert down.peak < LIMIT, f"download peak RSS {down.peak / MIB:.1f} MiB"
