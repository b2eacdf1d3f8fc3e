"""Guarantee: damaged or swapped ciphertext makes a read FAIL; it never yields wrong bytes.

The server verifies the first chunk (up to 1 MiB of ciphertext) before it answers, so damage
there is a 500 ``integrity_error``; damage further on can only be noticed while streaming, and
then the response must break off (connection closed before Content-Length was reached).  In no
case may the client receive a complete, clean 200 whose bytes differ from what was stored.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from guarantee_support import (
    ReadOutcome,
    blob_of,
    new_case,
    read_outcome,
)

from clients import KinkoClient

SEG = 65536
SEG_CT = SEG + 16
HEADER = 80


@contextmanager
def restored(*paths: Path) -> Iterator[None]:
    """Tamper freely inside; every file gets its original bytes back afterwards."""
    saved = {p: p.read_bytes() for p in paths}
    try:
        yield
    finally:
        for p, data in saved.items():
            p.write_bytes(data)


def assert_read_fails(out: ReadOutcome, original: bytes, *, early: bool | None = None) -> None:
    # The one unacceptable outcome: a clean, complete 200 with the wrong bytes.
    assert not (out.complete and out.body != original), "wrong bytes served as a clean 200"
    # And the read must not succeed either: tampering has to be detected.
    assert out.failed(original), f"tampered blob read back cleanly: {out.status}"
    if out.status == 200:
        # Stream broke off: fewer bytes than declared and a transport error.
        assert out.broken is not None, "stream ended without error"
        assert out.declared_length == len(original)
        assert len(out.body) < len(original)
        # What did arrive is a verified prefix, never altered bytes.
        assert original.startswith(out.body)
    else:
        assert out.status == 500, out
        assert out.error_code == "integrity_error", out
        assert original not in out.body
    if early is True:
        assert out.status == 500, f"damage in the first chunk must be refused up front: {out}"
    if early is False:
        assert out.status in (200, 500), out


def assert_reads_ok(client: KinkoClient, doc_id: str, version: int, original: bytes) -> None:
    out = read_outcome(client, doc_id, version)
    assert out.complete, out
    assert out.body == original


@pytest.fixture(scope="module")
def docs(server):
    """Two documents of 200 KiB (3 full segments + a partial one), each with two versions,
    and one of 3 MiB whose later segments lie beyond the server's first verified chunk."""
    client, case_id = new_case(server)
    bodies: dict[tuple[str, int], bytes] = {}
    ids = []
    for i, size in enumerate((200 * 1024, 200 * 1024 + 5, 3 * 1024 * 1024 + 123)):
        v1 = os.urandom(size)
        doc = client.create_document(case_id, "specification", f"tamper {i}", v1)
        v2 = os.urandom(size)
        assert client.put_content(doc["id"], v2)["version"] == 2
        bodies[(doc["id"], 1)] = v1
        bodies[(doc["id"], 2)] = v2
        ids.append(doc["id"])
    return client, ids, bodies


