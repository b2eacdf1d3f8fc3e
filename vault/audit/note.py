"""C2SP signed notes (Ed25519) and tlog-checkpoint bodies.

A signed note is a text ending in a newline, a blank line, and one or more signature lines
``— <key name> base64(4-byte key id ‖ signature)``.  Keys use the encodings of Go's
golang.org/x/mod/sumdb/note package, so keys and notes interoperate with Go tooling:

    verifier key: <name>+<key id, 8 hex digits>+base64(0x01 ‖ 32-byte public key)
    signer key:   PRIVATE+KEY+<name>+<key id>+base64(0x01 ‖ 32-byte seed)

A checkpoint is a note whose text is ``origin``, ``tree size``, ``base64(root)`` and extension
lines; Kinko always writes exactly one extension ``time <RFC 3339 UTC>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "Checkpoint",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "format_checkpoint",
    "key_hash",
    "parse_checkpoint",
]

ALG_ED25519 = 0x01
SIG_PREFIX = "— "  # em dash U+2014, then a space
# Verifiers must accept at least 16 signatures; a bound keeps a hostile note from costing
# unbounded work.
MAX_SIGNATURES = 100

_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_SIZE = re.compile(r"0|[1-9][0-9]*")
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(Exception):
    """A key, note or checkpoint is malformed, or a signature does not verify."""


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_hash(name: str, pubkey: bytes) -> int:
    """The key id: first 4 bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + pubkey).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode(value: str) -> bytes:
    """Strict standard base64: alphabet and padding enforced, and the encoding canonical."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("invalid base64") from None
    if base64.b64encode(raw).decode() != value:
        raise NoteError("non-canonical base64")
    return raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _parse_key(name: str, hash_hex: str, key_b64: str, what: str) -> bytes:
    if not _valid_name(name):
        raise NoteError(f"{what}: invalid key name {name!r}")
    if not _HEX8.fullmatch(hash_hex):
        raise NoteError(f"{what}: the key id must be 8 hex digits")
    key = _b64decode(key_b64)
    if len(key) != 33 or key[0] != ALG_ED25519:
        raise NoteError(f"{what}: not an Ed25519 key (0x01 followed by 32 bytes)")
    return key[1:]


class NoteSigner:
    """Signs notes with an Ed25519 key under a key name."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not _valid_name(name):
            raise NoteError(f"invalid key name {name!r}")
        self.name = name
        self._key = private_key
        self._pub = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_hash = key_hash(name, self._pub)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_key(cls, skey: str) -> NoteSigner:
        # The base64 key itself may contain "+", so only the first four separators count.
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("signer key must be PRIVATE+KEY+<name>+<id>+<key>")
        name, hash_hex, key_b64 = parts[2], parts[3], parts[4]
        seed = _parse_key(name, hash_hex, key_b64, "signer key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if signer.key_hash != int(hash_hex, 16):
            raise NoteError("signer key: the key id does not match the name and key")
        return signer

    def private_key(self) -> str:
        seed = self._key.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.key_hash:08x}+{_b64(bytes([ALG_ED25519]) + seed)}"

    def verifier_key(self) -> str:
        return f"{self.name}+{self.key_hash:08x}+{_b64(bytes([ALG_ED25519]) + self._pub)}"

    def verifier(self) -> NoteVerifier:
        return NoteVerifier.from_verifier_key(self.verifier_key())

    def sign(self, text: str) -> str:
        """The signed note: text, a blank line, and this key's signature line."""
        _check_text(text)
        sig = self._key.sign(text.encode())
        blob = self.key_hash.to_bytes(4, "big") + sig
        return f"{text}\n{SIG_PREFIX}{self.name} {_b64(blob)}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if _CONTROL.search(text):
        raise NoteError("note text must not contain control characters other than newline")


