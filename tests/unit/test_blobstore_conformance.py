"""Conformance suite for blob stores, plus checks specific to each backend.

Every test in the first part receives a store through the ``blob_store`` fixture and uses
only the ``BlobStore`` protocol; it runs on every backend in ``BACKENDS`` (local files, and
S3 against moto's threaded server over real HTTP on loopback).  The later parts look at files
on disk or at the bucket and therefore only run on one backend.
"""

from __future__ import annotations

import gc
import os
import random
import re
import socket
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from s3_support import (  # noqa: F401  (fixtures are found by pytest through the import)
    _moto_endpoint,
    _s3_bucket,
    _s3_client,
    make_client,
    new_bucket,
    open_uploads,
)

import vault.storage.local as local_module
import vault.storage.s3 as s3_module
from vault.storage import (
    BlobExists,
    BlobNotFound,
    BlobReader,
    BlobStore,
    BlobWriter,
    LocalBlobStore,
    StorageError,
    StorageUnavailable,
)
from vault.storage.fallback import FallbackBlobStore
from vault.storage.gc import delete_orphans, find_orphans
from vault.storage.s3 import MIN_PART_SIZE, S3BlobStore

# "fallback" is the store a server uses after a migration (new store first, old one behind it):
# it must keep the same contract as the stores it is made of.
BACKENDS = ["local", "s3", "fallback"]
# Keys under a prefix, so that every test also checks that the prefix is handled.
S3_PREFIX = "kinko/blobs/"

NAME_RE = re.compile(r"[0-9a-f]{32}")
MIB = 1 << 20

MALFORMED_NAMES = [
    "../etc/passwd",
    "",
    "ABC",
    "x" * 32,
    "A" * 32,  # right length, but uppercase: names are lowercase only
    "0" * 31,
    "0" * 33,
    "0" * 32 + "\n",
    "../" + "0" * 29,
    "00/00/" + "0" * 26,
]


def _payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if kind == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if kind == "fallback":
        return FallbackBlobStore(
            LocalBlobStore(tmp_path / "new-blobs"), LocalBlobStore(tmp_path / "old-blobs")
        )
    if kind == "s3":
        # Requested lazily, so that the local backend's tests never start moto.
        client = request.getfixturevalue("s3_client")
        bucket: str = request.getfixturevalue("s3_bucket")
        return S3BlobStore.connect(
            bucket=bucket, prefix=S3_PREFIX, client=client, part_size=MIN_PART_SIZE
        )
    raise AssertionError(f"unknown backend {kind}")


@pytest.fixture(params=BACKENDS)
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    kind: str = request.param
    return _make_store(kind, request, tmp_path)


def _put(store: BlobStore, data: bytes, chunk_sizes: list[int] | None = None) -> str:
    """Write ``data`` in chunks cycling through ``chunk_sizes`` and commit it."""
    sizes = chunk_sizes or [len(data) or 1]
    with store.writer() as writer:
        offset = 0
        index = 0
        while offset < len(data):
            step = sizes[index % len(sizes)]
            writer.write(data[offset : offset + step])
            offset += step
            index += 1
        assert writer.size == len(data)
        return writer.commit()


def _get(store: BlobStore, name: str) -> bytes:
    with store.open(name) as reader:
        return reader.read()


# -- conformance: every backend ------------------------------------------------------------


def test_store_satisfies_protocol(blob_store: BlobStore) -> None:
    assert isinstance(blob_store, BlobStore)
    with blob_store.writer() as writer:
        assert isinstance(writer, BlobWriter)
        name = writer.commit()
    with blob_store.open(name) as reader:
        assert isinstance(reader, BlobReader)


@pytest.mark.parametrize(
    ("size", "chunk_sizes"),
    [
        (0, None),
        (1, None),
        (3 * MIB, [1, 4093, 65537, MIB + 3, 7, 300_001]),
        # More than two S3 parts (the S3 store under test uses 5 MiB parts).
        (11 * MIB + 17, [MIB + 1, 3 * MIB - 5, 7, 2 * MIB]),
    ],
    ids=["empty", "one-byte", "3MiB-uneven", "11MiB-uneven"],
)
def test_round_trip(blob_store: BlobStore, size: int, chunk_sizes: list[int] | None) -> None:
    data = _payload(size)
    name = _put(blob_store, data, chunk_sizes)
    with blob_store.open(name) as reader:
        assert reader.size == size
        assert reader.read() == data
        assert reader.read() == b""


