"""Segmented, key-committing AES-256-GCM stream encryption for document blobs.

The byte format produced here is specified in ``docs/format.md`` ("Blob format"); that
document, not this module, is the authority.  In short, a blob is an 80-byte header
followed by one or more segments, each of which is an AES-256-GCM ciphertext of up to
``segment_size`` plaintext bytes plus a 16-byte tag::

    header  = magic "KNKS" | 0x01 | u32 segment_size | salt[32] | nonce_prefix[7] | commitment[32]
    nonce_i = nonce_prefix[7] | u32 i | last_flag (0x00 or 0x01)
    ad      = header | u16 len(doc_id) | doc_id (UTF-8) | u64 version

The segment key and the commitment are both derived from the data key (DEK) with
HKDF-SHA256 over the per-blob random salt, using distinct ``info`` labels.  Because AES-GCM
on its own is not key-committing, the decryptor recomputes the commitment from the DEK it
was given and rejects the header before touching any segment if it does not match.

Every failure while decrypting, whatever its cause, is reported as the single
:class:`IntegrityError` with a generic message, so that callers cannot accidentally build a
padding-oracle-style distinguisher out of different error types or texts.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_SIZE",
    "MIN_SEGMENT_SIZE",
    "SEGMENT_SIZE",
    "TAG_SIZE",
    "IntegrityError",
    "StreamDecryptor",
    "StreamEncryptor",
    "ciphertext_size",
    "decrypt_stream",
    "encrypt_stream",
    "new_data_key",
]

SEGMENT_SIZE: int = 65536
"""Default number of plaintext bytes per segment."""

MIN_SEGMENT_SIZE = 65536
# The upper bound exists so that a decryptor never has to buffer an attacker-chosen amount
# of memory: the segment size is read from the header before anything is authenticated,
# and a bogus 4 GiB value must be rejected rather than honoured.
MAX_SEGMENT_SIZE = 16 * 1024 * 1024

TAG_SIZE = 16
KEY_SIZE = 32
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
COMMITMENT_SIZE = 32

MAGIC = b"KNKS"
FORMAT_VERSION = 1

# The segment index is a 32-bit field in the nonce.  The format caps the count at 2**32 - 1
# segments (indices 0 .. 2**32 - 2) so that the all-ones index is never used; this keeps
# one spare value for a future format and costs nothing in practice (about 256 TiB at the
# minimum segment size).
MAX_SEGMENTS = 2**32 - 1

_HEADER_STRUCT = struct.Struct(f">4sBI{SALT_SIZE}s{NONCE_PREFIX_SIZE}s{COMMITMENT_SIZE}s")
HEADER_SIZE = _HEADER_STRUCT.size  # 4 + 1 + 4 + 32 + 7 + 32 = 80

# HKDF "info" labels.  Two different labels over the same DEK and salt give two
# independent outputs, so knowing the commitment (which is public, it sits in the header)
# reveals nothing about the segment key.
_INFO_SEGMENT_KEY = b"kinko-v1 stream segment-key"
_INFO_COMMITMENT = b"kinko-v1 stream key-commitment"

_LAST = b"\x01"
_NOT_LAST = b"\x00"


class IntegrityError(Exception):
    """The ciphertext is not authentic: tampered, truncated, reordered, or the wrong key/context.

    The message is deliberately generic; callers must treat every instance the same way,
    namely by discarding any output and refusing to use the data.
    """

    def __init__(self, message: str = "ciphertext failed integrity verification") -> None:
        super().__init__(message)


def new_data_key() -> bytes:
    """Return a fresh random 256-bit data encryption key (DEK)."""
    return os.urandom(KEY_SIZE)


def _check_key(dek: bytes) -> None:
    if not isinstance(dek, bytes | bytearray) or len(dek) != KEY_SIZE:
        raise ValueError(f"data key must be exactly {KEY_SIZE} bytes")


def _check_segment_size(segment_size: int) -> None:
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(
            f"segment_size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes"
        )


def _context_suffix(doc_id: str, version: int) -> bytes:
    """Encode the document identity that every segment's associated data is bound to.

    The doc id is length-prefixed so that the (doc_id, version) pair has exactly one
    encoding; without the prefix, different ids and versions could produce equal bytes.
    """
    doc = doc_id.encode("utf-8")
    if len(doc) > 0xFFFF:
        raise ValueError("doc_id must be at most 65535 bytes when encoded as UTF-8")
    if not 0 <= version < 2**64:
        raise ValueError("version must fit in an unsigned 64-bit integer")
    return struct.pack(">H", len(doc)) + doc + struct.pack(">Q", version)


def _derive(dek: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(dek)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (_LAST if last else _NOT_LAST)


def ciphertext_size(plaintext_size: int, segment_size: int = SEGMENT_SIZE) -> int:
    """Return the exact blob size for a plaintext of ``plaintext_size`` bytes.

    Storage code uses this to pre-check quotas and to verify a stored object's length
    without decrypting it.
    """
    _check_segment_size(segment_size)
    if plaintext_size < 0:
        raise ValueError("plaintext_size must not be negative")
    # An empty plaintext still produces one (empty) last segment, and a plaintext that is
    # an exact multiple of the segment size ends with a full last segment rather than an
    # extra empty one, so the segment count is ceil(n / s) with a minimum of one.
    segments = max(1, -(-plaintext_size // segment_size))
    if segments > MAX_SEGMENTS:
        raise ValueError("plaintext too large for the stream format")
    return HEADER_SIZE + plaintext_size + segments * TAG_SIZE


class StreamEncryptor:
    """Incrementally encrypt one blob.

    Call :meth:`update` any number of times and :meth:`finalize` exactly once; concatenating
    all returned byte strings yields the blob.  ``salt`` and ``nonce_prefix`` exist only so
    that known-answer tests can be deterministic: production code must leave them unset,
    because reusing them with the same DEK would reuse GCM nonces.
    """

    def __init__(
        self,
        dek: bytes,
        doc_id: str,
        version: int,
        *,
        segment_size: int = SEGMENT_SIZE,
        salt: bytes | None = None,
        nonce_prefix: bytes | None = None,
    ) -> None:
        _check_key(dek)
        _check_segment_size(segment_size)
        if salt is None:
            salt = os.urandom(SALT_SIZE)
        if nonce_prefix is None:
            nonce_prefix = os.urandom(NONCE_PREFIX_SIZE)
        if len(salt) != SALT_SIZE:
            raise ValueError(f"salt must be {SALT_SIZE} bytes")
        if len(nonce_prefix) != NONCE_PREFIX_SIZE:
            raise ValueError(f"nonce_prefix must be {NONCE_PREFIX_SIZE} bytes")
        dek = bytes(dek)
        salt = bytes(salt)
        self._prefix = bytes(nonce_prefix)
        self._segment_size = segment_size
        self._aead = AESGCM(_derive(dek, salt, _INFO_SEGMENT_KEY))
        commitment = _derive(dek, salt, _INFO_COMMITMENT)
        self._header = _HEADER_STRUCT.pack(
            MAGIC, FORMAT_VERSION, segment_size, salt, self._prefix, commitment
        )
        self._ad = self._header + _context_suffix(doc_id, version)
        # Plaintext that has not been encrypted yet.  It never holds more than one segment:
        # a full segment is kept back until we know whether more data follows, because only
        # then do we know whether it must carry the last-segment flag.
        self._pending = bytearray()
        self._index = 0
        self._header_sent = False
        self._finalized = False

    def _seal(self, plaintext: bytes | bytearray | memoryview, last: bool) -> bytes:
        if self._index >= MAX_SEGMENTS:
            raise ValueError("plaintext too large for the stream format")
        ct = self._aead.encrypt(_nonce(self._prefix, self._index, last), plaintext, self._ad)
        self._index += 1
        return ct

    def _start(self, out: list[bytes]) -> None:
        if not self._header_sent:
            out.append(self._header)
            self._header_sent = True

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed plaintext; return whatever ciphertext is ready (possibly ``b""``)."""
        if self._finalized:
            raise ValueError("update() called after finalize()")
        out: list[bytes] = []
        self._start(out)
        view = memoryview(data).cast("B")
        seg = self._segment_size
        pending = self._pending
        if pending:
            take = min(seg - len(pending), len(view))
            pending += view[:take]
            view = view[take:]
            if len(pending) < seg or not view:
                # Either the pending segment is not full yet, or it is full but nothing
                # follows it so far; in both cases it might still become the last segment.
                return b"".join(out)
            out.append(self._seal(pending, last=False))
            pending.clear()
        # Encrypt straight out of the caller's buffer through memoryview slices, which are
        # O(1); copying the remainder of a large input after each segment would make a
        # single 1 GiB update quadratic.  The strict ">" keeps the final full segment back.
        while len(view) > seg:
            out.append(self._seal(view[:seg], last=False))
            view = view[seg:]
        pending += view
        return b"".join(out)

    def finalize(self) -> bytes:
        """Encrypt the held-back data as the last segment and return the remaining output."""
        if self._finalized:
            raise ValueError("finalize() called twice")
        out: list[bytes] = []
        self._start(out)
        out.append(self._seal(self._pending, last=True))
        self._pending = bytearray()
        self._finalized = True
        return b"".join(out)


