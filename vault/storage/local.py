"""A blob store on the local file system.

Layout under ``root`` (every directory mode 0700, every file mode 0600)::

    tmp/<random>.tmp                   blobs being written; never read by anyone else
    objects/<n[0:2]>/<n[2:4]>/<n>      committed blobs, ``n`` being the random blob name

Two levels of fan-out keep directories small (65,536 leaves) without a database.  The path
of a blob consists only of its random name, so the layout reveals nothing about documents.

Durability follows the usual POSIX recipe: the data is fsync'ed before it gets its final
name, the final name is created with ``link`` (which fails instead of overwriting, unlike
``rename``), and every directory whose entries changed on the way is fsync'ed before
``commit`` returns.  A crash at any earlier point leaves at most a file in ``tmp/``, which
:meth:`LocalBlobStore.cleanup_incomplete` removes at the next start-up.

A full disk, an exhausted quota or a failing device is the store being unavailable, not a bad
request: those errors become :class:`~vault.storage.base.StorageUnavailable` (503 at the API),
and a write that hits one aborts at once, so no partial blob or temp file is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BufferedReader, BufferedWriter
from pathlib import Path

from .base import (
    WRITER_ABORTED,
    WRITER_COMMITTED,
    WRITER_OPEN,
    BlobEntry,
    BlobExists,
    BlobNotFound,
    ReaderLifecycle,
    StorageError,
    StorageUnavailable,
    WriterLifecycle,
    is_valid_blob_name,
    new_blob_name,
)

__all__ = ["LocalBlobStore"]

_DIR_MODE = 0o700
_FILE_MODE = 0o600
_TMP_SUFFIX = ".tmp"

# Name collisions between 128-bit random names do not happen in practice; retrying a few
# times only exists so that a collision is handled correctly rather than being an error.
_COMMIT_ATTEMPTS = 8

# These flags are absent on some platforms; falling back to 0 keeps the module importable
# there while Linux, the supported platform, gets the protection they provide.
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

_OPEN, _COMMITTED, _ABORTED = WRITER_OPEN, WRITER_COMMITTED, WRITER_ABORTED

# Failures that say nothing about the request and everything about the file system: no space
# (ENOSPC), no quota left (EDQUOT), a file-size limit (EFBIG, e.g. RLIMIT_FSIZE), a device
# error (EIO) or a file system remounted read-only after an error (EROFS).  Retrying later, or
# elsewhere, can succeed, which is what StorageUnavailable (503) tells the caller.
_UNAVAILABLE_ERRNOS = frozenset(
    code
    for code in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", None),
        errno.EFBIG,
        errno.EIO,
        errno.EROFS,
    )
    if code is not None
)


def _failure(action: str, exc: OSError) -> StorageError:
    """The storage error for an OS failure: unavailable for a full or failing disk."""
    if exc.errno in _UNAVAILABLE_ERRNOS:
        return StorageUnavailable(f"{action}: {exc.strerror}")
    return StorageError(f"{action}: {exc.strerror}")


def _fsync_dir(path: Path) -> None:
    """Flush a directory's entries, which is what makes a create, link or unlink durable."""
    fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    """A :class:`~vault.storage.base.BlobStore` keeping each blob in its own file."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._tmp_dir = self._root / "tmp"
        self._objects_dir = self._root / "objects"
        self._lock = threading.Lock()
        # Temp files of writers of this instance that are still open; cleanup_incomplete must
        # not delete them if it is ever called while this process is writing.
        self._active_tmp: set[str] = set()
        # Shard directories whose own directory entry is known to be durable.  A writer that
        # finds a shard directory already present cannot know whether whoever created it has
        # fsync'ed the parent yet, so it does that once itself and remembers the result.
        self._durable_dirs: set[Path] = set()

        self._root.parent.mkdir(parents=True, exist_ok=True)
        for directory in (self._root, self._tmp_dir, self._objects_dir):
            self._ensure_dir(directory)

    # -- BlobStore -------------------------------------------------------------------------

    def writer(self, name: str | None = None) -> _LocalBlobWriter:
        if name is not None and not is_valid_blob_name(name):
            raise StorageError("malformed blob name")
        return _LocalBlobWriter(self, name)

    def open(self, name: str) -> _LocalBlobReader:
        path = self._object_path(name)
        try:
            fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW)
        except FileNotFoundError as exc:
            raise BlobNotFound(f"no blob named {name}") from exc
        except OSError as exc:
            raise _failure(f"cannot open blob {name}", exc) from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise BlobNotFound(f"no blob named {name}")
            file = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        return _LocalBlobReader(file, info.st_size)

    def delete(self, name: str) -> None:
        if not is_valid_blob_name(name):
            # A malformed name cannot refer to a stored blob, so it is simply "missing".
            return
        path = self._object_path(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _failure(f"cannot delete blob {name}", exc) from exc
        # Deletion backs retention and crypto-shredding decisions, so once delete returns the
        # blob must not come back after a crash.
        try:
            _fsync_dir(path.parent)
        except OSError as exc:
            raise _failure(f"cannot persist deletion of blob {name}", exc) from exc

    def exists(self, name: str) -> bool:
        if not is_valid_blob_name(name):
            return False
        try:
            info = os.lstat(self._object_path(name))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _failure(f"cannot stat blob {name}", exc) from exc
        return stat.S_ISREG(info.st_mode)

    def names(self) -> Iterator[str]:
        for entry in self._scan():
            yield entry.name

    def entries(self) -> Iterator[BlobEntry]:
        for entry in self._scan():
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted since its directory was listed
            except OSError as exc:
                raise _failure(f"cannot stat blob {entry.name}", exc) from exc
            yield BlobEntry(
                name=entry.name,
                size=info.st_size,
                modified=datetime.fromtimestamp(info.st_mtime, UTC),
            )

    def _scan(self) -> Iterator[os.DirEntry[str]]:
        # Each directory is listed completely before anything is yielded, so no directory
        # handle stays open while the caller works, and a caller deleting blobs while it
        # iterates (garbage collection does) cannot disturb an ongoing directory scan.
        for first in self._list_dir(self._objects_dir):
            if not first.is_dir(follow_symlinks=False):
                continue
            for second in self._list_dir(Path(first.path)):
                if not second.is_dir(follow_symlinks=False):
                    continue
                for entry in self._list_dir(Path(second.path)):
                    name = entry.name
                    # Only files that sit exactly where _object_path would put them count;
                    # stray files (editor backups, misplaced copies) are not blobs.
                    if (
                        is_valid_blob_name(name)
                        and name[0:2] == first.name
                        and name[2:4] == second.name
                        and entry.is_file(follow_symlinks=False)
                    ):
                        yield entry

    def cleanup_incomplete(self) -> int:
        removed = 0
        # Holding the lock for the whole scan keeps a writer of this instance from creating
        # its temp file between the scan and the unlink and losing it.
        with self._lock:
            for entry in self._list_dir(self._tmp_dir):
                if entry.name in self._active_tmp or entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise _failure(f"cannot remove leftover {entry.name}", exc) from exc
                removed += 1
        return removed

    # -- helpers used by the writer --------------------------------------------------------

    def _object_path(self, name: str) -> Path:
        # Every path built from a caller-supplied name passes through this check, so a
        # malformed name can never be turned into a path outside objects/.
        if not is_valid_blob_name(name):
            raise BlobNotFound("malformed blob name")
        return self._objects_dir / name[0:2] / name[2:4] / name

    def _create_tmp(self) -> tuple[str, BufferedWriter]:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW
        with self._lock:
            # The temp name is independent of the final blob name, which is only chosen at
            # commit time when it can be claimed atomically.
            tmp_name = secrets.token_hex(16) + _TMP_SUFFIX
            fd = os.open(self._tmp_dir / tmp_name, flags, _FILE_MODE)
            self._active_tmp.add(tmp_name)
        try:
            return tmp_name, os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self._release_tmp(tmp_name)
            raise

    def _release_tmp(self, tmp_name: str) -> None:
        """Remove a temp file (if still there) and forget it as active."""
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp_dir / tmp_name)
        finally:
            with self._lock:
                self._active_tmp.discard(tmp_name)

    def _publish(self, tmp_name: str, fixed: str | None = None) -> str:
        """Give a fully synced temp file a fresh blob name without ever replacing a blob."""
        source = self._tmp_dir / tmp_name
        for _ in range(1 if fixed else _COMMIT_ATTEMPTS):
            name = fixed or new_blob_name()
            target = self._object_path(name)
            self._ensure_dir(target.parent.parent)
            self._ensure_dir(target.parent)
            try:
                os.link(source, target)
            except FileExistsError:
                if fixed:
                    raise BlobExists(f"blob {fixed} exists") from None
                continue
            try:
                _fsync_dir(target.parent)
            except BaseException:
                # The caller will be told the commit failed, so the blob must not stay
                # visible either: otherwise it would be an object nobody references.
                with contextlib.suppress(OSError):
                    os.unlink(target)
                raise
            return name
        raise StorageError("could not allocate an unused blob name")

    def _ensure_dir(self, path: Path) -> None:
        """Create ``path`` if needed and make sure its directory entry is durable."""
        if path in self._durable_dirs:
            return
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, _DIR_MODE)
        _fsync_dir(path.parent)
        with self._lock:
            self._durable_dirs.add(path)

    @staticmethod
    def _list_dir(path: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(path) as entries:
                return list(entries)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _failure(f"cannot list {path.name}", exc) from exc


class _LocalBlobWriter(WriterLifecycle):
    """Writes straight through to a temp file; only ``commit`` makes the data visible."""

    def __init__(self, store: LocalBlobStore, name: str | None = None) -> None:
        # The writer only counts as open once its temp file exists, so that abort and
        # __del__ have nothing to clean up if creating it fails.
        self._state = _ABORTED
        self._store = store
        self._fixed = name
        self._size = 0
        try:
            self._tmp_name, self._file = store._create_tmp()
        except OSError as exc:
            raise _failure("cannot start a blob", exc) from exc
        self._state = _OPEN

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        self._require_open("write")
        try:
            self._size += self._file.write(data)
        except OSError as exc:
            # A blob that missed some bytes can never be committed, so the temp file goes
            # now: on a full disk, keeping it until the caller aborts would hold on to the
            # very space that everyone else is short of.
            self.abort()
            raise _failure("cannot write blob", exc) from exc

    def commit(self) -> str:
        self._require_open("commit")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            name = self._store._publish(self._tmp_name, self._fixed)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise _failure("cannot commit blob", exc) from exc
            raise
        self._state = _COMMITTED
        # The blob is durable under its final name; the temp name is now only a second link
        # to the same file.  Failing to remove it must not fail the commit, because the
        # leftover is harmless and cleanup_incomplete removes it at the next start-up.
        with contextlib.suppress(OSError):
            self._store._release_tmp(self._tmp_name)
        return name

    def abort(self) -> None:
        if self._state != _OPEN:
            return
        self._state = _ABORTED
        try:
            self._file.close()
        except OSError:
            # Closing flushes buffered data, which can fail (disk full); the data is being
            # thrown away anyway, so only the removal of the temp file matters.
            pass
        finally:
            self._store._release_tmp(self._tmp_name)


class _LocalBlobReader(ReaderLifecycle):
    """Streams a blob file; the OS and a small buffer do the work, never the whole file."""

    def __init__(self, file: BufferedReader, size: int) -> None:
        self._file = file
        self._size = size
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def _read(self, n: int) -> bytes:
        try:
            return self._file.read(n)
        except OSError as exc:
            raise _failure("cannot read blob", exc) from exc

    def _release(self) -> None:
        self._file.close()