def test_partial_reads(blob_store: BlobStore) -> None:
    data = _payload(10_000)
    name = _put(blob_store, data)
    with blob_store.open(name) as reader:
        assert reader.read(0) == b""
        assert reader.read(100) == data[:100]
        assert reader.read(5000) == data[100:5100]
        assert reader.read(-1) == data[5100:]
        assert reader.read(10) == b""


def test_writer_size_counts_bytes_written(blob_store: BlobStore) -> None:
    with blob_store.writer() as writer:
        assert writer.size == 0
        writer.write(b"abc")
        writer.write(b"")
        writer.write(b"defgh")
        assert writer.size == 8
        name = writer.commit()
        assert writer.size == 8
    assert _get(blob_store, name) == b"abcdefgh"


def test_names_are_32_lowercase_hex_and_unique(blob_store: BlobStore) -> None:
    names = [_put(blob_store, b"same content") for _ in range(20)]
    assert all(NAME_RE.fullmatch(name) for name in names)
    assert len(set(names)) == len(names)


def test_explicit_abort_leaves_nothing(blob_store: BlobStore) -> None:
    writer = blob_store.writer()
    writer.write(b"discard me")
    writer.abort()
    writer.abort()  # idempotent
    assert list(blob_store.names()) == []


def test_exception_in_context_manager_aborts(blob_store: BlobStore) -> None:
    writer = blob_store.writer()

    def fail_midway() -> None:
        with writer:
            writer.write(b"half a document")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    assert list(blob_store.names()) == []
    with pytest.raises(StorageError):
        writer.commit()


def test_leaving_context_manager_without_commit_aborts(blob_store: BlobStore) -> None:
    with blob_store.writer() as writer:
        writer.write(b"forgotten")
    assert list(blob_store.names()) == []
    with pytest.raises(StorageError):
        writer.commit()


def test_uncommitted_writer_is_never_visible(blob_store: BlobStore) -> None:
    kept = _put(blob_store, b"kept")
    writer = blob_store.writer()
    writer.write(b"in flight")
    assert list(blob_store.names()) == [kept]
    # Dropping the writer without commit or abort must not publish anything either.
    del writer
    gc.collect()
    assert list(blob_store.names()) == [kept]


def test_finished_writer_rejects_more_work(blob_store: BlobStore) -> None:
    aborted = blob_store.writer()
    aborted.abort()
    with pytest.raises(StorageError):
        aborted.write(b"x")
    with pytest.raises(StorageError):
        aborted.commit()

    with blob_store.writer() as committed:
        committed.write(b"done")
        name = committed.commit()
        with pytest.raises(StorageError):
            committed.write(b"more")
        with pytest.raises(StorageError):
            committed.commit()
    assert _get(blob_store, name) == b"done"


def test_abort_after_commit_is_a_no_op(blob_store: BlobStore) -> None:
    writer = blob_store.writer()
    writer.write(b"keep me")
    name = writer.commit()
    writer.abort()
    assert blob_store.exists(name)
    assert _get(blob_store, name) == b"keep me"


