"""Cryptographic primitives for Kinko: blob streams, key wrapping and sealed fields.

The on-disk formats these functions produce are specified in ``docs/format.md``.
"""

from vault.crypto.keys import (
    InsecureKeyFile,
    KeyFileError,
    KeyProvider,
    KeyUnavailable,
    LocalKeyProvider,
    canonical_context,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
)
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

__all__ = [
    "SEGMENT_SIZE",
    "TAG_SIZE",
    "InsecureKeyFile",
    "IntegrityError",
    "KeyFileError",
    "KeyProvider",
    "KeyUnavailable",
    "LocalKeyProvider",
    "StreamDecryptor",
    "StreamEncryptor",
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
