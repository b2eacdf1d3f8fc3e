"""What is particular to the AWS KMS key provider, against moto's KMS over HTTP (no AWS account).

What every provider promises (context binding, tampering, rotation, errors) is tested once,
for all of them, in ``test_key_provider_conformance.py``.
"""

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