def test_open_missing_name_raises(blob_store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        blob_store.open("0123456789abcdef0123456789abcdef")


@pytest.mark.parametrize("name", MALFORMED_NAMES)
def test_malformed_names_are_never_found(blob_store: BlobStore, name: str) -> None:
    with pytest.raises(BlobNotFound):
        blob_store.open(name)
    assert not blob_store.exists(name)
    blob_store.delete(name)  # "missing", hence no error


def test_blob_not_found_is_a_storage_error() -> None:
    assert issubclass(BlobNotFound, StorageError)


def test_delete_is_idempotent(blob_store: BlobStore) -> None:
    name = _put(blob_store, b"short-lived")
    blob_store.delete(name)
    blob_store.delete(name)
    blob_store.delete("fedcba9876543210fedcba9876543210")
    assert not blob_store.exists(name)


def test_delete_removes_only_the_named_blob(blob_store: BlobStore) -> None:
    doomed = _put(blob_store, b"doomed")
    survivor = _put(blob_store, b"survivor")
    blob_store.delete(doomed)
    assert _get(blob_store, survivor) == b"survivor"


def test_exists(blob_store: BlobStore) -> None:
    name = _put(blob_store, b"here")
    assert blob_store.exists(name)
    assert not blob_store.exists("0" * 32)


def test_names_lists_committed_blobs(blob_store: BlobStore) -> None:
    assert list(blob_store.names()) == []
    committed = {_put(blob_store, _payload(100, seed)) for seed in range(5)}
    deleted = _put(blob_store, b"deleted")
    blob_store.delete(deleted)
    listed = list(blob_store.names())
    assert len(listed) == len(set(listed))
    assert set(listed) == committed


@pytest.mark.parametrize("size", [5, 11 * 1024 * 1024 + 7])
def test_fixed_name_is_kept_and_never_overwritten(blob_store: BlobStore, size: int) -> None:
    """Copying between stores keeps names; a taken name is refused, not replaced."""
    name = "ab" * 16
    first = _payload(size, 1)
    with blob_store.writer(name) as w:
        w.write(first)
        assert w.commit() == name
    with blob_store.writer(name) as w:
        w.write(_payload(size, 2))
        with pytest.raises(BlobExists):
            w.commit()
    with blob_store.open(name) as reader:
        assert reader.read() == first
    assert list(blob_store.names()) == [name]
    with pytest.raises(StorageError):
        blob_store.writer("../etc/passwd")


@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [(17, 1), (100_000, 1000), (100_000, 4096), (100_000, 65536), (100_000, 200_000), (0, 10)],
)
def test_iter_chunks(blob_store: BlobStore, size: int, chunk_size: int) -> None:
    data = _payload(size)
    name = _put(blob_store, data)
    with blob_store.open(name) as reader:
        chunks = list(reader.iter_chunks(chunk_size))
    assert all(0 < len(chunk) <= chunk_size for chunk in chunks)
    assert b"".join(chunks) == data


