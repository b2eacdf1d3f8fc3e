"""Generate ``stream_v1.json``: known-answer vectors for the formats in docs/format.md.

Run from the repository root::

    PYTHONPATH=. python tests/vectors/make_stream_vectors.py          # rewrite the JSON
    PYTHONPATH=. python tests/vectors/make_stream_vectors.py --check  # verify, exit 1 on drift

Every input is fixed, so the output is byte-for-byte reproducible.  The vectors pin the
format: if a code change makes ``--check`` fail, the change broke compatibility with every
blob already stored, and must instead become a new format version.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.crypto.stream import HEADER_SIZE, SEGMENT_SIZE, TAG_SIZE, encrypt_stream
from vault.crypto.wrap import canonical_context, seal, wrap_key
from vault.keys.local import MASTER_WRAP_LABEL

OUT = Path(__file__).with_name("stream_v1.json")

DEK = bytes(range(0x20))
SALT = bytes(range(0x20, 0x40))
NONCE_PREFIX = bytes.fromhex("a0a1a2a3a4a5a6")
# A non-ASCII id checks that decoders length-prefix the UTF-8 bytes, not the characters,
# and a version above 255 checks the byte order of the u64 field.
DOC_ID = "doc-0042/入札書"
VERSION = 258
LENGTHS = [0, 1, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 2 * SEGMENT_SIZE + 5]
# Ciphertexts up to this size are stored in full as hex; longer ones as SHA-256.
HEX_LIMIT = 256


def plaintext(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def _hkdf(info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=info).derive(DEK)


def stream_vectors() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    header = b""
    for n in LENGTHS:
        ct = b"".join(
            encrypt_stream(
                DEK, DOC_ID, VERSION, [plaintext(n)], salt=SALT, nonce_prefix=NONCE_PREFIX
            )
        )
        header = ct[:HEADER_SIZE]
        body = ct[HEADER_SIZE:]
        seg_ct = SEGMENT_SIZE + TAG_SIZE
        tags = [body[i : i + seg_ct][-TAG_SIZE:].hex() for i in range(0, len(body), seg_ct)]
        case: dict[str, Any] = {
            "plaintext_len": n,
            "ciphertext_len": len(ct),
            "segment_count": len(tags),
            "segment_tags": tags,
        }
        if len(ct) <= HEX_LIMIT:
            case["ciphertext_hex"] = ct.hex()
        else:
            case["ciphertext_sha256"] = hashlib.sha256(ct).hexdigest()
        cases.append(case)
    doc = DOC_ID.encode("utf-8")
    suffix = len(doc).to_bytes(2, "big") + doc + VERSION.to_bytes(8, "big")
    return {
        "dek": DEK.hex(),
        "salt": SALT.hex(),
        "nonce_prefix": NONCE_PREFIX.hex(),
        "doc_id": DOC_ID,
        "doc_id_utf8_hex": doc.hex(),
        "version": VERSION,
        "segment_size": SEGMENT_SIZE,
        "plaintext_rule": "byte i of an n-byte plaintext is i % 251, for i in 0..n-1",
        "segment_key": _hkdf(b"kinko-v1 stream segment-key").hex(),
        "commitment": _hkdf(b"kinko-v1 stream key-commitment").hex(),
        "header_hex": header.hex(),
        "associated_data_hex": (header + suffix).hex(),
        "cases": cases,
    }


def wrap_vectors() -> list[dict[str, Any]]:
    kek = bytes(range(0x40, 0x60))
    key = bytes(range(0x60, 0x80))
    out = []
    for aad, nonce in [
        (b"", bytes(12)),
        (b"kinko-v1 dek\x00\x08doc-0042\x00\x03258", bytes(range(0xB0, 0xBC))),
    ]:
        out.append(
            {
                "kek": kek.hex(),
                "key": key.hex(),
                "aad_hex": aad.hex(),
                "nonce": nonce.hex(),
                "wrapped_hex": wrap_key(kek, key, aad, nonce=nonce).hex(),
            }
        )
    return out


def seal_vectors() -> list[dict[str, Any]]:
    key = bytes(range(0x80, 0xA0))
    out = []
    for text, aad, nonce in [
        (b"", b"", bytes(12)),
        ("入札公告 2025".encode(), b"kinko-v1 document-title\x00\x08doc-0042", bytes(range(12))),
    ]:
        out.append(
            {
                "key": key.hex(),
                "plaintext_hex": text.hex(),
                "aad_hex": aad.hex(),
                "nonce": nonce.hex(),
                "sealed_hex": seal(key, text, aad, nonce=nonce).hex(),
            }
        )
    return out


def provider_vectors() -> dict[str, Any]:
    context = {"case_id": "case-7", "tenant": "東京都"}
    master = bytes(range(0xA0, 0xC0))
    key = bytes(range(0xC0, 0xE0))
    key_id = "mk-0123456789abcdef"
    nonce = bytes(range(0x10, 0x1C))
    header = b"KNKP\x01" + bytes([len(key_id)]) + key_id.encode("ascii")
    encoded = canonical_context(MASTER_WRAP_LABEL, context)
    return {
        "label": MASTER_WRAP_LABEL.decode("ascii"),
        "context": context,
        "canonical_context_hex": encoded.hex(),
        "key_id": key_id,
        "master_key": master.hex(),
        "key": key.hex(),
        "nonce": nonce.hex(),
        "wrapped_hex": (header + wrap_key(master, key, header + encoded, nonce=nonce)).hex(),
    }


def build() -> dict[str, Any]:
    return {
        "description": (
            "Known-answer vectors for the Kinko v1 formats specified in docs/format.md. "
            "Generated by tests/vectors/make_stream_vectors.py; never edit by hand."
        ),
        "stream": stream_vectors(),
        "wrap_key": wrap_vectors(),
        "seal": seal_vectors(),
        "provider_wrap": provider_vectors(),
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} does not match the current implementation", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