def test_flip_one_byte(server, docs) -> None:
    client, ids, bodies = docs
    doc = ids[0]
    original = bodies[(doc, 1)]
    path = blob_of(server.data_dir, doc, 1)
    size = path.stat().st_size
    assert size == HEADER + len(original) + 16 * 4
    assert_reads_ok(client, doc, 1, original)
    cases = {
        "header magic": (0, True),
        "header salt": (20, True),
        "commitment": (60, True),
        "middle": (size // 2, True),  # segment 1, inside the first verified chunk
        "first segment tag": (HEADER + SEG_CT - 1, True),
        "last segment": (size - 100, False),  # verified only at the end of the stream
        "last byte": (size - 1, False),
    }
    for name, (offset, early) in cases.items():
        with restored(path):
            data = bytearray(path.read_bytes())
            data[offset] ^= 0x01
            path.write_bytes(bytes(data))
            out = read_outcome(client, doc, 1)
            try:
                assert_read_fails(out, original, early=early)
            except AssertionError as exc:
                raise AssertionError(f"flip at {name} ({offset}): {exc}") from exc
        assert_reads_ok(client, doc, 1, original)


def test_flip_in_late_segment_breaks_stream(server, docs) -> None:
    client, ids, bodies = docs
    doc = ids[2]
    original = bodies[(doc, 2)]
    path = blob_of(server.data_dir, doc, 2)
    for offset in (HEADER + 40 * SEG_CT + 7, path.stat().st_size - 20):
        with restored(path):
            data = bytearray(path.read_bytes())
            data[offset] ^= 0x80
            path.write_bytes(bytes(data))
            out = read_outcome(client, doc, 2)
            assert_read_fails(out, original, early=False)
            # Past the first chunk the answer is a 200 that must break off before the end.
            assert out.status == 200, out
            assert out.broken is not None, out
    assert_reads_ok(client, doc, 2, original)


@pytest.mark.parametrize(
    "cut",
    ["minus_one", "to_segment_boundary", "to_first_boundary", "header_only", "empty"],
)
def test_truncate(server, docs, cut: str) -> None:
    client, ids, bodies = docs
    doc = ids[0]
    original = bodies[(doc, 2)]
    path = blob_of(server.data_dir, doc, 2)
    size = path.stat().st_size
    new_size = {
        "minus_one": size - 1,
        # Drop the partial last segment and the third full one: the new "last" segment was
        # encrypted as non-last, which the decoder must notice.
        "to_segment_boundary": HEADER + 2 * SEG_CT,
        "to_first_boundary": HEADER + SEG_CT,
        "header_only": HEADER,
        "empty": 0,
    }[cut]
    with restored(path):
        with open(path, "r+b") as f:
            f.truncate(new_size)
        out = read_outcome(client, doc, 2)
        assert_read_fails(out, original)
        if cut in ("header_only", "empty", "to_first_boundary"):
            assert out.status == 500
    assert_reads_ok(client, doc, 2, original)


def test_truncate_large_blob_at_late_boundary(server, docs) -> None:
    client, ids, bodies = docs
    doc = ids[2]
    original = bodies[(doc, 1)]
    path = blob_of(server.data_dir, doc, 1)
    with restored(path):
        with open(path, "r+b") as f:
            f.truncate(HEADER + 45 * SEG_CT)
        out = read_outcome(client, doc, 1)
        assert_read_fails(out, original, early=False)
        assert out.status == 200, out
        assert out.broken is not None, out
    assert_reads_ok(client, doc, 1, original)


@pytest.mark.parametrize("pair", ["two_documents", "two_versions", "different_sizes"])
def test_swap_blobs(server, docs, pair: str) -> None:
    client, ids, bodies = docs
    a, b = {
        "two_documents": ((ids[0], 1), (ids[1], 1)),
        "two_versions": ((ids[0], 1), (ids[0], 2)),
        "different_sizes": ((ids[1], 2), (ids[2], 2)),
    }[pair]
    pa = blob_of(server.data_dir, *a)
    pb = blob_of(server.data_dir, *b)
    with restored(pa, pb):
        da, db = pa.read_bytes(), pb.read_bytes()
        pa.write_bytes(db)
        pb.write_bytes(da)
        for (doc, v), other in ((a, b), (b, a)):
            out = read_outcome(client, doc, v)
            assert_read_fails(out, bodies[(doc, v)], early=True)
            assert bodies[other][:1024] not in out.body
    for doc, v in (a, b):
        assert_reads_ok(client, doc, v, bodies[(doc, v)])


def _swap_column(data_dir: Path, column: str, a: tuple[str, int], b: tuple[str, int]) -> None:
    assert column in ("wrapped_dek", "blob_name", "sha256_sealed")
    with closing(sqlite3.connect(data_dir / "catalog.db", timeout=10)) as conn, conn:
        q = f"SELECT {column} FROM versions WHERE document_id=? AND version=?"  # noqa: S608
        va = conn.execute(q, a).fetchone()[0]
        vb = conn.execute(q, b).fetchone()[0]
        assert va != vb
        u = f"UPDATE versions SET {column}=? WHERE document_id=? AND version=?"  # noqa: S608
        if column == "blob_name":  # unique column: go through a placeholder
            conn.execute(u, ("0" * 32, *a))
            conn.execute(u, (va, *b))
            conn.execute(u, (vb, *a))
        else:
            conn.execute(u, (vb, *a))
            conn.execute(u, (va, *b))


@pytest.mark.parametrize("column", ["wrapped_dek", "blob_name", "sha256_sealed"])
@pytest.mark.parametrize("pair", ["two_documents", "two_versions"])
def test_swap_catalog_rows(server, docs, column: str, pair: str) -> None:
    client, ids, bodies = docs
    a, b = {
        "two_documents": ((ids[0], 2), (ids[1], 2)),
        "two_versions": ((ids[1], 1), (ids[1], 2)),
    }[pair]
    _swap_column(server.data_dir, column, a, b)
    try:
        for doc, v in (a, b):
            out = read_outcome(client, doc, v)
            original = bodies[(doc, v)]
            assert out.status != 200, f"swapped {column}: read of {doc} v{v} was served"
            assert out.status == 500, out
            for body in bodies.values():
                assert body[:1024] not in out.body
            assert out.failed(original)
    finally:
        _swap_column(server.data_dir, column, a, b)
    for doc, v in (a, b):
        assert_reads_ok(client, doc, v, bodies[(doc, v)])


def test_swapped_key_row_is_a_clean_integrity_error(server, docs) -> None:
    """A wrapped DEK that does not unwrap is damaged stored data, like a bad blob: it should
    be answered as ``integrity_error`` through the normal error path.  (Today it escapes as an
    unexpected exception: 500 ``internal_error``, a traceback in the log, and uvicorn closes
    the kept-alive connection, so a client's next request on it may be reset.)"""
    client, ids, _bodies = docs
    a, b = (ids[0], 1), (ids[1], 1)
    _swap_column(server.data_dir, "wrapped_dek", a, b)
    try:
        out = read_outcome(client, *a)
    finally:
        _swap_column(server.data_dir, "wrapped_dek", a, b)
    assert out.status == 500, out
    assert out.error_code == "integrity_error", out