def test_iter_chunks_default_chunk_size(blob_store: BlobStore) -> None:
    data = _payload(2 * MIB + 5)
    name = _put(blob_store, data, [MIB // 3])
    with blob_store.open(name) as reader:
        chunks = list(reader.iter_chunks())
    assert all(0 < len(chunk) <= MIB for chunk in chunks)
    assert b"".join(chunks) == data


def test_iter_chunks_rejects_non_positive_size(blob_store: BlobStore) -> None:
    name = _put(blob_store, b"data")
    with blob_store.open(name) as reader, pytest.raises(ValueError, match="chunk_size"):
        reader.iter_chunks(0)


def test_reader_close_is_idempotent(blob_store: BlobStore) -> None:
    name = _put(blob_store, b"data")
    reader = blob_store.open(name)
    assert not reader.closed
    reader.close()
    reader.close()
    assert reader.closed


def test_closed_reader_refuses_reads(blob_store: BlobStore) -> None:
    name = _put(blob_store, _payload(10_000))
    with blob_store.open(name) as reader:
        assert reader.read(10) == _payload(10_000)[:10]
    assert reader.closed
    with pytest.raises(StorageError, match="closed"):
        reader.read(10)
    with pytest.raises(StorageError, match="closed"):
        reader.read(0)
    with pytest.raises(StorageError, match="closed"):
        reader.iter_chunks(100)


def test_reader_closed_under_a_running_iteration_is_an_error(blob_store: BlobStore) -> None:
    # A reader closed by someone else must not look like the end of the blob to whoever is
    # still iterating: that would pass a truncated download off as a complete one.
    name = _put(blob_store, _payload(10_000))
    reader = blob_store.open(name)
    chunks = reader.iter_chunks(1000)
    assert len(next(chunks)) == 1000
    reader.close()
    with pytest.raises(StorageError, match="closed"):
        next(chunks)


def test_closing_the_chunk_generator_closes_the_reader(blob_store: BlobStore) -> None:
    name = _put(blob_store, _payload(10_000))
    reader = blob_store.open(name)
    chunks = reader.iter_chunks(1000)
    next(chunks)
    assert not reader.closed
    chunks.close()  # what a server does with the iterator of a download cut short
    assert reader.closed


def test_exhausted_chunk_generator_closes_the_reader(blob_store: BlobStore) -> None:
    name = _put(blob_store, _payload(5000))
    reader = blob_store.open(name)
    assert b"".join(reader.iter_chunks(1000)) == _payload(5000)
    assert reader.closed


def test_dropped_reader_is_closed(blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _put(blob_store, _payload(5000))
    reader = blob_store.open(name)
    reader.read(10)
    released: list[int] = []
    # The hook wraps the backend's own release, so the file or connection really is closed
    # too; it only records which reader was released.
    backend = type(reader)
    real_release = backend._release  # type: ignore[attr-defined]

    def release(self: Any) -> None:
        released.append(id(self))
        real_release(self)

    monkeypatch.setattr(backend, "_release", release)
    expected = id(reader)
    del reader
    gc.collect()
    assert released == [expected]


def test_entries_list_committed_blobs_with_size_and_time(blob_store: BlobStore) -> None:
    assert list(blob_store.entries()) == []
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    sizes = {_put(blob_store, _payload(size, size)): size for size in (0, 1, 1000, 70_000)}
    deleted = _put(blob_store, b"deleted")
    blob_store.delete(deleted)
    writer = blob_store.writer()  # an uncommitted write is not listed
    writer.write(b"in flight")
    after = datetime.now(UTC) + timedelta(seconds=1)
    entries = list(blob_store.entries())
    writer.abort()
    assert {entry.name: entry.size for entry in entries} == sizes
    assert len(entries) == len(sizes)
    for entry in entries:
        assert entry.modified.tzinfo is not None
        assert before <= entry.modified <= after
    assert {entry.name for entry in entries} == set(blob_store.names())


def test_open_after_delete_raises(blob_store: BlobStore) -> None:
    name = _put(blob_store, b"gone soon")
    blob_store.delete(name)
    with pytest.raises(BlobNotFound):
        blob_store.open(name)
    assert name not in set(blob_store.names())


def test_concurrent_writers_commit_distinct_blobs(blob_store: BlobStore) -> None:
    # The barrier makes both writers hold an open, partly written blob at the same time,
    # and then commit at (nearly) the same moment.
    both_writing = threading.Barrier(2, timeout=10)
    both_written = threading.Barrier(2, timeout=10)
    payloads = [_payload(256 * 1024, seed) for seed in (1, 2)]

    def write(data: bytes) -> str:
        with blob_store.writer() as writer:
            writer.write(data[:1000])
            both_writing.wait()
            writer.write(data[1000:])
            both_written.wait()
            return writer.commit()

    with ThreadPoolExecutor(max_workers=2) as pool:
        names = list(pool.map(write, payloads))

    assert names[0] != names[1]
    assert set(blob_store.names()) == set(names)
    for name, data in zip(names, payloads, strict=True):
        assert _get(blob_store, name) == data


def test_find_orphans_spares_referenced_and_young_blobs(blob_store: BlobStore) -> None:
    referenced = _put(blob_store, b"a version row names this one")
    orphans = {_put(blob_store, _payload(size, size)): size for size in (10, 2000)}
    later = datetime.now(UTC) + timedelta(hours=25)
    calls: list[int] = []

    def catalog() -> set[str]:
        calls.append(len(calls))
        return {referenced}

    # Seen from 25 hours on, every blob is past the default 24-hour grace period.
    plan = find_orphans(blob_store, catalog, now=later)
    assert calls == [0]
    assert {o.entry.name: o.entry.size for o in plan.orphans} == orphans
    assert plan.count == 2
    assert plan.total_bytes == 2010
    assert plan.too_young == 0
    # Seen from now, the same blobs are too young to be touched.
    young = find_orphans(blob_store, catalog)
    assert young.orphans == []
    assert young.too_young == 2
    with pytest.raises(ValueError, match="negative"):
        find_orphans(blob_store, catalog, grace=timedelta(hours=-1))


# -- local backend only ----------------------------------------------------------------------


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    return tmp_path / "vault-blobs"


def _object_file(root: Path, name: str) -> Path:
    return root / "objects" / name[0:2] / name[2:4] / name


def test_local_file_and_directory_modes(local_root: Path) -> None:
    store = LocalBlobStore(local_root)
    name = _put(store, b"confidential bid")
    path = _object_file(local_root, name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (local_root, local_root / "tmp", local_root / "objects", path.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_local_temp_file_mode_while_writing(local_root: Path) -> None:
    store = LocalBlobStore(local_root)
    with store.writer() as writer:
        writer.write(b"draft")
        (tmp_file,) = (local_root / "tmp").iterdir()
        assert stat.S_IMODE(tmp_file.stat().st_mode) == 0o600
    assert list((local_root / "tmp").iterdir()) == []


def test_local_paths_reveal_nothing_about_content(local_root: Path) -> None:
    store = LocalBlobStore(local_root)
    content = b"Tender-2024-017 bid by Yamada Construction: 12,345,678 JPY"
    name = _put(store, content)
    assert _object_file(local_root, name).read_bytes() == content
    # Every path component is either fixed or random hex, so nothing from the content can
    # appear in it; the same content stored twice getting two names shows that the names
    # are not derived from the content (e.g. a hash) either.
    allowed = {"tmp", "objects"}
    for path in local_root.rglob("*"):
        part = path.name
        assert part in allowed or re.fullmatch(r"[0-9a-f]{2}|[0-9a-f]{32}", part), part
    assert _put(store, content) != name


def test_local_cleanup_incomplete_removes_leftovers(local_root: Path) -> None:
    store = LocalBlobStore(local_root)
    kept = _put(store, b"committed before the crash")
    interrupted = store.writer()
    interrupted.write(b"written when the process died")
    assert len(list((local_root / "tmp").iterdir())) == 1

    # A fresh instance over the same root plays the role of the process after a restart.
    restarted = LocalBlobStore(local_root)
    assert restarted.cleanup_incomplete() == 1
    assert list((local_root / "tmp").iterdir()) == []
    assert restarted.cleanup_incomplete() == 0
    assert list(restarted.names()) == [kept]
    interrupted.abort()  # the "dead" writer's file is already gone; abort must cope


def test_local_cleanup_spares_writers_of_the_same_instance(local_root: Path) -> None:
    store = LocalBlobStore(local_root)
    with store.writer() as writer:
        writer.write(b"still being written")
        assert store.cleanup_incomplete() == 0
        name = writer.commit()
    assert _get(store, name) == b"still being written"


def test_local_blob_survives_reinstantiation(local_root: Path) -> None:
    name = _put(LocalBlobStore(local_root), b"durable")
    reopened = LocalBlobStore(local_root)
    assert reopened.cleanup_incomplete() == 0
    assert reopened.exists(name)
    assert list(reopened.names()) == [name]
    assert _get(reopened, name) == b"durable"


def test_local_name_collision_never_overwrites(
    local_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(local_root)
    taken = "a" * 32
    fresh = "b" * 32
    sequence = iter([taken, taken, fresh])
    monkeypatch.setattr(local_module, "new_blob_name", lambda: next(sequence))

    assert _put(store, b"first") == taken
    assert _put(store, b"second") == fresh
    assert _get(store, taken) == b"first"
    assert _get(store, fresh) == b"second"


def test_local_commit_fails_cleanly_when_every_name_is_taken(
    local_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(local_root)
    taken = "c" * 32
    monkeypatch.setattr(local_module, "new_blob_name", lambda: taken)
    assert _put(store, b"original") == taken

    with pytest.raises(StorageError, match="unused blob name"):
        _put(store, b"intruder")
    assert _get(store, taken) == b"original"
    assert list(store.names()) == [taken]
    assert list((local_root / "tmp").iterdir()) == []


def test_local_commit_fsyncs_data_and_directories(
    local_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to map descriptors back to paths")
    store = LocalBlobStore(local_root)
    synced: list[str] = []
    real_fsync: Callable[[int], None] = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    name = _put(store, b"must survive a power cut")
    target = _object_file(local_root, name)
    objects = local_root / "objects"

    # The data itself (still under its temp name, hence the prefix check) ...
    assert any(entry.startswith(str(local_root / "tmp") + os.sep) for entry in synced)
    # ... the directory holding the new name, and the parents of the new shard directories.
    for directory in (target.parent, target.parent.parent, objects):
        assert str(directory) in synced


def test_local_names_ignores_stray_files(local_root: Path) -> None:
    store = LocalBlobStore(local_root)
    name = _put(store, b"real")
    shard = _object_file(local_root, name).parent
    (shard / "notes.txt").write_bytes(b"not a blob")
    # A valid name, but in a shard directory that does not match its prefix.
    misplaced = ("1" if name.startswith("0") else "0") * 32
    (shard / misplaced).write_bytes(b"wrong shard")
    (local_root / "objects" / "zz").mkdir()
    assert list(store.names()) == [name]
    assert not store.exists(misplaced)


def test_local_reader_after_delete_keeps_its_open_file(local_root: Path) -> None:
    # POSIX keeps an unlinked file readable through descriptors opened earlier; a reader in
    # the middle of a download is therefore not cut off by a concurrent delete.
    store = LocalBlobStore(local_root)
    name = _put(store, _payload(50_000))
    with store.open(name) as reader:
        store.delete(name)
        assert sum(len(chunk) for chunk in reader.iter_chunks(4096)) == 50_000
    with pytest.raises(BlobNotFound):
        store.open(name)


# -- fallback store only ----------------------------------------------------------------------


def test_fallback_lists_and_collects_blobs_on_both_stores(tmp_path: Path) -> None:
    new, old = LocalBlobStore(tmp_path / "new"), LocalBlobStore(tmp_path / "old")
    store = FallbackBlobStore(new, old)
    only_old = _put(old, b"written before the switch")
    referenced = _put(old, b"still needed")
    copied = "ab" * 16  # an orphan the migration copied: it exists on both stores
    for backend in (old, new):
        with backend.writer(copied) as writer:
            writer.write(b"orphan copy")
            writer.commit()
    assert _get(store, only_old) == b"written before the switch"
    assert sorted(e.name for e in store.entries()) == sorted([only_old, referenced, copied])

    plan = find_orphans(store, lambda: {referenced}, now=datetime.now(UTC) + timedelta(days=2))
    found = sorted((o.entry.name, o.store is new) for o in plan.orphans)
    assert found == sorted([(only_old, False), (copied, False), (copied, True)])
    assert delete_orphans(plan) == (3, 2 * len(b"orphan copy") + len(b"written before the switch"))
    assert list(new.names()) == []
    assert list(old.names()) == [referenced]


# -- S3 backend only (moto's server over HTTP) ------------------------------------------------


@pytest.fixture
def s3_store(s3_client: Any, s3_bucket: str) -> S3BlobStore:
    return S3BlobStore.connect(
        bucket=s3_bucket, prefix=S3_PREFIX, client=s3_client, part_size=MIN_PART_SIZE
    )


class _FailingClient:
    """Delegates to a real client, but fails the ``fail_part``-th UploadPart call."""

    def __init__(self, client: Any, fail_part: int) -> None:
        self._client = client
        self._fail_part = fail_part
        self.parts_sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_part(self, **kwargs: Any) -> Any:
        self.parts_sent += 1
        if self.parts_sent == self._fail_part:
            raise s3_module.ClientError(
                {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                "UploadPart",
            )
        return self._client.upload_part(**kwargs)


def test_s3_multipart_round_trip_keeps_one_part_in_memory(
    s3_store: S3BlobStore, s3_client: Any, s3_bucket: str
) -> None:
    data = _payload(2 * MIN_PART_SIZE + 12_345, seed=7)
    steps = [MIB - 1, 3 * MIB + 7, 1, 2 * MIB]
    with s3_store.writer() as writer:
        offset = index = 0
        while offset < len(data):
            step = steps[index % len(steps)]
            writer.write(data[offset : offset + step])
            offset += step
            index += 1
            assert writer.buffered <= MIN_PART_SIZE  # type: ignore[attr-defined]
        name = writer.commit()
    assert _get(s3_store, name) == data
    head = s3_client.head_object(Bucket=s3_bucket, Key=S3_PREFIX + name)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    assert open_uploads(s3_client, s3_bucket) == []


def test_s3_blob_of_exactly_one_part_is_a_single_put(
    s3_store: S3BlobStore, s3_client: Any, s3_bucket: str
) -> None:
    data = _payload(MIN_PART_SIZE, seed=3)
    name = _put(s3_store, data, [MIB])
    head = s3_client.head_object(Bucket=s3_bucket, Key=S3_PREFIX + name)
    assert "-" not in head["ETag"]
    assert _get(s3_store, name) == data


def test_s3_exception_mid_multipart_write_leaves_no_parts(
    s3_store: S3BlobStore, s3_client: Any, s3_bucket: str
) -> None:
    def fail_midway() -> None:
        with s3_store.writer() as writer:
            writer.write(_payload(MIN_PART_SIZE + MIB))  # the first part is sent
            assert len(open_uploads(s3_client, s3_bucket)) == 1
            raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="went away"):
        fail_midway()
    assert open_uploads(s3_client, s3_bucket) == []
    assert list(s3_store.names()) == []


def test_s3_failed_part_upload_aborts_the_upload(s3_client: Any, s3_bucket: str) -> None:
    failing = _FailingClient(s3_client, fail_part=2)
    store = S3BlobStore.connect(
        bucket=s3_bucket, prefix=S3_PREFIX, client=failing, part_size=MIN_PART_SIZE
    )
    writer = store.writer()

    def write_four_pieces() -> None:
        for _ in range(4):
            writer.write(_payload(3 * MIB))

    with pytest.raises(StorageError, match="UploadPart"):
        write_four_pieces()
    assert failing.parts_sent == 2
    assert open_uploads(s3_client, s3_bucket) == []
    with pytest.raises(StorageError):
        writer.commit()
    assert list(store.names()) == []


def test_s3_dropped_writer_aborts_its_upload(
    s3_store: S3BlobStore, s3_client: Any, s3_bucket: str
) -> None:
    writer = s3_store.writer()
    writer.write(_payload(MIN_PART_SIZE + 1))
    assert len(open_uploads(s3_client, s3_bucket)) == 1
    del writer
    gc.collect()
    assert open_uploads(s3_client, s3_bucket) == []


def test_s3_name_collision_never_overwrites(
    s3_store: S3BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken, fresh = "a" * 32, "b" * 32
    sequence = iter([taken, taken, fresh])
    monkeypatch.setattr(s3_module, "new_blob_name", lambda: next(sequence))
    assert _put(s3_store, b"first") == taken
    assert _put(s3_store, b"second") == fresh  # the conditional put refused `taken`
    assert _get(s3_store, taken) == b"first"
    assert _get(s3_store, fresh) == b"second"


def test_s3_single_put_refuses_to_overwrite(
    s3_store: S3BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = "c" * 32
    monkeypatch.setattr(s3_module, "new_blob_name", lambda: taken)
    assert _put(s3_store, b"original") == taken
    with pytest.raises(StorageError, match="unused blob name"):
        _put(s3_store, b"intruder")
    assert _get(s3_store, taken) == b"original"
    assert list(s3_store.names()) == [taken]


def test_s3_multipart_completion_refuses_to_overwrite(
    s3_store: S3BlobStore, s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = "d" * 32
    monkeypatch.setattr(s3_module, "new_blob_name", lambda: taken)
    assert _put(s3_store, b"original") == taken
    with pytest.raises(StorageError, match="refusing to overwrite"):
        _put(s3_store, _payload(MIN_PART_SIZE + MIB), [MIB])
    assert _get(s3_store, taken) == b"original"
    assert open_uploads(s3_client, s3_bucket) == []


def test_s3_keys_are_prefix_and_random_name_only(
    s3_store: S3BlobStore, s3_client: Any, s3_bucket: str
) -> None:
    content = b"Tender-2024-017 bid by Yamada Construction: 12,345,678 JPY"
    names = {_put(s3_store, content) for _ in range(3)}
    keys = [e["Key"] for e in s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert sorted(keys) == sorted(S3_PREFIX + name for name in names)


def test_s3_names_ignores_foreign_objects(
    s3_store: S3BlobStore, s3_client: Any, s3_bucket: str
) -> None:
    name = _put(s3_store, b"real")
    for key in (
        S3_PREFIX + "notes.txt",
        S3_PREFIX + name + "/nested",
        S3_PREFIX + "A" * 32,
        "elsewhere/" + "e" * 32,
        "f" * 32,
    ):
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"not a blob")
    assert list(s3_store.names()) == [name]
    assert not s3_store.exists("e" * 32)
    assert not s3_store.exists("f" * 32)


def test_s3_store_without_prefix(s3_client: Any, s3_bucket: str) -> None:
    store = S3BlobStore.connect(bucket=s3_bucket, client=s3_client)
    expected = {_put(store, b"x") for _ in range(3)}
    s3_client.put_object(Bucket=s3_bucket, Key="readme.txt", Body=b"not a blob")
    assert set(store.names()) == expected
    assert all(s3_client.head_object(Bucket=s3_bucket, Key=name) for name in expected)


def test_s3_cleanup_incomplete_aborts_leftovers_only(
    s3_store: S3BlobStore, s3_client: Any, s3_bucket: str
) -> None:
    kept = _put(s3_store, b"committed before the crash")
    interrupted = s3_store.writer()
    interrupted.write(_payload(MIN_PART_SIZE + 1))  # a multipart upload is open
    # Someone else's upload outside the prefix is none of this store's business.
    s3_client.create_multipart_upload(Bucket=s3_bucket, Key="other/" + "0" * 32)
    assert len(open_uploads(s3_client, s3_bucket)) == 2

    # The instance that owns the writer never aborts it.
    assert s3_store.cleanup_incomplete() == 0
    # moto reports every upload as initiated in 2010, so a generous age threshold shows the
    # age check (a live upload of another process is never touched) ...
    patient = S3BlobStore.connect(
        bucket=s3_bucket,
        prefix=S3_PREFIX,
        client=s3_client,
        incomplete_max_age=timedelta(days=365 * 100),
    )
    assert patient.cleanup_incomplete() == 0
    # ... and a fresh instance (the process after a restart) removes the leftover.
    restarted = S3BlobStore.connect(bucket=s3_bucket, prefix=S3_PREFIX, client=s3_client)
    assert restarted.cleanup_incomplete() == 1
    assert restarted.cleanup_incomplete() == 0
    assert [u["Key"] for u in open_uploads(s3_client, s3_bucket)] == ["other/" + "0" * 32]
    assert list(restarted.names()) == [kept]
    interrupted.abort()  # its upload is already gone; abort must cope


def test_s3_connect_to_missing_bucket_fails(s3_client: Any) -> None:
    with pytest.raises(StorageUnavailable, match=r"no-such-bucket-kinko.*does not exist"):
        S3BlobStore.connect(bucket="no-such-bucket-kinko", client=s3_client)


def test_s3_connect_builds_its_own_client(moto_endpoint: str, s3_client: Any) -> None:
    bucket = new_bucket(s3_client)
    store = S3BlobStore.connect(bucket=bucket, prefix="p/", endpoint_url=moto_endpoint)
    assert _get(store, _put(store, b"via the default client")) == b"via the default client"
    with pytest.raises(StorageUnavailable, match="missing-kinko-bucket"):
        S3BlobStore.connect(bucket="missing-kinko-bucket", endpoint_url=moto_endpoint)


def test_s3_connect_to_unreachable_endpoint_fails_quickly() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(
        f"http://127.0.0.1:{port}",
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=1,
        read_timeout=1,
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=rf"cannot reach S3 bucket 'kinko'.*{port}"):
        S3BlobStore.connect(bucket="kinko", client=client)
    assert time.monotonic() - started < 5


def test_s3_connect_without_credentials_fails(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(StorageUnavailable, match=r"no AWS credentials.*'kinko-creds'"):
        S3BlobStore.connect(bucket="kinko-creds", endpoint_url=moto_endpoint)


def test_s3_connect_with_refused_credentials_fails(moto_endpoint: str) -> None:
    # moto accepts any credentials, so the 403 a real S3 gives is played by botocore's stubber.
    client = make_client(moto_endpoint)
    with Stubber(client) as stub:
        stub.add_client_error("head_bucket", "403", http_status_code=403)
        with pytest.raises(StorageUnavailable, match=r"'kinko'.*refused access"):
            S3BlobStore.connect(bucket="kinko", client=client)


def test_s3_part_size_below_the_s3_minimum_is_rejected(s3_client: Any, s3_bucket: str) -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3BlobStore.connect(bucket=s3_bucket, client=s3_client, part_size=MIB)


def test_s3_reads_go_through_the_sdk_behind_a_proxy(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a proxy configured, reads are not sent around it on a pool of our own: they go
    # through the SDK, which honours the proxy settings (here bypassed for loopback by
    # NO_PROXY, so the moto server still answers).
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    store = _make_store("s3", request, tmp_path)
    assert isinstance(store, S3BlobStore)
    with store.writer() as w:
        w.write(b"through the SDK")
        name = w.commit()
    with store.open(name) as reader:
        assert reader.read() == b"through the SDK"
    assert not store._direct_reads
