"""The one exception tree of :mod:`vault.keys` (drawn in the package docstring).

Every error a key provider, the keyring or key administration raises on purpose derives from
:class:`KeyHandlingError`.  Failures of what lies underneath (the AES-GCM primitives'
``UnwrapError``, botocore's client errors) are re-raised as one of these, so a caller never
needs to know which provider or library is behind a refusal.
"""

from __future__ import annotations

from vault.errors import KinkoError

__all__ = [
    "InsecureKeyFile",
    "KeyAdminError",
    "KeyFileError",
    "KeyHandlingError",
    "KeyProviderUnavailable",
    "KeyUnavailable",
]


class KeyHandlingError(Exception):
    """Root of every error raised by :mod:`vault.keys`."""


class KeyUnavailable(KeyHandlingError):
    """A wrapped key cannot be unwrapped: wrong context, tampered data, or unknown key id."""


class KeyProviderUnavailable(KeyHandlingError):
    """The configured key provider cannot be used (missing key, bad credentials, no endpoint)."""


class KeyFileError(KeyProviderUnavailable):
    """The master key file is missing pieces, malformed, or otherwise unusable.

    A local provider whose file is unusable is an unusable key provider, which is why this is a
    :class:`KeyProviderUnavailable`: start-up code catches that one type for every provider.
    """


class InsecureKeyFile(KeyFileError):
    """The master key file's permissions let users other than its owner read it."""


class KeyAdminError(KeyHandlingError, KinkoError):
    """Key administration found a broken invariant (a re-wrapped key that does not round-trip).

    It is a :class:`~vault.errors.KinkoError` too, so ``kinko keys …`` reports it like every
    other refusal (message, exit status 2) and the API would map it to a 500 response.
    """

    status = 500
    code = "key_admin_error"
