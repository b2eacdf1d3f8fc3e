"""Guarantee (SPEC §7) on the S3 backend: a 1 GiB round trip keeps the server's memory flat.

Same check as ``test_large_stream.py``, with the Kinko server storing its blobs in S3 (moto's
``ThreadedMotoServer`` over HTTP on loopback, see ``tests/s3_support.py``): a 1 GiB document is
uploaded from a generator (the server sends it on as an 8 MiB-part multipart upload) and
downloaded as a stream (the server streams the object body back), hashed on the fly on both
sides, while the Kinko server's RSS is sampled every 50 ms.  Peak RSS must stay under
200 MiB.  moto keeps the objects in memory in *this* (the test) process; only the Kinko server
process (and its children) is measured.  The bucket is emptied and deleted afterwards so that
the 1 GiB object does not stay in moto's memory for the rest of the session.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import KinkoServer, make_server
from guarantee_support import purpose_header
from s3_support import (  # noqa: F401  (fixtures are found by pytest through the import)
    _moto_endpoint,
    _s3_client,
    all_keys,
    aws_env_for_subprocess,
    new_bucket,
    open_uploads,
)

MIB = 1 << 20
TOTAL = 1024 * MIB
LIMIT = 200 * MIB
PREFIX = "blobs/"


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
        total: int = self.proc.memory_info().rss
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


def _empty_bucket(client: Any, bucket: str) -> None:
    for upload in open_uploads(client, bucket):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for key in all_keys(client, bucket):
        client.delete_object(Bucket=bucket, Key=key)
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_server(tmp_path: Path, moto_endpoint: str, s3_client: Any) -> Iterator[KinkoServer]:
    bucket = new_bucket(s3_client)
    srv = make_server(
        tmp_path,
        KINKO_STORAGE="s3",
        KINKO_S3_BUCKET=bucket,
        KINKO_S3_ENDPOINT_URL=moto_endpoint,
        KINKO_S3_PREFIX=PREFIX,
        **aws_env_for_subprocess(),
    )
    try:
        srv.start(timeout=60)
        yield srv
    finally:
        srv.close_clients()
        srv.stop()
        _empty_bucket(s3_client, bucket)


def test_one_gib_round_trip_through_s3_memory_stays_flat(s3_server: KinkoServer) -> None:
    srv = s3_server
    tag = secrets.token_hex(4)
    drafter = srv.user(f"drafter-{tag}", ["procurement"])
    case_id = drafter.create_case(f"LS3-{tag}", "large case on S3")["id"]
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
            headers=purpose_header("large download check (S3)"),
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
        f"\n[S3 backend] RSS baseline {baseline / MIB:.1f} MiB, "
        f"peak upload {up.peak / MIB:.1f} MiB ({up.samples} samples, {t_up:.1f} s, "
        f"{TOTAL / 1e6 / t_up:.0f} MB/s), peak download {down.peak / MIB:.1f} MiB "
        f"({down.samples} samples, {t_down:.1f} s, {TOTAL / 1e6 / t_down:.0f} MB/s)"
    )
    assert received == TOTAL
    assert got.hexdigest() == sent.hexdigest()
    assert up.samples >= 10
    assert down.samples >= 10
    assert up.peak < LIMIT, f"upload peak RSS {up.peak / MIB:.1f} MiB"
    assert down.peak < LIMIT, f"download peak RSS {down.peak / MIB:.1f} MiB"
    # Nothing of the 1 GiB went to the local data directory.
    blob_dir = srv.data_dir / "blobs"
    assert not blob_dir.exists() or not any(p.is_file() for p in blob_dir.rglob("*"))
