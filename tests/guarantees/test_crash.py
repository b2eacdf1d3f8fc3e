"""Guarantee: a crash (SIGKILL) in the middle of uploads loses no acknowledged version and
leaves no partial one visible.

Several threads upload new versions of their own document as fast as they can (random bodies
of 10 KiB to 3 MiB), a few more trickle slow streaming uploads that are certainly in flight
when the server is killed.  Every 201 is recorded.  After the restart on the same data
directory, every acknowledged version reads back with its SHA-256, each document's versions
are exactly 1..n, every listed version reads back with the listed digest and size, and the
blob store's temp directory has been cleaned.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from guarantee_support import all_files, read_outcome, version_rows

from clients import KinkoClient

FAST_WRITERS = 4
SLOW_WRITERS = 3
RUN_SECONDS = 2.0


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: list[tuple[str, int, str, int]] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)  # uploads in flight when the server died
    unexpected: list[str] = field(default_factory=list)


def _slow_body(body: bytes, stop: threading.Event) -> Iterator[bytes]:
    for i in range(0, len(body), 32 * 1024):
        yield body[i : i + 32 * 1024]
        if stop.is_set():
            time.sleep(0.01)
        else:
            time.sleep(0.05)


def _writer(
    base_url: str,
    token: str,
    doc_id: str,
    seed: int,
    slow: bool,
    stop: threading.Event,
    ledger: Ledger,
) -> None:
    rng = random.Random(seed)
    with KinkoClient(base_url, token, timeout=30) as client:
        while True:
            size = rng.randint(10 * 1024, 3 * 1024 * 1024)
            body = rng.randbytes(size)
            digest = hashlib.sha256(body).hexdigest()
            content = _slow_body(body, stop) if slow else body
            try:
                r = client.http.put(f"/api/v1/documents/{doc_id}/content", content=content)
            except httpx.HTTPError as exc:
                with ledger.lock:
                    ledger.cut.append(f"{doc_id}: {type(exc).__name__}")
                return
            if r.status_code == 201:
                with ledger.lock:
                    ledger.acked.append((doc_id, r.json()["version"], digest, size))
            else:
                with ledger.lock:
                    ledger.unexpected.append(f"{doc_id}: {r.status_code} {r.text[:200]}")
                return
            if stop.is_set() and not slow:
                # Fast writers keep going until the kill; this only guards against a server
                # that never dies.
                time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_during_uploads(fresh_server) -> None:
    srv = fresh_server
    tag = secrets.token_hex(4)
    drafter = srv.user(f"drafter-{tag}", ["procurement"])
    token = drafter.http.headers["Authorization"].split(" ", 1)[1]
    case_id = drafter.create_case(f"C-{tag}", "crash case")["id"]

    ledger = Ledger()
    docs = []
    for i in range(FAST_WRITERS + SLOW_WRITERS):
        body = os.urandom(20_000 + i)
        doc = drafter.create_document(case_id, "proposal", f"crash {i}", body)
        docs.append(doc["id"])
        ledger.acked.append((doc["id"], 1, hashlib.sha256(body).hexdigest(), len(body)))

    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_writer,
            args=(srv.base_url, token, doc_id, i, i >= FAST_WRITERS, stop, ledger),
            daemon=True,
        )
        for i, doc_id in enumerate(docs)
    ]
    for t in threads:
        t.start()
    time.sleep(RUN_SECONDS)
    assert srv.proc is not None
    pid = srv.proc.pid
    srv.stop(signal.SIGKILL)  # send SIGKILL and reap the process
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)

    assert not ledger.unexpected, ledger.unexpected
    n_acked = len(ledger.acked) - len(docs)
    # The crash really happened mid-upload, and uploads had been acknowledged before it.
    assert len(ledger.cut) >= SLOW_WRITERS, ledger.cut
    assert n_acked >= 1, "no upload was acknowledged before the kill"
    tmp_dir = srv.data_dir / "blobs" / "tmp"
    leftovers = list(all_files(tmp_dir))
    assert leftovers, "expected partial uploads in blobs/tmp right after the kill"

    srv.start()
    assert srv.proc is not None
    assert srv.proc.pid != pid
    reader = srv.user(f"drafter-{tag}", ["procurement"])

    # blobs/tmp is empty after the restart.
    assert list(all_files(tmp_dir)) == [], "partial uploads survived the restart"

    # Every acknowledged version is there, with the same content.
    for doc_id, version, digest, size in ledger.acked:
        out = read_outcome(reader, doc_id, version, timeout=120)
        assert out.complete, f"acknowledged {doc_id} v{version} unreadable: {out}"
        assert len(out.body) == size
        assert hashlib.sha256(out.body).hexdigest() == digest, f"{doc_id} v{version} changed"

    # Every visible version is complete: contiguous 1..n, listed digest and size are the truth.
    acked_max: dict[str, int] = {}
    for doc_id, version, _d, _s in ledger.acked:
        acked_max[doc_id] = max(acked_max.get(doc_id, 0), version)
    listed_total = 0
    for doc_id in docs:
        meta = reader.document(doc_id)
        versions = meta["versions"]
        numbers = [v["version"] for v in versions]
        assert numbers == list(range(1, len(numbers) + 1)), numbers
        assert meta["latest_version"] == len(numbers)
        # Unacknowledged-but-committed is allowed (the 201 may have been lost); at most the
        # one upload that was in flight per document.
        assert acked_max[doc_id] <= len(numbers) <= acked_max[doc_id] + 1
        for v in versions:
            out = read_outcome(reader, doc_id, v["version"], timeout=120)
            assert out.complete, f"listed {doc_id} v{v['version']} unreadable: {out}"
            assert len(out.body) == v["size"]
            assert hashlib.sha256(out.body).hexdigest() == v["sha256"]
            listed_total += 1

    # The catalog agrees with the API; every row's blob exists.
    rows = version_rows(srv.data_dir)
    assert len(rows) == listed_total
    objects = {p.name for p in all_files(srv.data_dir / "blobs" / "objects")}
    assert {r[2] for r in rows} <= objects
    orphans = len(objects - {r[2] for r in rows})
    print(
        f"\ncrash: {n_acked} acked uploads + {len(docs)} creates, {len(ledger.cut)} cut, "
        f"{len(leftovers)} tmp leftovers removed at restart, {listed_total} versions listed, "
        f"{orphans} unreferenced blobs"
    )
