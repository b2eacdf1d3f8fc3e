"""Cryptographic primitives for Kinko: blob streams, key wrapping and sealed fields.

The on-disk formats these functions produce are specified in ``docs/format.md``.  This package
is pure: master keys, key providers and case keys are :mod:`vault.keys`, which uses it, never
the other way round.
"""

from vault.crypto.stream import (
    SEGMENT_SIZE,
    TAG_SIZE,
    IntegrityError,
    StreamDecryptor,
    StreamEncryptor,
    ciphertext_size,
    decrypt_stream,
    encrypt_stream,
    new_data_key,
)
from vault.crypto.wrap import (
    UnwrapError,
    canonical_context,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
)

__all__ = [
    "SEGMENT_SIZE",
    "TAG_SIZE",
    "IntegrityError",
    "StreamDecryptor",
    "StreamEncryptor",
    "UnwrapError",
    "canonical_context",
    "ciphertext_size",
    "decrypt_stream",
    "encrypt_stream",
    "new_data_key",
    "open_sealed",
    "seal",
    "unwrap_key",
    "wrap_key",
]
