"""Blob storage: where Kinko keeps ciphertext, addressed by random names.

Callers depend on the :class:`BlobStore` protocol only; :class:`LocalBlobStore` is the
file-system backend, and other backends (S3) implement the same protocol.
"""

from .base import (
    BlobEntry,
    BlobExists,
    BlobNotFound,
    BlobReader,
    BlobStore,
    BlobWriter,
    StorageError,
    StorageUnavailable,
    is_valid_blob_name,
    new_blob_name,
)
from .local import LocalBlobStore

__all__ = [
    "BlobEntry",
    "BlobExists",
    "BlobNotFound",
    "BlobReader",
    "BlobStore",
    "BlobWriter",
    "LocalBlobStore",
    "StorageError",
    "StorageUnavailable",
    "is_valid_blob_name",
    "new_blob_name",
]
