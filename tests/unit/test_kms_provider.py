"""The AWS KMS key provider against moto's KMS over HTTP (no AWS account involved)."""

from __future__ import annotations

import os
import struct

import pytest
from kms_support import (  # noqa: F401  (the fixture is found by pytest through the import)
    _kms_endpoint,
    kms_client,
    new_kms_key,
)

from vault.keys import AwsKmsKeyProvider, KeyProvider, KeyProviderUnavailable, KeyUnavailable

pytestmark = pytest.mark.usefixtures("kms_endpoint")


def test_wrap_unwrap_round_trip_and_format() -> None:
    key_id = new_kms_key(kms_client())
    provider = AwsKmsKeyProvider.connect(key_id)
    assert isinstance(provider, KeyProvider)
    assert provider.name == "aws-kms"
    case_key = os.urandom(32)
    wrapped = provider.wrap(case_key, {"case_id": "c1"})
    assert wrapped[:5] == b"KNKM\x01"
    (id_len,) = struct.unpack(">H", wrapped[5:7])
    named = wrapped[7 : 7 + id_len].decode()
    assert named == provider.current_key_id() == provider.key_ids_of(wrapped)
    assert named.startswith("arn:")
    assert named.endswith(key_id)
    assert case_key not in wrapped
    assert provider.unwrap(wrapped, {"case_id": "c1"}) == case_key


def test_wrapped_key_cannot_be_replayed_for_another_case() -> None:
    provider = AwsKmsKeyProvider.connect(new_kms_key(kms_client()))
    wrapped = provider.wrap(os.urandom(32), {"case_id": "case-a"})
    for ctx in ({"case_id": "case-b"}, {}, {"case_id": "case-a", "extra": ""}):
        with pytest.raises(KeyUnavailable):
            provider.unwrap(wrapped, ctx)
    with pytest.raises(KeyUnavailable):
        provider.unwrap(wrapped[:-1] + bytes([wrapped[-1] ^ 1]), {"case_id": "case-a"})
    with pytest.raises(KeyUnavailable):
        provider.unwrap(b"KNKP\x01junk", {"case_id": "case-a"})


def test_the_fixed_context_entry_is_required() -> None:
    # A ciphertext made by someone calling KMS directly without Kinko's context entry is not
    # accepted as a Kinko case key.
    client = kms_client()
    provider = AwsKmsKeyProvider.connect(new_kms_key(client))
    raw = client.encrypt(
        KeyId=provider.current_key_id(),
        Plaintext=os.urandom(32),
        EncryptionContext={"case_id": "c1"},
    )
    arn = provider.current_key_id().encode()
    forged = b"KNKM\x01" + struct.pack(">H", len(arn)) + arn + raw["CiphertextBlob"]
    with pytest.raises(KeyUnavailable):
        provider.unwrap(forged, {"case_id": "c1"})
    with pytest.raises(ValueError, match="reserved"):
        provider.wrap(os.urandom(32), {"kinko": "x"})


def test_rewrap_to_another_key_and_old_wraps_still_open() -> None:
    client = kms_client()
    old = AwsKmsKeyProvider.connect(new_kms_key(client))
    new = old.rewrap_to(new_kms_key(client))
    assert new.current_key_id() != old.current_key_id()
    case_key = os.urandom(32)
    w_old = old.wrap(case_key, {"case_id": "c"})
    w_new = new.wrap(old.unwrap(w_old, {"case_id": "c"}), {"case_id": "c"})
    assert new.key_ids_of(w_new) == new.current_key_id()
    assert new.unwrap(w_new, {"case_id": "c"}) == case_key
    assert new.unwrap(w_old, {"case_id": "c"}) == case_key  # any enabled key decrypts


def test_missing_key_is_refused_at_connect() -> None:
    with pytest.raises(KeyProviderUnavailable, match="not usable"):
        AwsKmsKeyProvider.connect("11111111-2222-3333-4444-555555555555")


def test_disabled_key_is_refused_at_connect() -> None:
    client = kms_client()
    key_id = new_kms_key(client)
    client.disable_key(KeyId=key_id)
    with pytest.raises(KeyProviderUnavailable):
        AwsKmsKeyProvider.connect(key_id)


def test_unreachable_endpoint_is_refused_at_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(KeyProviderUnavailable):
        AwsKmsKeyProvider.connect("alias/whatever")
