"""C2SP signed notes and tlog-checkpoints: the Go example vector, tampering, strict parsing."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from vault.audit.note import (
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    format_checkpoint,
    key_hash,
    parse_checkpoint,
)

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "signed-note.json"
ROOT = hashlib.sha256(b"root").digest()
WHEN = datetime(2026, 11, 26, 7, 39, 37, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner.generate("kinko.example/audit")


# -- the golang.org/x/mod/sumdb/note example ---------------------------------------------------


def test_go_example_verifies(vector: dict[str, Any]) -> None:
    verifier = NoteVerifier.from_verifier_key(vector["verifier_key"])
    assert verifier.name == "PeterNeumann"
    text = verifier.verify(vector["signed_note"])
    assert text == (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
    )


def test_go_example_keys_round_trip(vector: dict[str, Any]) -> None:
    signer = NoteSigner.from_private_key(vector["signer_key"])
    assert signer.name == "PeterNeumann"
    assert f"{signer.key_hash:08x}" == "c74f20a3"
    assert signer.verifier_key() == vector["verifier_key"]
    assert signer.private_key() == vector["signer_key"]


def test_go_example_signature_is_reproduced(vector: dict[str, Any]) -> None:
    # Ed25519 is deterministic, so signing the same text must give the same bytes as Go.
    signer = NoteSigner.from_private_key(vector["signer_key"])
    text = vector["signed_note"].split("\n\n")[0] + "\n"
    assert signer.sign(text) == vector["signed_note"]


def test_key_hash_definition(vector: dict[str, Any]) -> None:
    pub = base64.b64decode(vector["verifier_key"].split("+", 2)[2])[1:]
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + pub).digest()[:4]
    assert key_hash("PeterNeumann", pub) == int.from_bytes(expected, "big") == 0xC74F20A3


# -- tampering ----------------------------------------------------------------------------------


def _resign_line(note: str, blob: bytes, name: str = "PeterNeumann") -> str:
    text = note[: note.rfind("\n\n") + 2]
    return f"{text}— {name} {base64.b64encode(blob).decode()}\n"


def _blob(note: str) -> bytes:
    return base64.b64decode(note.rstrip("\n").rsplit(" ", 1)[1])


def tampered_notes(note: str) -> dict[str, str]:
    blob = _blob(note)
    flipped = blob[:10] + bytes([blob[10] ^ 1]) + blob[11:]
    other_hash = bytes([blob[0] ^ 1]) + blob[1:]
    return {
        "changed text": note.replace("cryptography", "Cryptography"),
        "added text line": "Extra line.\n" + note,
        "changed signature": _resign_line(note, flipped),
        "short signature": _resign_line(note, blob[:-1]),
        "wrong key name": _resign_line(note, blob, name="PeterNeumann2"),
        "wrong key hash": _resign_line(note, other_hash),
        "missing signature line": note[: note.rfind("\n\n") + 2],
        "no blank line": note.replace("\n\n", "\n"),
        "no final newline": note.rstrip("\n"),
        "bad base64": note.replace("=\n", "!\n"),
        "no em dash": note.replace("— ", "- "),
        "carriage return": note.replace("\n", "\r\n"),
        "tab": note.replace(" is", "\tis", 1),
    }


@pytest.mark.parametrize(
    "mutation",
    [
        "changed text",
        "added text line",
        "changed signature",
        "short signature",
        "wrong key name",
        "wrong key hash",
        "missing signature line",
        "no blank line",
        "no final newline",
        "bad base64",
        "no em dash",
        "carriage return",
        "tab",
    ],
)
def test_tampered_note_rejected(vector: dict[str, Any], mutation: str) -> None:
    verifier = NoteVerifier.from_verifier_key(vector["verifier_key"])
    bad = tampered_notes(vector["signed_note"])[mutation]
    assert bad != vector["signed_note"]
    with pytest.raises(NoteError):
        verifier.verify(bad)


def test_unknown_signatures_are_ignored(vector: dict[str, Any], signer: NoteSigner) -> None:
    verifier = NoteVerifier.from_verifier_key(vector["verifier_key"])
    note = vector["signed_note"]
    text = verifier.verify(note)
    # A second signature by another key does not disturb verification by the known key...
    cosigned = note + signer.sign(text).split("\n\n")[-1]
    assert verifier.verify(cosigned) == text
    # ...but a note signed only by another key is rejected.
    with pytest.raises(NoteError, match="no signature"):
        verifier.verify(signer.sign(text))


def test_wrong_key_rejects(signer: NoteSigner) -> None:
    other = NoteSigner.generate(signer.name)  # Same name, different key, different key id.
    note = signer.sign("hello\n")
    assert signer.verifier().verify(note) == "hello\n"
    with pytest.raises(NoteError):
        other.verifier().verify(note)


def test_text_with_blank_line_round_trips(signer: NoteSigner) -> None:
    # The spec lets the text contain empty lines; the last blank line separates signatures.
    text = "first\n\nsecond\n"
    assert signer.verifier().verify(signer.sign(text)) == text


@pytest.mark.parametrize("text", ["no newline", "", "a\tb\n", "a\rb\n", "a\x00\n"])
def test_sign_rejects_bad_text(signer: NoteSigner, text: str) -> None:
    with pytest.raises(NoteError):
        signer.sign(text)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+ c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhpcQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys(vkey: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_verifier_key(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
        "PRIVATE+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_signer_keys(skey: str) -> None:
    with pytest.raises(NoteError):
        NoteSigner.from_private_key(skey)


def test_generated_key_round_trip(signer: NoteSigner) -> None:
    again = NoteSigner.from_private_key(signer.private_key())
    assert again.verifier_key() == signer.verifier_key()
    assert again.key_hash == signer.key_hash
    note = again.sign("x\n")
    assert NoteVerifier.from_verifier_key(signer.verifier_key()).verify(note) == "x\n"


# -- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_format() -> None:
    cp = Checkpoint("kinko.example/audit", 1234, ROOT, WHEN)
    text = format_checkpoint(cp)
    assert text == (
        "kinko.example/audit\n1234\n"
        f"{base64.b64encode(ROOT).decode()}\n"
        "time 2026-11-26T07:39:37.123456Z\n"
    )
    assert parse_checkpoint(text) == cp


def test_checkpoint_round_trip_signed(signer: NoteSigner) -> None:
    cp = Checkpoint(
        "kinko.example/audit",
        0,
        hashlib.sha256(b"").digest(),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=9))),
        extensions=("witness example",),
    )
    note = signer.sign(format_checkpoint(cp))
    parsed = parse_checkpoint(signer.verifier().verify(note))
    assert parsed == cp
    assert parsed.time.utcoffset() == timedelta(0)
    assert parsed.time.isoformat() == "2026-01-01T18:04:05+00:00"


def test_checkpoint_time_without_fraction() -> None:
    text = f"o\n1\n{base64.b64encode(ROOT).decode()}\ntime 2026-11-26T07:39:37Z\n"
    assert parse_checkpoint(text).time == datetime(2026, 11, 26, 7, 39, 37, tzinfo=UTC)


B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"o\n01\n{B64}\ntime 2026-11-26T07:39:37Z\n",  # leading zero
        f"o\n+1\n{B64}\ntime 2026-11-26T07:39:37Z\n",
        f"o\n-1\n{B64}\ntime 2026-11-26T07:39:37Z\n",
        f"o\n 1\n{B64}\ntime 2026-11-26T07:39:37Z\n",
        f"o\n1_0\n{B64}\ntime 2026-11-26T07:39:37Z\n",
        f"o\n１\n{B64}\ntime 2026-11-26T07:39:37Z\n",  # full-width digit
        f"o\n\n{B64}\ntime 2026-11-26T07:39:37Z\n",
        f"\n1\n{B64}\ntime 2026-11-26T07:39:37Z\n",  # empty origin
        f"o\n1\n{base64.b64encode(ROOT[:31]).decode()}\ntime 2026-11-26T07:39:37Z\n",
        f"o\n1\n{B64[:-1]}\ntime 2026-11-26T07:39:37Z\n",  # missing padding
        f"o\n1\n{B64[:-2]}B=\ntime 2026-11-26T07:39:37Z\n",  # non-canonical last char
        f"o\n1\n{B64}\n",  # no time line
        f"o\n1\n{B64}\ntime 2026-11-26T07:39:37Z\ntime 2026-11-26T07:39:38Z\n",
        f"o\n1\n{B64}\ntime 2026-11-26T07:39:37+00:00\n",  # not the Z form
        f"o\n1\n{B64}\ntime 2026-11-26 07:39:37Z\n",
        f"o\n1\n{B64}\ntime 2026-13-26T07:39:37Z\n",
        f"o\n1\n{B64}\ntime 2026-11-26T07:39:37.1234567Z\n",
        f"o\n1\n{B64}\ntime 2026-11-26T07:39:37Z\n\n",  # empty extension line
        f"o\n1\n{B64}\ntime 2026-11-26T07:39:37Z",  # no final newline
        "o\n1\n",
    ],
)
def test_checkpoint_strict_parsing(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint("", 1, ROOT, WHEN),
        Checkpoint("a\nb", 1, ROOT, WHEN),
        Checkpoint("o", -1, ROOT, WHEN),
        Checkpoint("o", 1, ROOT[:31], WHEN),
        Checkpoint("o", 1, ROOT, datetime(2026, 1, 1)),  # A naive time is refused.
        Checkpoint("o", 1, ROOT, WHEN, extensions=("",)),
        Checkpoint("o", 1, ROOT, WHEN, extensions=("time again",)),
    ],
)
def test_format_checkpoint_rejects(cp: Checkpoint) -> None:
    with pytest.raises(NoteError):
        format_checkpoint(cp)
