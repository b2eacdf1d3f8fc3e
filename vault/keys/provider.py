"""The :class:`KeyProvider` protocol: what every source of master keys must do.

Implementations are :class:`~vault.keys.local.LocalKeyProvider` (a key file) and
:class:`~vault.keys.kms.AwsKmsKeyProvider` (AWS KMS).  One suite,
``tests/unit/test_key_provider_conformance.py``, runs on every implementation: a new provider
is added there before it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = ["KeyProvider"]


@runtime_checkable
class KeyProvider(Protocol):
    """A source of master keys that wraps and unwraps case keys for a given context.

    Errors are those of :mod:`vault.keys.errors`: every refusal to unwrap is
    :class:`~vault.keys.errors.KeyUnavailable`, whatever its cause.
    """

    @property
    def name(self) -> str:
        """Short provider name, for example ``"local"``."""
        ...

    def current_key_id(self) -> str:
        """The id of the master key that :meth:`wrap` uses now."""
        ...

    def wrap(self, key: bytes, context: Mapping[str, str]) -> bytes:
        """Wrap ``key`` under the current master key; the output names that key's id."""
        ...

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        """Unwrap; raise :class:`~vault.keys.errors.KeyUnavailable` unless ``context`` matches."""
        ...

    def key_ids_of(self, wrapped: bytes) -> str:
        """Return the id of the master key that produced ``wrapped``.

        Raises :class:`~vault.keys.errors.KeyUnavailable` if ``wrapped`` is not in this
        provider's format.
        """
        ...
