"""Tests for the segmented AES-256-GCM blob format in ``vault.crypto.stream``.

Besides round trips and tampering, the known-answer tests check the implementation against
``tests/vectors/stream_v1.json`` and against a from-scratch encoder written here with raw
``cryptography`` primitives straight from docs/format.md, so that the vectors are not merely
the implementation agreeing with itself.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.crypto import (
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
from vault.crypto.stream import HEADER_SIZE, MAX_SEGMENTS

S = SEGMENT_SIZE
SEG_CT = S + TAG_SIZE
DEK = bytes(range(32))
DOC = "doc-1"
VERSION = 1
VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "stream_v1.json"
BOUNDARY_LENGTHS = [0, 1, S - 1, S, S + 1, 2 * S - 1, 2 * S, 2 * S + 5, 3 * S]


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def encrypt(plaintext: bytes, dek: bytes = DEK, doc: str = DOC, version: int = VERSION) -> bytes:
    return b"".join(encrypt_stream(dek, doc, version, [plaintext]))


def decrypt(blob: bytes, dek: bytes = DEK, doc: str = DOC, version: int = VERSION) -> bytes:
    return b"".join(decrypt_stream(dek, doc, version, [blob]))


def chunked(data: bytes, rng: random.Random, max_chunk: int) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        n = rng.randint(0, max_chunk)  # zero-length chunks are legal and must be harmless
        yield data[pos : pos + n]
        pos += n


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def three_segments() -> tuple[bytes, bytes]:
    plaintext = pattern(2 * S + 5)
    return plaintext, encrypt(plaintext)


# --- an independent reference encoder, built only from docs/format.md ------------------------


def reference_encrypt(
    dek: bytes,
    salt: bytes,
    prefix: bytes,
    doc_id: str,
    version: int,
    plaintext: bytes,
    segment_size: int = 65536,
    *,
    trailing_empty_segment: bool = False,
) -> bytes:
    def hkdf(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(dek)

    header = (
        b"KNKS"
        + b"\x01"
        + struct.pack(">I", segment_size)
        + salt
        + prefix
        + hkdf(b"kinko-v1 stream key-commitment")
    )
    doc = doc_id.encode("utf-8")
    ad = header + struct.pack(">H", len(doc)) + doc + struct.pack(">Q", version)
    aead = AESGCM(hkdf(b"kinko-v1 stream segment-key"))
    pieces = [plaintext[i : i + segment_size] for i in range(0, len(plaintext), segment_size)]
    if not pieces or trailing_empty_segment:
        pieces.append(b"")
    out = [header]
    for index, piece in enumerate(pieces):
        flag = b"\x01" if index == len(pieces) - 1 else b"\x00"
        nonce = prefix + struct.pack(">I", index) + flag
        out.append(aead.encrypt(nonce, piece, ad))
    return b"".join(out)


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", BOUNDARY_LENGTHS)
def test_round_trip_boundary_lengths(n: int) -> None:
    plaintext = pattern(n)
    blob = encrypt(plaintext)
    assert len(blob) == ciphertext_size(n)
    assert decrypt(blob) == plaintext


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_random_chunk_sizes_both_sides(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice([0, 1, S, 2 * S + 5, rng.randint(0, 4 * S)])
    plaintext = rng.randbytes(n)
    max_chunk = rng.choice([1000, S + 7, 3 * S])
    blob = b"".join(encrypt_stream(DEK, DOC, VERSION, chunked(plaintext, rng, max_chunk)))
    assert len(blob) == ciphertext_size(n)
    out = b"".join(decrypt_stream(DEK, DOC, VERSION, chunked(blob, rng, max_chunk)))
    assert out == plaintext


def test_round_trip_large_segment_size_read_from_header() -> None:
    plaintext = pattern(3 * 131072 + 1)
    blob = b"".join(encrypt_stream(DEK, DOC, VERSION, [plaintext], segment_size=131072))
    assert len(blob) == ciphertext_size(len(plaintext), 131072)
    assert decrypt(blob) == plaintext


def test_encryptor_accepts_memoryview_and_bytearray() -> None:
    enc = StreamEncryptor(DEK, DOC, VERSION)
    blob = enc.update(memoryview(b"abc")) + enc.update(bytearray(b"def")) + enc.finalize()
    assert decrypt(blob) == b"abcdef"


def test_encryptions_are_randomized() -> None:
    assert encrypt(b"same") != encrypt(b"same")


def test_new_data_key() -> None:
    a, b = new_data_key(), new_data_key()
    assert len(a) == 32
    assert a != b


# --- buffering: what is emitted when --------------------------------------------------------------


def test_encryptor_holds_back_a_full_segment_until_more_data_arrives() -> None:
    enc = StreamEncryptor(DEK, DOC, VERSION)
    first = enc.update(pattern(S))
    # Only the header: the full segment may still turn out to be the last one.
    assert len(first) == HEADER_SIZE
    assert enc.update(b"") == b""
    second = enc.update(b"x")
    assert len(second) == SEG_CT
    last = enc.finalize()
    assert len(last) == 1 + TAG_SIZE
    assert decrypt(first + second + last) == pattern(S) + b"x"


def test_exact_multiple_ends_with_full_last_segment() -> None:
    enc = StreamEncryptor(DEK, DOC, VERSION)
    blob = enc.update(pattern(2 * S)) + enc.finalize()
    assert len(blob) == HEADER_SIZE + 2 * SEG_CT


def test_header_only_output_for_empty_plaintext_is_one_empty_last_segment() -> None:
    enc = StreamEncryptor(DEK, DOC, VERSION)
    blob = enc.finalize()
    assert len(blob) == HEADER_SIZE + TAG_SIZE
    assert decrypt(blob) == b""


def test_decryptor_releases_a_segment_only_when_more_ciphertext_follows(
    three_segments: tuple[bytes, bytes],
) -> None:
    plaintext, blob = three_segments
    dec = StreamDecryptor(DEK, DOC, VERSION)
    assert dec.update(blob[: HEADER_SIZE + SEG_CT]) == b""
    assert dec.update(blob[HEADER_SIZE + SEG_CT : HEADER_SIZE + SEG_CT + 1]) == plaintext[:S]
    rest = dec.update(blob[HEADER_SIZE + SEG_CT + 1 :])
    assert rest == plaintext[S : 2 * S]
    assert dec.finalize() == plaintext[2 * S :]


def test_no_plaintext_of_a_tampered_segment_is_ever_returned(
    three_segments: tuple[bytes, bytes],
) -> None:
    plaintext, blob = three_segments
    bad = bytearray(blob)
    bad[HEADER_SIZE + SEG_CT + 100] ^= 0x01  # inside the second segment
    dec = StreamDecryptor(DEK, DOC, VERSION)
    released = bytearray()

    def feed_all() -> None:
        for i in range(0, len(bad), 4096):
            released.extend(dec.update(bytes(bad[i : i + 4096])))
        dec.finalize()

    with pytest.raises(IntegrityError):
        feed_all()
    assert bytes(released) == plaintext[:S]
    # A failed decryptor stays failed instead of resynchronizing on later input.
    with pytest.raises(IntegrityError):
        dec.update(b"")
    with pytest.raises(IntegrityError):
        dec.finalize()


# --- tampering ------------------------------------------------------------------------------------


def _segments(blob: bytes) -> list[bytes]:
    body = blob[HEADER_SIZE:]
    return [body[i : i + SEG_CT] for i in range(0, len(body), SEG_CT)]


def _flip(blob: bytes, pos: int) -> bytes:
    out = bytearray(blob)
    out[pos] ^= 0x01
    return bytes(out)


def _mutations(blob: bytes) -> dict[str, bytes]:
    header = blob[:HEADER_SIZE]
    s0, s1, s2 = _segments(blob)
    return {
        "flip first segment byte": _flip(blob, HEADER_SIZE + 5),
        "flip middle segment byte": _flip(blob, HEADER_SIZE + SEG_CT + 5),
        "flip last tag byte": _flip(blob, len(blob) - 1),
        "flip first segment tag": _flip(blob, HEADER_SIZE + SEG_CT - 1),
        "truncate by one byte": blob[:-1],
        "truncate to second segment boundary": blob[: HEADER_SIZE + 2 * SEG_CT],
        "truncate to first segment boundary": blob[: HEADER_SIZE + SEG_CT],
        "truncate inside a segment": blob[: HEADER_SIZE + SEG_CT + 100],
        "truncate to less than a tag": blob[: HEADER_SIZE + TAG_SIZE - 1],
        "truncate to header only": header,
        "truncate inside header": blob[: HEADER_SIZE - 1],
        "truncate to empty": b"",
        "append one byte": blob + b"\x00",
        "append a copy of the last segment": blob + s2,
        "swap first two segments": header + s1 + s0 + s2,
        "duplicate first segment": header + s0 + s0 + s1 + s2,
        "drop middle segment": header + s0 + s2,
        "last segment moved first": header + s2 + s0 + s1,
    }


MUTATION_NAMES = list(_mutations(encrypt(pattern(2 * S + 5))))


@pytest.mark.parametrize("name", MUTATION_NAMES)
@pytest.mark.parametrize("chunk", [None, 1000])
def test_tampering_is_detected(
    three_segments: tuple[bytes, bytes], name: str, chunk: int | None
) -> None:
    _, blob = three_segments
    bad = _mutations(blob)[name]
    pieces = [bad] if chunk is None else [bad[i : i + chunk] for i in range(0, len(bad), chunk)]
    with pytest.raises(IntegrityError):
        b"".join(decrypt_stream(DEK, DOC, VERSION, pieces))


def test_every_header_byte_is_protected(three_segments: tuple[bytes, bytes]) -> None:
    _, blob = three_segments
    for pos in range(HEADER_SIZE):
        for bit in (0x01, 0x80):
            bad = bytearray(blob)
            bad[pos] ^= bit
            with pytest.raises(IntegrityError):
                decrypt(bytes(bad))


@pytest.mark.parametrize(
    ("dek", "doc", "version"),
    [
        (bytes(32), DOC, VERSION),
        (DEK, "doc-2", VERSION),
        (DEK, "Doc-1", VERSION),
        (DEK, DOC, VERSION + 1),
        (DEK, DOC, 0),
    ],
    ids=["other dek", "other doc id", "doc id case", "next version", "version zero"],
)
def test_wrong_key_or_context_is_rejected(
    three_segments: tuple[bytes, bytes], dek: bytes, doc: str, version: int
) -> None:
    _, blob = three_segments
    with pytest.raises(IntegrityError):
        decrypt(blob, dek=dek, doc=doc, version=version)


def test_wrong_dek_is_rejected_at_the_header_by_the_commitment() -> None:
    blob = encrypt(b"hello")
    dec = StreamDecryptor(bytes(32), DOC, VERSION)
    with pytest.raises(IntegrityError):
        dec.update(blob[:HEADER_SIZE])


def test_non_canonical_trailing_empty_segment_is_rejected() -> None:
    salt, prefix = bytes(32), bytes(7)
    blob = reference_encrypt(
        DEK, salt, prefix, DOC, VERSION, pattern(S), trailing_empty_segment=True
    )
    with pytest.raises(IntegrityError):
        decrypt(blob)
    # The canonical encoding of the same input from the same reference encoder is accepted.
    assert decrypt(reference_encrypt(DEK, salt, prefix, DOC, VERSION, pattern(S))) == pattern(S)


def test_integrity_error_message_is_generic(three_segments: tuple[bytes, bytes]) -> None:
    _, blob = three_segments
    messages = set()
    for bad in (_flip(blob, 0), _flip(blob, len(blob) - 1), blob[:-1], b""):
        with pytest.raises(IntegrityError) as info:
            decrypt(bad)
        messages.add(str(info.value))
    assert len(messages) == 1


# --- API misuse and limits ------------------------------------------------------------------------


def test_ciphertext_size() -> None:
    assert ciphertext_size(0) == HEADER_SIZE + TAG_SIZE
    assert ciphertext_size(S) == HEADER_SIZE + S + TAG_SIZE
    assert ciphertext_size(S + 1) == HEADER_SIZE + S + 1 + 2 * TAG_SIZE
    assert ciphertext_size(MAX_SEGMENTS * S) == HEADER_SIZE + MAX_SEGMENTS * SEG_CT
    with pytest.raises(ValueError, match="too large"):
        ciphertext_size(MAX_SEGMENTS * S + 1)
    with pytest.raises(ValueError, match="negative"):
        ciphertext_size(-1)
    with pytest.raises(ValueError, match="segment_size"):
        ciphertext_size(10, segment_size=4096)


def test_segment_count_limit() -> None:
    enc = StreamEncryptor(DEK, DOC, VERSION)
    # Encrypting 2**32 segments is out of reach for a unit test; jump the counter instead.
    enc._index = MAX_SEGMENTS
    with pytest.raises(ValueError, match="too large"):
        enc.finalize()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"segment_size": 4096}, "segment_size"),
        ({"segment_size": 65535}, "segment_size"),
        ({"segment_size": 2**32}, "segment_size"),
        ({"salt": bytes(16)}, "salt"),
        ({"nonce_prefix": bytes(8)}, "nonce_prefix"),
    ],
)
def test_invalid_encryptor_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamEncryptor(DEK, DOC, VERSION, **kwargs)


@pytest.mark.parametrize(
    ("dek", "doc", "version", "message"),
    [
        (bytes(16), DOC, 1, "data key"),
        (DEK, "x" * 65536, 1, "doc_id"),
        (DEK, DOC, -1, "version"),
        (DEK, DOC, 2**64, "version"),
    ],
)
def test_invalid_key_or_context_arguments(dek: bytes, doc: str, version: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamEncryptor(dek, doc, version)
    with pytest.raises(ValueError, match=message):
        StreamDecryptor(dek, doc, version)


def test_finalize_exactly_once() -> None:
    enc = StreamEncryptor(DEK, DOC, VERSION)
    blob = enc.finalize()
    with pytest.raises(ValueError, match="twice"):
        enc.finalize()
    with pytest.raises(ValueError, match="after finalize"):
        enc.update(b"x")
    dec = StreamDecryptor(DEK, DOC, VERSION)
    dec.update(blob)
    assert dec.finalize() == b""
    with pytest.raises(ValueError, match="already finalized"):
        dec.finalize()


# --- known-answer vectors -------------------------------------------------------------------------


def _vector_inputs(v: dict[str, Any]) -> tuple[bytes, bytes, bytes, str, int]:
    return (
        bytes.fromhex(v["dek"]),
        bytes.fromhex(v["salt"]),
        bytes.fromhex(v["nonce_prefix"]),
        v["doc_id"],
        v["version"],
    )


def _check_case(case: dict[str, Any], blob: bytes) -> None:
    assert len(blob) == case["ciphertext_len"]
    if "ciphertext_hex" in case:
        assert blob.hex() == case["ciphertext_hex"]
    else:
        assert hashlib.sha256(blob).hexdigest() == case["ciphertext_sha256"]
    tags = [seg[-TAG_SIZE:].hex() for seg in _segments(blob)]
    assert tags == case["segment_tags"]


def test_vector_file_covers_required_lengths(vectors: dict[str, Any]) -> None:
    stream = vectors["stream"]
    assert stream["segment_size"] == 65536
    lengths = [c["plaintext_len"] for c in stream["cases"]]
    assert lengths == [0, 1, S - 1, S, S + 1, 2 * S + 5]


def test_known_answer_vectors(vectors: dict[str, Any]) -> None:
    stream = vectors["stream"]
    dek, salt, prefix, doc_id, version = _vector_inputs(stream)
    assert doc_id.encode("utf-8").hex() == stream["doc_id_utf8_hex"]
    for case in stream["cases"]:
        plaintext = pattern(case["plaintext_len"])
        blob = b"".join(
            encrypt_stream(dek, doc_id, version, [plaintext], salt=salt, nonce_prefix=prefix)
        )
        _check_case(case, blob)
        assert blob[:HEADER_SIZE].hex() == stream["header_hex"]
        assert b"".join(decrypt_stream(dek, doc_id, version, [blob])) == plaintext


def test_stored_hex_vectors_decrypt(vectors: dict[str, Any]) -> None:
    stream = vectors["stream"]
    dek, _, _, doc_id, version = _vector_inputs(stream)
    for case in stream["cases"]:
        if "ciphertext_hex" in case:
            blob = bytes.fromhex(case["ciphertext_hex"])
            assert decrypt(blob, dek, doc_id, version) == pattern(case["plaintext_len"])


def test_vectors_match_independent_reference_encoder(vectors: dict[str, Any]) -> None:
    """The reference encoder above uses only HKDF and AESGCM, following docs/format.md."""
    stream = vectors["stream"]
    dek, salt, prefix, doc_id, version = _vector_inputs(stream)
    # Intermediate values first, so that a mismatch points at the step that differs.
    for info, field in [
        (b"kinko-v1 stream segment-key", "segment_key"),
        (b"kinko-v1 stream key-commitment", "commitment"),
    ]:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(dek)
        assert derived.hex() == stream[field]
    for case in stream["cases"]:
        blob = reference_encrypt(dek, salt, prefix, doc_id, version, pattern(case["plaintext_len"]))
        _check_case(case, blob)


def test_two_segment_vector_fully_from_primitives(vectors: dict[str, Any]) -> None:
    """Decrypt the S+1 vector segment by segment by hand, without any vault code at all."""
    stream = vectors["stream"]
    dek, salt, prefix, doc_id, version = _vector_inputs(stream)
    blob = reference_encrypt(dek, salt, prefix, doc_id, version, pattern(S + 1))
    header = blob[:80]
    assert header[:5] == b"KNKS\x01"
    assert struct.unpack(">I", header[5:9])[0] == 65536
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=header[9:41], info=b"kinko-v1 stream segment-key"
    ).derive(dek)
    doc = doc_id.encode()
    ad = header + len(doc).to_bytes(2, "big") + doc + version.to_bytes(8, "big")
    assert ad.hex() == stream["associated_data_hex"]
    aead = AESGCM(key)
    seg0 = aead.decrypt(header[41:48] + bytes(4) + b"\x00", blob[80 : 80 + SEG_CT], ad)
    seg1 = aead.decrypt(header[41:48] + b"\x00\x00\x00\x01\x01", blob[80 + SEG_CT :], ad)
    assert seg0 + seg1 == pattern(S + 1)
    assert decrypt(blob, dek, doc_id, version) == pattern(S + 1)
