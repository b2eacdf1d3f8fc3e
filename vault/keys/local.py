"""The local master key provider: master keys in a JSON file readable by its owner only.

Byte formats ("Provider-wrapped key" and "Master key file") are specified in
``docs/format.md``.  A provider-wrapped key is ``b"KNKP" | 0x01 | u8 len(id) | id`` followed
by a ``KNKW`` wrapped key (:func:`vault.crypto.wrap_key`) whose associated data is that header
plus the canonical context under :data:`MASTER_WRAP_LABEL`.  The file is written only through
:mod:`vault.fsio`, so it is ``0600`` from its creation and survives a crash.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from threading import Lock
from typing import Any

from vault.crypto.wrap import (
    KEY_SIZE,
    WRAPPED_KEY_SIZE,
    UnwrapError,
    canonical_context,
    unwrap_key,
    wrap_key,
)
from vault.fsio import create_private, replace_private
from vault.keys.errors import InsecureKeyFile, KeyFileError, KeyUnavailable

__all__ = ["KEY_FILE_FORMAT", "MASTER_WRAP_LABEL", "PROVIDER_MAGIC", "LocalKeyProvider"]

PROVIDER_MAGIC = b"KNKP"
PROVIDER_FORMAT_VERSION = 1
_PROVIDER_HEADER = PROVIDER_MAGIC + bytes([PROVIDER_FORMAT_VERSION])

MASTER_WRAP_LABEL = b"kinko-v1 master-wrap"
KEY_FILE_FORMAT = "kinko-master-key/v1"


def _check_key_id(key_id: str) -> bytes:
    message = "key id must be 1..255 printable ASCII characters without spaces"
    try:
        raw = key_id.encode("ascii")
    except UnicodeEncodeError:
        raise KeyFileError(message) from None
    if not 0 < len(raw) <= 255 or not all(0x21 <= b <= 0x7E for b in raw):
        raise KeyFileError(message)
    return raw


def _split_provider_wrapped(wrapped: bytes) -> tuple[str, bytes, bytes]:
    """Return ``(key_id, header, inner)`` of a provider-wrapped key, or raise KeyUnavailable."""
    start = len(_PROVIDER_HEADER)
    if len(wrapped) < start + 1 or wrapped[:start] != _PROVIDER_HEADER:
        raise KeyUnavailable("wrapped key is malformed or of an unsupported version")
    id_len = wrapped[start]
    header_len = start + 1 + id_len
    if id_len == 0 or len(wrapped) != header_len + WRAPPED_KEY_SIZE:
        raise KeyUnavailable("wrapped key is malformed or of an unsupported version")
    try:
        key_id = wrapped[start + 1 : header_len].decode("ascii")
        _check_key_id(key_id)
    except (UnicodeDecodeError, KeyFileError):
        raise KeyUnavailable("wrapped key is malformed or of an unsupported version") from None
    return key_id, wrapped[:header_len], wrapped[header_len:]


class LocalKeyProvider:
    """Master keys kept in a local JSON file, readable by its owner only.

    This provider is meant for single-host deployments and development.  The file holds
    raw key material, so its protection is exactly the file system's: the constructor path
    refuses files that group or other users may access.
    """

    def __init__(self, path: Path, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise KeyFileError("current key id is not among the keys")
        self._path = path
        self._keys = dict(keys)
        self._current = current
        # Identity of the file version last loaded; a rotation by ``kinko keys rotate``
        # replaces the file, and a running server notices the change (see _refresh).
        self._file_id: tuple[int, int, int] | None = None
        self._reload_lock = Lock()

    @property
    def name(self) -> str:
        return "local"

    @property
    def path(self) -> Path:
        return self._path

    def current_key_id(self) -> str:
        return self._current

    @staticmethod
    def _aad(header: bytes, context: Mapping[str, str]) -> bytes:
        # The provider header (which names the key id) is authenticated as well, so a
        # wrapped key cannot be relabelled as belonging to another master key version.
        return header + canonical_context(MASTER_WRAP_LABEL, context)

    def wrap(self, key: bytes, context: Mapping[str, str]) -> bytes:
        # A rotation in another process may have made a newer key current: new wraps must
        # use it, or they would name a key version that the rotation is about to drop.
        self._refresh()
        current = self._current
        raw_id = _check_key_id(current)
        header = _PROVIDER_HEADER + bytes([len(raw_id)]) + raw_id
        return header + wrap_key(self._keys[current], key, self._aad(header, context))

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        key_id, header, inner = _split_provider_wrapped(wrapped)
        kek = self._keys.get(key_id)
        if kek is None:
            # Re-wrapped by a rotation running beside us: its new key is in the file.
            self._refresh()
            kek = self._keys.get(key_id)
        if kek is None:
            raise KeyUnavailable(f"master key {key_id!r} is not in {self._path}")
        try:
            return unwrap_key(kek, inner, self._aad(header, context))
        except UnwrapError as exc:
            raise KeyUnavailable(str(exc)) from None

    def key_ids(self) -> list[str]:
        """The ids of the key versions this provider holds (in memory), current included."""
        return list(self._keys)

    # -- rotation -------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Re-read the key file if it was replaced since we loaded it.

        Keys already in memory are kept (a case wrapped by a key that a rotation has since
        dropped from the file still opens here until restart); new keys are added and the
        file's ``current`` is adopted.  A file that cannot be read leaves the state alone.
        """
        try:
            st = os.stat(self._path)
        except OSError:
            return
        ident = (st.st_ino, st.st_mtime_ns, st.st_size)
        if ident == self._file_id:
            return
        with self._reload_lock:
            if ident == self._file_id:
                return
            try:
                fresh = type(self)._open(self._path)
            except (OSError, KeyFileError):
                return
            merged = dict(self._keys)
            merged.update(fresh._keys)
            self._keys = merged
            self._current = fresh._current
            self._file_id = fresh._file_id

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        # Serializes rotations of one key file (two operators, or rotate beside prune).
        lock_path = self._path.with_name(f".{self._path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_doc(self) -> dict[str, Any]:
        fresh = type(self)._open(self._path)  # validates format and permissions
        doc = json.loads(self._path.read_bytes())
        assert isinstance(doc, dict)
        self._keys.update(fresh._keys)
        self._current = fresh._current
        return doc

    def _write_doc(self, doc: Mapping[str, Any]) -> None:
        data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
        _parse_key_file(data, self._path)  # never publish a file we could not read back
        # Replacing is the point here (unlike first creation); the file lock serializes writers.
        replace_private(self._path, data)
        st = os.stat(self._path)
        self._file_id = (st.st_ino, st.st_mtime_ns, st.st_size)

    def rotate(self) -> str:
        """Add a fresh master key version to the file and make it current; return its id.

        Older versions stay in the file, so everything they wrapped still unwraps; use
        :meth:`retain` once nothing needs them any more.  The file is replaced atomically
        through :func:`vault.fsio.replace_private` (temp file with mode 0600, fsync, rename,
        directory fsync).
        """
        with self._file_lock():
            doc = self._read_doc()
            new_id = f"mk-{secrets.token_hex(8)}"
            while new_id in self._keys:
                new_id = f"mk-{secrets.token_hex(8)}"
            raw = os.urandom(KEY_SIZE)
            entries = list(doc["keys"])
            entries.append(
                {
                    "id": new_id,
                    "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "key": base64.b64encode(raw).decode("ascii"),
                }
            )
            self._write_doc({**doc, "current": new_id, "keys": entries})
            self._keys[new_id] = raw
            self._current = new_id
            return new_id

    def retain(self, keep: Collection[str]) -> list[str]:
        """Drop from the file every key version not in ``keep`` (current is always kept).

        Returns the dropped ids.  The dropped keys stay in this object's memory (as they do
        in a running server's) until it is discarded.
        """
        with self._file_lock():
            doc = self._read_doc()
            wanted = set(keep) | {self._current}
            entries = [e for e in doc["keys"] if e["id"] in wanted]
            dropped = [e["id"] for e in doc["keys"] if e["id"] not in wanted]
            if dropped:
                self._write_doc({**doc, "keys": entries})
            return dropped

    def key_ids_of(self, wrapped: bytes) -> str:
        return _split_provider_wrapped(wrapped)[0]

    @classmethod
    def open_or_create(cls, path: Path) -> LocalKeyProvider:
        """Open the key file at ``path``, creating it with one fresh key if it is absent."""
        path = Path(path)
        try:
            return cls._open(path)
        except FileNotFoundError:
            pass
        cls._create(path)
        # Re-open through the same validating path; if another process created the file
        # first, this loads its key instead of ours, which is what both must agree on.
        return cls._open(path)

    @classmethod
    def _open(cls, path: Path) -> LocalKeyProvider:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            # fstat on the open descriptor checks the file we actually read, not whatever
            # the path points to a moment later.
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise KeyFileError(f"{path} is not a regular file")
            if st.st_mode & 0o077:
                raise InsecureKeyFile(
                    f"refusing to use master key file {path}: mode "
                    f"{stat.S_IMODE(st.st_mode):04o} lets group/other users access it; "
                    f"run `chmod 600 {path}` after checking who may have read it"
                )
            data = f.read()
        keys, current = _parse_key_file(data, path)
        provider = cls(path, keys, current)
        provider._file_id = (st.st_ino, st.st_mtime_ns, st.st_size)
        return provider

    @staticmethod
    def _create(path: Path) -> None:
        key_id = f"mk-{secrets.token_hex(8)}"
        doc = {
            "format": KEY_FILE_FORMAT,
            "current": key_id,
            "keys": [
                {
                    "id": key_id,
                    "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "key": base64.b64encode(os.urandom(KEY_SIZE)).decode("ascii"),
                }
            ],
        }
        data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # create_private never replaces an existing file: if another process created the key
        # file a moment earlier (and may already have wrapped keys with it), its file stays
        # and the caller re-opens it, so two processes never end up with two different keys.
        create_private(path, data)


def _parse_key_file(data: bytes, path: Path) -> tuple[dict[str, bytes], str]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError(f"{path} is not valid JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != KEY_FILE_FORMAT:
        raise KeyFileError(f"{path} is not a {KEY_FILE_FORMAT} key file")
    entries = doc.get("keys")
    current = doc.get("current")
    if not isinstance(entries, list) or not entries or not isinstance(current, str):
        raise KeyFileError(f"{path} must have a non-empty 'keys' list and a 'current' id")
    keys: dict[str, bytes] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise KeyFileError(f"{path}: every key entry must be an object")
        key_id, created_at, encoded = entry.get("id"), entry.get("created_at"), entry.get("key")
        if not (
            isinstance(key_id, str) and isinstance(created_at, str) and isinstance(encoded, str)
        ):
            raise KeyFileError(f"{path}: key entries need string 'id', 'created_at' and 'key'")
        _check_key_id(key_id)
        if key_id in keys:
            raise KeyFileError(f"{path}: duplicate key id {key_id!r}")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise KeyFileError(f"{path}: key {key_id!r} is not valid base64") from exc
        if len(raw) != KEY_SIZE:
            raise KeyFileError(f"{path}: key {key_id!r} must be {KEY_SIZE} bytes")
        keys[key_id] = raw
    if current not in keys:
        raise KeyFileError(f"{path}: current key id {current!r} is not among the keys")
    return keys, current
