"""Tests of what is particular to ``LocalKeyProvider``: its key file, its format and its vector.

What every provider promises is tested once, for all of them, in
``test_key_provider_conformance.py``.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto import canonical_context
from vault.keys import InsecureKeyFile, KeyFileError, KeyProvider, KeyUnavailable, LocalKeyProvider

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "stream_v1.json"
KEY = bytes(range(32, 64))


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture
def umask_zero() -> Iterator[None]:
    # With umask 0 nothing masks the creation mode, so a file created with a loose mode
    # would show it; the provider must still end up owner-only.
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# --- vector ---------------------------------------------------------------------------------------


def test_provider_vector(vectors: dict[str, Any], tmp_path: Path) -> None:
    v = vectors["provider_wrap"]
    context: dict[str, str] = v["context"]
    encoded = canonical_context(v["label"].encode(), context)
    assert encoded.hex() == v["canonical_context_hex"]
    # Re-derive the canonical encoding by hand from the documented layout.
    manual = (
        len(v["label"]).to_bytes(2, "big") + v["label"].encode() + len(context).to_bytes(4, "big")
    )
    for k in sorted(context, key=lambda s: s.encode()):
        kb, vb = k.encode(), context[k].encode()
        manual += len(kb).to_bytes(4, "big") + kb + len(vb).to_bytes(4, "big") + vb
    assert manual == encoded

    key_id = v["key_id"]
    provider = LocalKeyProvider(
        tmp_path / "k.json", {key_id: bytes.fromhex(v["master_key"])}, key_id
    )
    wrapped = bytes.fromhex(v["wrapped_hex"])
    assert provider.key_ids_of(wrapped) == key_id
    assert provider.unwrap(wrapped, context) == bytes.fromhex(v["key"])
    header = b"KNKP\x01" + bytes([len(key_id)]) + key_id.encode()
    nonce = bytes.fromhex(v["nonce"])
    inner_aad = b"KNKW\x01" + header + encoded
    inner = AESGCM(bytes.fromhex(v["master_key"])).encrypt(
        nonce, bytes.fromhex(v["key"]), inner_aad
    )
    assert header + b"KNKW\x01" + nonce + inner == wrapped


# --- LocalKeyProvider -----------------------------------------------------------------------------


def test_create_file_mode_and_contents(tmp_path: Path, umask_zero: None) -> None:
    path = tmp_path / "sub" / "master.json"
    provider = LocalKeyProvider.open_or_create(path)
    assert isinstance(provider, KeyProvider)
    assert provider.name == "local"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["format"] == "kinko-master-key/v1"
    assert doc["current"] == provider.current_key_id()
    [entry] = doc["keys"]
    assert entry["id"] == provider.current_key_id()
    assert entry["created_at"].endswith("Z")
    assert len(entry["key"]) == 44  # base64 of 32 bytes
    # The temporary file used for the atomic write is gone.
    assert sorted(p.name for p in path.parent.iterdir()) == ["master.json"]


def test_key_file_is_created_owner_only_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        calls.append((flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    LocalKeyProvider.open_or_create(tmp_path / "master.json")
    creating = [(flags, mode) for flags, mode in calls if flags & os.O_CREAT]
    assert creating
    for flags, mode in creating:
        assert flags & os.O_EXCL
        assert mode == 0o600


def test_reopen_yields_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "master.json"
    first = LocalKeyProvider.open_or_create(path)
    wrapped = first.wrap(KEY, {"case_id": "A"})
    second = LocalKeyProvider.open_or_create(path)
    assert second.current_key_id() == first.current_key_id()
    assert second.key_ids_of(wrapped) == first.current_key_id()
    assert second.unwrap(wrapped, {"case_id": "A"}) == KEY


def test_losing_the_creation_race_keeps_the_winners_key(tmp_path: Path) -> None:
    # Two processes start on an empty data directory at once.  The winner creates the key file
    # and wraps a case key with it; the loser, which found no file a moment earlier, then
    # creates its own.  That must not replace the winner's file (its case key would be lost for
    # good): the loser must end up using the winner's key.
    path = tmp_path / "master.json"
    winner = LocalKeyProvider.open_or_create(path)
    wrapped = winner.wrap(KEY, {"case_id": "A"})
    LocalKeyProvider._create(path)  # the loser's step after its failed first open
    loser = LocalKeyProvider.open_or_create(path)
    assert loser.current_key_id() == winner.current_key_id()
    assert loser.unwrap(wrapped, {"case_id": "A"}) == KEY
    assert [k["id"] for k in json.loads(path.read_text())["keys"]] == [winner.current_key_id()]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.json"]  # no temp file left


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601])
def test_refuses_key_file_readable_by_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.json"
    LocalKeyProvider.open_or_create(path)
    path.chmod(mode)
    with pytest.raises(InsecureKeyFile, match="chmod 600"):
        LocalKeyProvider.open_or_create(path)


def test_accepts_read_only_owner_file(tmp_path: Path) -> None:
    path = tmp_path / "master.json"
    LocalKeyProvider.open_or_create(path)
    path.chmod(0o400)
    LocalKeyProvider.open_or_create(path)


def test_unknown_key_id_and_malformed_input(tmp_path: Path) -> None:
    provider = LocalKeyProvider.open_or_create(tmp_path / "master.json")
    other = LocalKeyProvider.open_or_create(tmp_path / "other.json")
    wrapped = other.wrap(KEY, {"case_id": "A"})
    with pytest.raises(KeyUnavailable, match="not in"):
        provider.unwrap(wrapped, {"case_id": "A"})
    for bad in (b"", b"KNKP\x01", wrapped[:-1], wrapped + b"\x00", b"XXXX" + wrapped[4:]):
        with pytest.raises(KeyUnavailable):
            other.unwrap(bad, {"case_id": "A"})
        with pytest.raises(KeyUnavailable):
            other.key_ids_of(bad)


def test_key_id_in_wrapped_output_is_authenticated(tmp_path: Path) -> None:
    # A provider holding the same key material under two ids must not accept a wrapped key
    # whose id field was rewritten, since that field is part of the associated data.
    mk = bytes(32)
    provider = LocalKeyProvider(tmp_path / "k.json", {"mk-a": mk, "mk-b": mk}, "mk-a")
    wrapped = provider.wrap(KEY, {"case_id": "A"})
    relabelled = wrapped.replace(b"mk-a", b"mk-b", 1)
    with pytest.raises(KeyUnavailable):
        provider.unwrap(relabelled, {"case_id": "A"})


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"format": "other", "current": "a", "keys": []}',
        '{"format": "kinko-master-key/v1", "current": "a", "keys": []}',
        '{"format": "kinko-master-key/v1", "current": "b",'
        ' "keys": [{"id": "a", "created_at": "x", "key": "' + "A" * 43 + '="}]}',
        '{"format": "kinko-master-key/v1", "current": "a",'
        ' "keys": [{"id": "a", "created_at": "x", "key": "AAAA"}]}',
        '{"format": "kinko-master-key/v1", "current": "a",'
        ' "keys": [{"id": "a", "created_at": "x", "key": "!!"}]}',
    ],
)
def test_malformed_key_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "master.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    with pytest.raises(KeyFileError):
        LocalKeyProvider.open_or_create(path)