class NoteVerifier:
    """Verifies notes signed by one known Ed25519 key."""

    def __init__(self, name: str, key_id: int, public_key: bytes) -> None:
        self.name = name
        self.key_hash = key_id
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_verifier_key(cls, vkey: str) -> NoteVerifier:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("verifier key must be <name>+<id>+<key>")
        name, hash_hex, key_b64 = parts
        pub = _parse_key(name, hash_hex, key_b64, "verifier key")
        if key_hash(name, pub) != int(hash_hex, 16):
            raise NoteError("verifier key: the key id does not match the name and key")
        return cls(name, int(hash_hex, 16), pub)

    def verify(self, note: str) -> str:
        """Return the note text if this key signed it; raise NoteError otherwise.

        Following the signed-note spec, signatures by other keys are ignored (a name or id
        alone matching is not this key), every signature by this key must verify, and at
        least one must be present.
        """
        if _CONTROL.search(note):
            raise NoteError("malformed note: control characters")
        # The text ends at the last blank line; signature lines can never be blank, so the
        # split is unambiguous even when the text itself contains empty lines.
        split = note.rfind("\n\n")
        if split < 0:
            raise NoteError("malformed note: no blank line before the signatures")
        text, sigs = note[: split + 1], note[split + 2 :]
        if not sigs or not sigs.endswith("\n"):
            raise NoteError("malformed note: no signature lines")
        lines = sigs[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise NoteError("malformed note: too many signatures")
        verified = False
        for line in lines:
            if not line.startswith(SIG_PREFIX):
                raise NoteError("malformed note: a signature line must start with an em dash")
            name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
            if not sep or not _valid_name(name) or not b64:
                raise NoteError("malformed note: bad signature line")
            blob = _b64decode(b64)
            if len(blob) < 5:
                raise NoteError("malformed note: signature too short")
            if name != self.name or int.from_bytes(blob[:4], "big") != self.key_hash:
                continue
            try:
                self._key.verify(blob[4:], text.encode())
            except InvalidSignature:
                raise NoteError(f"the signature by {self.name} does not verify") from None
            verified = True
        if not verified:
            raise NoteError(f"the note carries no signature by {self.name}")
        return text


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    time: datetime
    extensions: tuple[str, ...] = ()


def _format_time(t: datetime) -> str:
    if t.tzinfo is None:
        raise NoteError("checkpoint times must be timezone-aware")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_checkpoint(cp: Checkpoint) -> str:
    """The checkpoint note text; ``time`` comes first among the extension lines."""
    if not cp.origin or "\n" in cp.origin:
        raise NoteError("the origin must be one non-empty line")
    if cp.size < 0:
        raise NoteError("the tree size must not be negative")
    if len(cp.root) != 32:
        raise NoteError("the root hash must be 32 bytes")
    for ext in cp.extensions:
        if not ext or "\n" in ext or ext.startswith("time "):
            raise NoteError(f"invalid extension line {ext!r}")
    lines = [cp.origin, str(cp.size), _b64(cp.root), f"time {_format_time(cp.time)}"]
    lines.extend(cp.extensions)
    text = "\n".join(lines) + "\n"
    _check_text(text)
    return text


def _parse_time(value: str) -> datetime:
    m = _TIME.fullmatch(value)
    if m is None:
        raise NoteError(f"not an RFC 3339 UTC time: {value!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(6, "0"))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        raise NoteError(f"not a valid time: {value!r}") from None


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint text (a verified note's body) strictly."""
    if not text.endswith("\n"):
        raise NoteError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint has at least origin, size and root lines")
    if any(not line for line in lines):
        raise NoteError("checkpoint lines must not be empty")
    origin, size_s, root_s, *ext = lines
    if not _SIZE.fullmatch(size_s):
        raise NoteError(f"invalid tree size {size_s!r}")
    root = _b64decode(root_s)
    if len(root) != 32:
        raise NoteError("the root hash must be 32 bytes")
    times = [e for e in ext if e.startswith("time ")]
    if len(times) != 1:
        raise NoteError("a checkpoint needs exactly one 'time' extension line")
    when = _parse_time(times[0][len("time ") :])
    others = tuple(e for e in ext if not e.startswith("time "))
    return Checkpoint(origin=origin, size=int(size_s), root=root, time=when, extensions=others)
