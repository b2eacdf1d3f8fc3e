"""The key-provider conformance suite: what every ``KeyProvider`` promises, run on each of them.

Each provider is set up by a small kit (below) that knows how to build it, how to rotate it,
how to obtain a key it does not hold and how to make it unusable; the tests themselves speak
only the :class:`~vault.keys.KeyProvider` protocol and the errors of :mod:`vault.keys`.  The
AWS KMS provider runs against moto's KMS as a real HTTP server on loopback (see
``tests/kms_support.py``), never against an account.  A new provider is added to ``KITS``
before it is used anywhere.

What is particular to one provider (the local key file's permissions, the KMS context entry)
stays in ``test_local_key_provider.py`` and ``test_kms_provider.py``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from kms_support import (  # noqa: F401  (the fixture is found by pytest through the import)
    _kms_endpoint,
    kms_client,
    new_kms_key,
)

import vault.keys
import vault.keys.errors
from vault.crypto import UnwrapError
from vault.keys import (
    AwsKmsKeyProvider,
    KeyHandlingError,
    KeyProvider,
    KeyProviderUnavailable,
    KeyUnavailable,
    LocalKeyProvider,
)
from vault.keys.kms import split_kms_wrapped

CTX = {"case_id": "case-a"}


@dataclass
class Kit:
    """One provider under test, with the provider-specific steps the protocol leaves open."""

    provider: KeyProvider
    # Make a new master key current; returns the provider to use from then on (the local
    # provider rotates in place, a KMS rotation is a provider on another KMS key).
    rotate: Callable[[], KeyProvider]
    # A second process opening the same configuration after a rotation (a restarted server).
    reopen: Callable[[KeyProvider], KeyProvider]
    # A wrap of ``key`` for ``CTX`` by a master key this provider cannot use.
    wrap_unknown: Callable[[bytes], bytes]
    # Opening the provider in a state it must refuse at start-up.
    open_unusable: Callable[[], object]


def _local_kit(tmp_path: Path) -> Kit:
    path = tmp_path / "master.key"
    provider = LocalKeyProvider.open_or_create(path)

    def rotate() -> KeyProvider:
        provider.rotate()
        return provider

    def wrap_unknown(key: bytes) -> bytes:
        # Another data directory's key file: same format, a master key this one never had.
        return LocalKeyProvider.open_or_create(tmp_path / "other.key").wrap(key, CTX)

    def open_unusable() -> object:
        loose = tmp_path / "loose.key"
        LocalKeyProvider.open_or_create(loose)
        loose.chmod(0o644)
        return LocalKeyProvider.open_or_create(loose)

    return Kit(
        provider=provider,
        rotate=rotate,
        reopen=lambda _p: LocalKeyProvider.open_or_create(path),
        wrap_unknown=wrap_unknown,
        open_unusable=open_unusable,
    )


def _kms_kit() -> Kit:
    client = kms_client()
    provider = AwsKmsKeyProvider.connect(new_kms_key(client))

    def wrap_unknown(key: bytes) -> bytes:
        # A genuine wrap whose header names a KMS key that does not exist.  (A disabled key or
        # one pending deletion would be the realistic case, but moto still decrypts with
        # those, so a test built on them would claim what moto cannot show.)
        _key_id, blob = split_kms_wrapped(provider.wrap(key, CTX))
        arn = provider.current_key_id().rsplit("/", 1)[0] + "/" + str(uuid.uuid4())
        return b"KNKM\x01" + struct.pack(">H", len(arn)) + arn.encode() + blob

    return Kit(
        provider=provider,
        rotate=lambda: provider.rewrap_to(new_kms_key(client)),
        reopen=lambda p: AwsKmsKeyProvider.connect(p.current_key_id()),
        wrap_unknown=wrap_unknown,
        open_unusable=lambda: AwsKmsKeyProvider.connect("11111111-2222-3333-4444-555555555555"),
    )


KITS = ["local", "aws-kms"]


@pytest.fixture(params=KITS)
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Kit:
    if request.param == "local":
        return _local_kit(tmp_path)
    # moto's server is started only for the KMS cases (once per module), not for the local ones.
    request.getfixturevalue("kms_endpoint")
    return _kms_kit()


def _refused(provider: KeyProvider, wrapped: bytes, context: dict[str, str]) -> KeyUnavailable:
    with pytest.raises(KeyUnavailable) as info:
        provider.unwrap(wrapped, context)
    # Errors of the layers underneath (the AES-GCM primitive, botocore) must not escape as
    # themselves: callers catch the package's own error and nothing else.
    assert not isinstance(info.value, UnwrapError)
    assert type(info.value).__module__ == "vault.keys.errors"
    return info.value


# --- the protocol -------------------------------------------------------------------------------


def test_provider_satisfies_the_protocol(kit: Kit) -> None:
    assert isinstance(kit.provider, KeyProvider)
    assert kit.provider.name
    assert kit.provider.current_key_id()


def test_wrap_unwrap_round_trip(kit: Kit) -> None:
    key = os.urandom(32)
    wrapped = kit.provider.wrap(key, CTX)
    assert key not in wrapped
    assert kit.provider.key_ids_of(wrapped) == kit.provider.current_key_id()
    assert kit.provider.unwrap(wrapped, CTX) == key
    # Wrapping is randomized: the same key wrapped twice gives two different values, both good.
    again = kit.provider.wrap(key, CTX)
    assert again != wrapped
    assert kit.provider.unwrap(again, CTX) == key


def test_context_order_does_not_matter(kit: Kit) -> None:
    key = os.urandom(32)
    wrapped = kit.provider.wrap(key, {"case_id": "c", "tenant": "t"})
    assert kit.provider.unwrap(wrapped, {"tenant": "t", "case_id": "c"}) == key


@pytest.mark.parametrize(
    "context",
    [{"case_id": "case-b"}, {"case_id": "Case-a"}, {}, {"case_id": "case-a", "extra": ""}],
    ids=["other case", "differs in case", "empty", "extra entry"],
)
def test_wrapped_key_is_bound_to_its_context(kit: Kit, context: dict[str, str]) -> None:
    wrapped = kit.provider.wrap(os.urandom(32), CTX)
    _refused(kit.provider, wrapped, context)


def test_tampered_wrapped_key_is_refused(kit: Kit) -> None:
    wrapped = kit.provider.wrap(os.urandom(32), CTX)
    # The magic, the version byte, the key id's first byte, the middle and the last byte (the
    # authentication tag): each one flipped bit must be caught, by the format check or the tag.
    for pos in (0, 4, 7, len(wrapped) // 2, len(wrapped) - 1):
        bad = bytearray(wrapped)
        bad[pos] ^= 0x01
        _refused(kit.provider, bytes(bad), CTX)
    for bad_len in (wrapped[:-1], wrapped + b"\x00", wrapped[:5]):
        _refused(kit.provider, bad_len, CTX)


@pytest.mark.parametrize(
    "garbage",
    [b"", b"KNKP\x01", b"KNKM\x01", b"XXXX" + bytes(80)],
    ids=["empty", "local header only", "KMS header only", "unknown magic"],
)
def test_garbage_is_refused_by_unwrap_and_key_ids_of(kit: Kit, garbage: bytes) -> None:
    _refused(kit.provider, garbage, CTX)
    with pytest.raises(KeyUnavailable):
        kit.provider.key_ids_of(garbage)


def test_unknown_key_version_is_refused(kit: Kit) -> None:
    _refused(kit.provider, kit.wrap_unknown(os.urandom(32)), CTX)


def test_rotation_keeps_old_wrapped_keys_unwrappable(kit: Kit) -> None:
    key = os.urandom(32)
    old_id = kit.provider.current_key_id()
    w_old = kit.provider.wrap(key, CTX)

    rotated = kit.rotate()
    new_id = rotated.current_key_id()
    assert new_id != old_id
    w_new = rotated.wrap(key, CTX)
    assert rotated.key_ids_of(w_new) == new_id
    assert rotated.key_ids_of(w_old) == old_id
    assert rotated.unwrap(w_old, CTX) == key
    assert rotated.unwrap(w_new, CTX) == key
    # A process that opens the configuration afresh (a restart) reads both as well.
    restarted = kit.reopen(rotated)
    assert restarted.current_key_id() == new_id
    assert restarted.unwrap(w_old, CTX) == key
    assert restarted.unwrap(w_new, CTX) == key
    # Rotation does not loosen the context binding of either wrap.
    _refused(rotated, w_old, {"case_id": "case-b"})
    _refused(rotated, w_new, {"case_id": "case-b"})


def test_unusable_provider_is_refused_at_start(kit: Kit) -> None:
    with pytest.raises(KeyProviderUnavailable):
        kit.open_unusable()


# --- the one exception root ---------------------------------------------------------------------


def _key_modules() -> list[str]:
    names = [vault.keys.__name__]
    names += [m.name for m in pkgutil.iter_modules(vault.keys.__path__, vault.keys.__name__ + ".")]
    return names


def test_every_exception_of_the_package_derives_from_the_root() -> None:
    found: set[type[BaseException]] = set()
    for name in _key_modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("vault.keys"):
                found.add(obj)
    # The walk must actually see the package's errors, or the check below proves nothing.
    assert {KeyUnavailable, KeyProviderUnavailable} <= found
    for exc in found:
        assert issubclass(exc, KeyHandlingError), exc


def test_every_error_is_exported_from_the_package() -> None:
    names = vault.keys.errors.__all__
    assert "KeyHandlingError" in names
    for name in names:
        exc = getattr(vault.keys.errors, name)
        assert issubclass(exc, KeyHandlingError), name
        assert getattr(vault.keys, name) is exc, name
        assert name in vault.keys.__all__, name
