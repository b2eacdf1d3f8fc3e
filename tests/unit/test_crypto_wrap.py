"""Tests for ``vault.crypto.wrap``: key wrapping, sealed fields and the context encoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto import (
    IntegrityError,
    UnwrapError,
    canonical_context,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
)

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "stream_v1.json"
KEK = bytes(range(32))
KEY = bytes(range(32, 64))


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return loaded


# --- wrap_key / unwrap_key ----------------------------------------------------------------------


def test_wrap_round_trip_and_layout() -> None:
    wrapped = wrap_key(KEK, KEY, b"ctx")
    assert len(wrapped) == 65
    assert wrapped[:5] == b"KNKW\x01"
    assert unwrap_key(KEK, wrapped, b"ctx") == KEY
    assert wrap_key(KEK, KEY, b"ctx") != wrapped  # random nonce


@pytest.mark.parametrize(
    ("kek", "aad"), [(KEK, b"ctx2"), (KEK, b""), (bytes(32), b"ctx")], ids=["aad", "no aad", "kek"]
)
def test_unwrap_with_wrong_kek_or_aad_fails(kek: bytes, aad: bytes) -> None:
    wrapped = wrap_key(KEK, KEY, b"ctx")
    with pytest.raises(UnwrapError):
        unwrap_key(kek, wrapped, aad)


def test_unwrap_detects_any_modification() -> None:
    wrapped = wrap_key(KEK, KEY, b"ctx")
    for pos in range(len(wrapped)):
        bad = bytearray(wrapped)
        bad[pos] ^= 0x01
        with pytest.raises(UnwrapError):
            unwrap_key(KEK, bytes(bad), b"ctx")
    for bad_len in (wrapped[:-1], wrapped + b"\x00", b""):
        with pytest.raises(UnwrapError):
            unwrap_key(KEK, bad_len, b"ctx")


def test_wrap_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError, match="kek"):
        wrap_key(bytes(16), KEY, b"")
    with pytest.raises(ValueError, match="key"):
        wrap_key(KEK, bytes(31), b"")
    with pytest.raises(ValueError, match="nonce"):
        wrap_key(KEK, KEY, b"", nonce=bytes(8))


# --- seal / open_sealed -------------------------------------------------------------------------


@pytest.mark.parametrize("text", [b"", b"x", "入札公告".encode(), bytes(5000)])
def test_seal_round_trip(text: bytes) -> None:
    sealed = seal(KEK, text, b"row-1")
    assert sealed[:5] == b"KNKF\x01"
    assert len(sealed) == 5 + 12 + len(text) + 16
    assert open_sealed(KEK, sealed, b"row-1") == text


def test_open_sealed_failures_raise_integrity_error() -> None:
    sealed = seal(KEK, b"title", b"row-1")
    with pytest.raises(IntegrityError):
        open_sealed(KEK, sealed, b"row-2")
    with pytest.raises(IntegrityError):
        open_sealed(bytes(32), sealed, b"row-1")
    for pos in range(len(sealed)):
        bad = bytearray(sealed)
        bad[pos] ^= 0x80
        with pytest.raises(IntegrityError):
            open_sealed(KEK, bytes(bad), b"row-1")
    for short in (b"", sealed[:20], sealed[:-1]):
        with pytest.raises(IntegrityError):
            open_sealed(KEK, short, b"row-1")


def test_wrapped_keys_and_sealed_fields_are_not_interchangeable() -> None:
    # The same key and AAD in both uses must still not let one pass for the other.
    sealed = seal(KEK, KEY, b"ctx")
    forged = b"KNKW\x01" + sealed[5:]
    with pytest.raises(UnwrapError):
        unwrap_key(KEK, forged, b"ctx")
    wrapped = wrap_key(KEK, KEY, b"ctx")
    with pytest.raises(IntegrityError):
        open_sealed(KEK, b"KNKF\x01" + wrapped[5:], b"ctx")


# --- vectors --------------------------------------------------------------------------------------


def test_wrap_and_seal_vectors(vectors: dict[str, Any]) -> None:
    for v in vectors["wrap_key"]:
        kek, key, aad, nonce = (bytes.fromhex(v[k]) for k in ("kek", "key", "aad_hex", "nonce"))
        expected = bytes.fromhex(v["wrapped_hex"])
        assert wrap_key(kek, key, aad, nonce=nonce) == expected
        assert unwrap_key(kek, expected, aad) == key
        # Independently from the primitive, following docs/format.md.
        raw = b"KNKW\x01" + nonce + AESGCM(kek).encrypt(nonce, key, b"KNKW\x01" + aad)
        assert raw == expected
    for v in vectors["seal"]:
        key, text, aad, nonce = (
            bytes.fromhex(v[k]) for k in ("key", "plaintext_hex", "aad_hex", "nonce")
        )
        expected = bytes.fromhex(v["sealed_hex"])
        assert seal(key, text, aad, nonce=nonce) == expected
        assert open_sealed(key, expected, aad) == text
        raw = b"KNKF\x01" + nonce + AESGCM(key).encrypt(nonce, text, b"KNKF\x01" + aad)
        assert raw == expected


# --- canonical context ----------------------------------------------------------------------------


def test_canonical_context_is_order_independent_and_injective() -> None:
    label = b"kinko-v1 test"
    assert canonical_context(label, {"a": "1", "b": "2"}) == canonical_context(
        label, {"b": "2", "a": "1"}
    )
    distinct = [
        {"a": "bc"},
        {"ab": "c"},
        {"a": "b", "c": ""},
        {},
        {"case_id": "A"},
        {"case_id": "a"},
    ]
    encodings = {canonical_context(label, c) for c in distinct}
    assert len(encodings) == len(distinct)
    assert canonical_context(b"kinko-v1 other", {}) != canonical_context(label, {})
    with pytest.raises(ValueError, match="label"):
        canonical_context(b"", {})


# --- layering -------------------------------------------------------------------------------------


def test_crypto_imports_nothing_of_the_key_package() -> None:
    # vault.crypto holds the pure primitives; vault.keys builds on them.  An import the other
    # way round would make the primitives depend on providers, files and KMS.
    import ast

    crypto_dir = Path(__file__).resolve().parents[2] / "vault" / "crypto"
    sources = sorted(crypto_dir.glob("*.py"))
    assert sources
    for source in sources:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith("vault.keys"), f"{source.name} imports {name}"
