"""Conformance suite for blob stores, plus checks specific to the local backend.

Every test in the first part receives a store through the ``blob_store`` fixture and uses
only the ``BlobStore`` protocol, so a new backend (S3) is covered by adding it to
``BACKENDS``.  The second part looks at files on disk and therefore only runs on the local
backend.
"""

from __future__ import annotations

import gc
import os
import random
import re
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import vault.storage.local as local_module
from vault.storage import (
    BlobNotFound,
    BlobReader,
    BlobStore,
    BlobWriter,
    LocalBlobStore,
    StorageError,
)

BACKENDS = ["local"]

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


def _make_store(kind: str, tmp_path: Path) -> BlobStore:
    if kind == "local":
        return LocalBlobStore(tmp_path / "blobs")
    raise AssertionError(f"unknown backend {kind}")


@pytest.fixture(params=BACKENDS)
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    kind: str = request.param
    return _make_store(kind, tmp_path)


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
    ],
    ids=["empty", "one-byte", "3MiB-uneven"],
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
    reader.close()
    reader.close()


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
