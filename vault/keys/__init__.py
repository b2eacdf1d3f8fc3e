"""Key handling: master key providers, case keys, and key administration, in one place.

Where a key is unwrapped: a case key is wrapped by the master key provider
(:class:`KeyProvider`: :class:`LocalKeyProvider` for a key file, :class:`AwsKmsKeyProvider` for
AWS KMS) and unwrapped on demand by the :class:`Keyring`, which also seals the catalog's small
fields under it.  ``vault.keys.admin`` (rotation, key status, crypto-shredding) is what
``kinko keys …`` and ``kinko case shred`` run; it is not imported here because it needs the
assembled vault (``vault.core``), which itself imports this package.  The byte-level
primitives (AES-GCM wrapping, sealing, the context encoding) are :mod:`vault.crypto`, which
imports nothing from here.

Exceptions (all in :mod:`vault.keys.errors`)::

    KeyHandlingError
    ├── KeyUnavailable              a wrapped key does not unwrap: wrong context, tampered,
    │                               unknown key version, refused or failed by KMS
    ├── KeyProviderUnavailable      the configured provider cannot be used (KMS key missing or
    │   │                           disabled, no endpoint, bad credentials)
    │   └── KeyFileError            the local master key file is malformed or unusable
    │       └── InsecureKeyFile     ... or group/other users may read it
    └── KeyAdminError               rotation found a broken invariant; also a KinkoError (500)

``ValueError`` is kept for programming errors (a key of the wrong length, a context using the
reserved ``"kinko"`` entry), as it is in :mod:`vault.crypto`.
"""

from vault.keys.errors import (
    InsecureKeyFile,
    KeyAdminError,
    KeyFileError,
    KeyHandlingError,
    KeyProviderUnavailable,
    KeyUnavailable,
)
from vault.keys.keyring import SHREDDED_KEY, Keyring, is_shredded
from vault.keys.kms import AwsKmsKeyProvider
from vault.keys.local import LocalKeyProvider
from vault.keys.provider import KeyProvider

__all__ = [
    "SHREDDED_KEY",
    "AwsKmsKeyProvider",
    "InsecureKeyFile",
    "KeyAdminError",
    "KeyFileError",
    "KeyHandlingError",
    "KeyProvider",
    "KeyProviderUnavailable",
    "KeyUnavailable",
    "Keyring",
    "LocalKeyProvider",
    "is_shredded",
]