class StreamDecryptor:
    """Incrementally decrypt and verify one blob.

    :meth:`update` only ever returns plaintext whose GCM tag has been verified.  That is
    necessary but not sufficient for safety: a truncated blob is only detected by
    :meth:`finalize`, so the caller must not treat the output as complete (for example,
    must not commit a downloaded file) until :meth:`finalize` has returned.
    """

    def __init__(self, dek: bytes, doc_id: str, version: int) -> None:
        _check_key(dek)
        self._dek = bytes(dek)
        self._suffix = _context_suffix(doc_id, version)
        self._aead: AESGCM | None = None
        self._ad = b""
        self._prefix = b""
        self._segment_ct_size = 0
        self._segment_size = 0
        # Before the header is parsed this collects header bytes; afterwards it holds at
        # most one segment's worth of ciphertext that cannot be decrypted yet because we do
        # not know whether it is the last segment.
        self._pending = bytearray()
        self._index = 0
        self._finalized = False
        self._failed = False

    def _parse_header(self, header: bytes) -> None:
        magic, version, segment_size, salt, prefix, commitment = _HEADER_STRUCT.unpack(header)
        if magic != MAGIC or version != FORMAT_VERSION:
            raise IntegrityError
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise IntegrityError
        expected = _derive(self._dek, salt, _INFO_COMMITMENT)
        # Constant-time comparison, so that timing does not reveal how many leading bytes of
        # a forged commitment were right.
        if not hmac.compare_digest(expected, commitment):
            raise IntegrityError
        self._aead = AESGCM(_derive(self._dek, salt, _INFO_SEGMENT_KEY))
        self._ad = bytes(header) + self._suffix
        self._prefix = prefix
        self._segment_size = segment_size
        self._segment_ct_size = segment_size + TAG_SIZE

    def _open(self, ciphertext: bytes | bytearray | memoryview, last: bool) -> bytes:
        aead = self._aead
        if aead is None or self._index >= MAX_SEGMENTS:
            raise IntegrityError
        try:
            pt = aead.decrypt(_nonce(self._prefix, self._index, last), ciphertext, self._ad)
        except InvalidTag:
            raise IntegrityError from None
        self._index += 1
        return pt

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed ciphertext; return verified plaintext that is ready (possibly ``b""``)."""
        return b"".join(self.update_segments(data))

    def update_segments(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """``update``, with the verified plaintext as one piece per segment (no joining)."""
        self._check_usable()
        try:
            return self._update(memoryview(data).cast("B"))
        except BaseException:
            # A decryptor that has seen bad data stays unusable, so that a caller who
            # swallows one error cannot keep reading past it.
            self._failed = True
            raise

    def decrypt_all(self, blob: bytes | bytearray | memoryview) -> list[bytes]:
        """A whole blob, verified to its end: the plaintext as one piece per segment.

        For a small document read in one go; the pieces are sent as they are, so a
        megabyte is never copied into one string only to be written out again.
        """
        parts = self.update_segments(blob)
        tail = self.finalize()
        if tail:
            parts.append(tail)
        return parts

    def _update(self, view: memoryview) -> list[bytes]:
        pending = self._pending
        if self._aead is None:
            take = min(HEADER_SIZE - len(pending), len(view))
            pending += view[:take]
            view = view[take:]
            if len(pending) < HEADER_SIZE:
                return []
            self._parse_header(bytes(pending))
            pending.clear()
        seg_ct = self._segment_ct_size
        out: list[bytes] = []
        if pending:
            take = min(seg_ct - len(pending), len(view))
            pending += view[:take]
            view = view[take:]
            if len(pending) < seg_ct or not view:
                # A segment may be opened as non-last only once at least one byte after it
                # has arrived; otherwise a blob truncated at a segment boundary would pass.
                return []
            out.append(self._open(pending, last=False))
            pending.clear()
        while len(view) > seg_ct:
            out.append(self._open(view[:seg_ct], last=False))
            view = view[seg_ct:]
        pending += view
        return out

    def finalize(self) -> bytes:
        """Verify and return the last segment; raise :class:`IntegrityError` if it is missing."""
        self._check_usable()
        try:
            if self._aead is None or len(self._pending) < TAG_SIZE:
                raise IntegrityError
            pt = self._open(self._pending, last=True)
            # The encoder never writes an empty last segment after a non-empty one (a
            # plaintext that fills whole segments ends with a full last segment).  Rejecting
            # it keeps every plaintext's encoding unique.
            if not pt and self._index > 1:
                raise IntegrityError
        except BaseException:
            self._failed = True
            raise
        self._pending = bytearray()
        self._finalized = True
        return pt

    def _check_usable(self) -> None:
        if self._failed:
            raise IntegrityError
        if self._finalized:
            raise ValueError("decryptor already finalized")


def encrypt_stream(
    dek: bytes,
    doc_id: str,
    version: int,
    chunks: Iterable[bytes],
    *,
    segment_size: int = SEGMENT_SIZE,
    salt: bytes | None = None,
    nonce_prefix: bytes | None = None,
) -> Iterator[bytes]:
    """Encrypt an iterable of plaintext chunks, yielding non-empty ciphertext chunks."""
    enc = StreamEncryptor(
        dek, doc_id, version, segment_size=segment_size, salt=salt, nonce_prefix=nonce_prefix
    )
    for chunk in chunks:
        out = enc.update(chunk)
        if out:
            yield out
    yield enc.finalize()


def decrypt_stream(
    dek: bytes, doc_id: str, version: int, chunks: Iterable[bytes]
) -> Iterator[bytes]:
    """Decrypt an iterable of ciphertext chunks, yielding verified plaintext chunks.

    Truncation is detected only when the input is exhausted, so the plaintext must be
    considered provisional until this iterator has finished without raising
    :class:`IntegrityError`; a consumer that stops early has not verified completeness.
    """
    dec = StreamDecryptor(dek, doc_id, version)
    for chunk in chunks:
        out = dec.update(chunk)
        if out:
            yield out
    last = dec.finalize()
    if last:
        yield last
