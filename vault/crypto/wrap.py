"""Key wrapping, sealed small fields and the canonical context encoding: pure primitives.

Byte formats are specified in ``docs/format.md`` ("Wrapped key", "Sealed field" and "Context
encoding"); that document is the authority and this module must stay in step with it.  Master
keys and the providers that hold them live in :mod:`vault.keys`, which builds on these
functions; nothing here knows where a key comes from.

Every AES-GCM call here authenticates a fixed 5-byte header (4-byte magic plus a format
version byte) in front of the caller's associated data.  The magics differ per use
(``KNKW`` wrapped key, ``KNKF`` sealed field), so a ciphertext produced for one use can
never be accepted by another even when the same key is involved, and the version byte
cannot be altered to make a decoder misinterpret the rest.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto.stream import IntegrityError

__all__ = [
    "KEY_SIZE",
    "WRAPPED_KEY_SIZE",
    "UnwrapError",
    "canonical_context",
    "open_sealed",
    "seal",
    "unwrap_key",
    "wrap_key",
]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16

WRAP_MAGIC = b"KNKW"
SEAL_MAGIC = b"KNKF"
FORMAT_VERSION = 1

_WRAP_HEADER = WRAP_MAGIC + bytes([FORMAT_VERSION])
_SEAL_HEADER = SEAL_MAGIC + bytes([FORMAT_VERSION])
WRAPPED_KEY_SIZE = len(_WRAP_HEADER) + NONCE_SIZE + KEY_SIZE + TAG_SIZE  # 65


class UnwrapError(Exception):
    """A wrapped key does not open: wrong key or associated data, damaged, or not a wrapped key.

    One type covers every cause, as ``InvalidToken`` does in Fernet.  :mod:`vault.keys`, the
    only caller outside tests, re-raises it as its own ``KeyUnavailable``; a separate type here
    keeps this package free of any import from there.
    """


def _check_len(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise ValueError(f"{name} must be exactly {size} bytes")


def wrap_key(kek: bytes, key: bytes, aad: bytes, *, nonce: bytes | None = None) -> bytes:
    """Encrypt a 32-byte ``key`` under the key-encryption key ``kek``, bound to ``aad``.

    Output: ``b"KNKW" | 0x01 | nonce[12] | ciphertext[32] | tag[16]`` (65 bytes).  ``nonce``
    is injectable for known-answer tests only; production callers must leave it unset.
    """
    _check_len("kek", kek, KEY_SIZE)
    _check_len("key", key, KEY_SIZE)
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    _check_len("nonce", nonce, NONCE_SIZE)
    ct = AESGCM(kek).encrypt(nonce, key, _WRAP_HEADER + aad)
    return _WRAP_HEADER + nonce + ct


def unwrap_key(kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """Reverse :func:`wrap_key`; raise :class:`UnwrapError` on any mismatch or damage."""
    _check_len("kek", kek, KEY_SIZE)
    if len(wrapped) != WRAPPED_KEY_SIZE or wrapped[: len(_WRAP_HEADER)] != _WRAP_HEADER:
        raise UnwrapError("wrapped key is malformed or of an unsupported version")
    start = len(_WRAP_HEADER)
    nonce = wrapped[start : start + NONCE_SIZE]
    try:
        return AESGCM(kek).decrypt(nonce, wrapped[start + NONCE_SIZE :], _WRAP_HEADER + aad)
    except InvalidTag:
        raise UnwrapError(
            "wrapped key could not be unwrapped (wrong key or context, or tampered)"
        ) from None


def seal(key: bytes, plaintext: bytes, aad: bytes, *, nonce: bytes | None = None) -> bytes:
    """Encrypt a small field (a title, a digest) with AES-256-GCM and a random nonce.

    Output: ``b"KNKF" | 0x01 | nonce[12] | ciphertext[len(plaintext)] | tag[16]``.  Random
    96-bit nonces are safe for up to about 2**32 seals under one key, far beyond the number
    of fields a case key will ever protect.  ``nonce`` is injectable for tests only.
    """
    _check_len("key", key, KEY_SIZE)
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    _check_len("nonce", nonce, NONCE_SIZE)
    return _SEAL_HEADER + nonce + AESGCM(key).encrypt(nonce, plaintext, _SEAL_HEADER + aad)


class SealOpener:
    """:func:`open_sealed` for many fields under one key (a listing's titles, say).

    Setting up the cipher cost as much as opening a short field; a listing of thousands of
    titles under one case key sets it up once.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        _check_len("key", key, KEY_SIZE)
        self._aead = AESGCM(key)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        start = len(_SEAL_HEADER)
        if len(sealed) < start + NONCE_SIZE + TAG_SIZE or sealed[:start] != _SEAL_HEADER:
            raise IntegrityError
        try:
            return self._aead.decrypt(
                sealed[start : start + NONCE_SIZE],
                sealed[start + NONCE_SIZE :],
                _SEAL_HEADER + aad,
            )
        except InvalidTag:
            raise IntegrityError from None


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Reverse :func:`seal`; raise :class:`IntegrityError` on any mismatch or damage."""
    return SealOpener(key).open(sealed, aad)


def canonical_context(label: bytes, context: Mapping[str, str]) -> bytes:
    """Encode a domain label and a string mapping as unambiguous associated data.

    Layout: ``u16 len(label) | label | u32 count`` followed, for each entry in ascending
    order of the key's UTF-8 bytes, by ``u32 len(k) | k | u32 len(v) | v`` (UTF-8).  Length
    prefixes make the encoding injective, so no two different contexts can produce the same
    bytes (as they could with naive ``"k=v;"`` joining), and sorting makes it independent
    of the mapping's iteration order.
    """
    if not 0 < len(label) <= 0xFFFF:
        raise ValueError("label must be 1..65535 bytes")
    items = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in context.items())
    parts = [struct.pack(">H", len(label)), label, struct.pack(">I", len(items))]
    for k, v in items:
        parts += [struct.pack(">I", len(k)), k, struct.pack(">I", len(v)), v]
    return b"".join(parts)
