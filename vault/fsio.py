"""Durable, private files: the one way Kinko writes a small file it must not lose or leak.

Key files and the switch-over record are written the same way: a temp file in the
same directory created ``0600`` from the start (``O_EXCL``: there is never a moment with looser
permissions, unlike ``open`` followed by ``chmod``), the data written and fsynced *before* the
name appears (a crash could otherwise leave an empty key file that a restart would refuse, or
replace), then published, and the directory fsynced so the new name survives a crash too.

``create_private`` publishes with ``link()``, which fails rather than replacing a file another
process created a moment earlier (a key that may already have wrapped data); ``replace_private``
is for files whose replacement is the point.  Audit export bundles use only ``fsync_dir``:
their files are meant for auditors and keep the ordinary umask-derived mode.  Imports nothing
of ours.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

PRIVATE_MODE = 0o600

__all__ = ["PRIVATE_MODE", "create_private", "fsync_dir", "replace_private"]


def fsync_dir(directory: Path) -> None:
    """Persist directory entries; platforms that cannot open directories skip this."""
    try:
        dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dfd)
    finally:
        os.close(dfd)


def _write_temp(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        # The umask can only remove bits from 0o600; set it exactly so that an odd umask
        # cannot leave the owner unable to read the file back.
        os.fchmod(fd, PRIVATE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def create_private(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists; True if this call created it.

    When another process wins the race, its file stays and False is returned: the caller then
    reads that file, so two processes never end up with two different keys.
    """
    tmp = _write_temp(path, data)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            # File systems without hard links: rename, but never over an existing file.
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if path.exists():
                return False
            os.rename(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return True


def replace_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (created 0600)."""
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)
