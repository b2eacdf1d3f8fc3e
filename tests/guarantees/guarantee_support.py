"""Helpers shared by the guarantee tests (real server, raw HTTP, raw files)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import psutil

from clients import KinkoClient

PURPOSE = "guarantee test: integrity check"


def purpose_header(purpose: str = PURPOSE) -> dict[str, str]:
    return {"X-Access-Purpose": quote(purpose, safe="")}


def new_case(srv: object, *, title: str | None = None) -> tuple[KinkoClient, str]:
    """A fresh procurement user (drafter of a new case); returns (client, case_id)."""
    tag = secrets.token_hex(4)
    client = srv.user(f"drafter-{tag}", ["procurement"])  # type: ignore[attr-defined]
    case = client.create_case(f"G-{tag}", title or f"guarantee case {tag}")
    return client, case["id"]


@dataclass
class ReadOutcome:
    """What a client actually received for one content read."""

    status: int | None
    declared_length: int | None
    body: bytes
    broken: str | None  # transport error raised while receiving (stream cut off)
    error_code: str | None

    @property
    def complete(self) -> bool:
        """The full declared body arrived and the stream ended cleanly."""
        return (
            self.status == 200
            and self.broken is None
            and self.declared_length is not None
            and len(self.body) == self.declared_length
        )

    def failed(self, original: bytes) -> bool:
        """The read did not hand over the document as a clean, complete 200."""
        return not self.complete or self.body != original


def read_outcome(
    client: KinkoClient,
    doc_id: str,
    version: int | None = None,
    timeout: float = 60.0,
    *,
    reuse: bool = False,
) -> ReadOutcome:
    """One content read.  By default on a new connection, so that what an earlier failed
    request did to a kept-alive connection cannot disturb this one."""
    if reuse:
        return _read_outcome(client.http, doc_id, version, timeout)
    with httpx.Client(base_url=client.http.base_url, headers=client.http.headers) as http:
        return _read_outcome(http, doc_id, version, timeout)


def _read_outcome(
    http: httpx.Client, doc_id: str, version: int | None, timeout: float
) -> ReadOutcome:
    params = {} if version is None else {"version": str(version)}
    status: int | None = None
    declared: int | None = None
    body = bytearray()
    broken: str | None = None
    code: str | None = None
    try:
        with http.stream(
            "GET",
            f"/api/v1/documents/{doc_id}/content",
            params=params,
            headers=purpose_header(),
            timeout=timeout,
        ) as resp:
            status = resp.status_code
            cl = resp.headers.get("content-length")
            declared = int(cl) if cl is not None else None
            try:
                for chunk in resp.iter_raw():
                    body += chunk
            except httpx.HTTPError as exc:
                broken = f"{type(exc).__name__}: {exc}"
    except httpx.HTTPError as exc:
        broken = broken or f"{type(exc).__name__}: {exc}"
    if status is not None and status != 200:
        try:
            code = httpx.Response(status, content=bytes(body)).json()["error"]["code"]
        except Exception:
            code = None
    return ReadOutcome(status, declared, bytes(body), broken, code)


def version_rows(data_dir: Path) -> list[tuple[str, int, str, int]]:
    """(document_id, version, blob_name, size) of every version row in the catalog."""
    with closing(sqlite3.connect(data_dir / "catalog.db", timeout=10)) as conn:
        rows = conn.execute(
            "SELECT document_id, version, blob_name, size FROM versions "
            "ORDER BY document_id, version"
        ).fetchall()
    return [(r[0], int(r[1]), r[2], int(r[3])) for r in rows]


def blob_path(data_dir: Path, name: str) -> Path:
    return data_dir / "blobs" / "objects" / name[0:2] / name[2:4] / name


def blob_of(data_dir: Path, doc_id: str, version: int) -> Path:
    for d, v, name, _size in version_rows(data_dir):
        if d == doc_id and v == version:
            path = blob_path(data_dir, name)
            assert path.is_file(), f"blob {name} of {doc_id} v{version} missing"
            return path
    raise AssertionError(f"no version row for {doc_id} v{version}")


def all_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path


# -- the 1 GiB round trip shared by the local and S3 backend tests ------------------------------


class KinkoServerLike(Protocol):
    proc: Any

    def user(self, name: str, roles: list[str] | None = None) -> KinkoClient: ...


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


def gib_blocks(sha: hashlib._Hash) -> Iterator[bytes]:
    """1 GiB of incompressible, non-repeating bytes: one random MiB, a counter in front."""
    base = os.urandom(MIB)
    for i in range(TOTAL // MIB):
        block = i.to_bytes(8, "big") + base[8:]
        sha.update(block)
        yield block


def assert_gib_round_trip_flat(srv: KinkoServerLike, label: str) -> None:
    """1 GiB up and down through ``srv``: digests match and peak RSS stays under 200 MiB."""
    tag = secrets.token_hex(4)
    drafter = srv.user(f"drafter-{tag}", ["procurement"])
    case_id = drafter.create_case(f"L-{tag}", f"large case ({label})")["id"]
    doc = drafter.create_document(case_id, "proposal", "small first", b"v1")
    assert srv.proc is not None
    pid = srv.proc.pid

    baseline = RssSampler(pid).rss()
    sent = hashlib.sha256()
    t0 = time.monotonic()
    with RssSampler(pid) as up:
        r = drafter.http.put(
            f"/api/v1/documents/{doc['id']}/content", content=gib_blocks(sent), timeout=300
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
            headers=purpose_header(f"large download check ({label})"),
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
        f"\n[{label}] RSS baseline {baseline / MIB:.1f} MiB, peak upload {up.peak / MIB:.1f} MiB "
        f"({up.samples} samples, {t_up:.1f} s), peak download {down.peak / MIB:.1f} MiB "
        f"({down.samples} samples, {t_down:.1f} s)"
    )
    assert received == TOTAL
    assert got.hexdigest() == sent.hexdigest()
    assert up.samples >= 10
    assert down.samples >= 10
    assert up.peak < LIMIT, f"upload peak RSS {up.peak / MIB:.1f} MiB"
    assert down.peak < LIMIT, f"download peak RSS {down.peak / MIB:.1f} MiB"
