"""Pure naming rules of the workstation sync client (see docs/sync-naming.md).

Layout: ``DIR/<case dir>/<class dir>/<file name>``. Everything here is a pure function of its
arguments (``safe_join`` is the one exception: it looks at the file system to refuse symlinks
that lead out of the root).

The mapping from a document title to a file name is reversible: :func:`encode_component`
percent-encodes (UTF-8 bytes, uppercase hex) every character that some file system refuses
plus a few that would make a name ambiguous, and :func:`decode_component` undoes it. A literal
``~`` never appears in an encoded title, so the ``~<id prefix>`` suffix added by
:func:`file_name` is always recognisable.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CLASSES",
    "MAX_NAME_BYTES",
    "STATE_DIR",
    "DocRef",
    "UnsafePathError",
    "assign_names",
    "case_dir",
    "class_dir",
    "conflict_name",
    "decode_component",
    "encode_component",
    "file_name",
    "fold_key",
    "is_canonical",
    "is_ignored",
    "parse_file_name",
    "safe_join",
    "split_ext",
]

MAX_NAME_BYTES = 255
"""Longest file name (in UTF-8 bytes) the client ever produces (ext4/APFS/NTFS limit)."""

MAX_EXT_BYTES = 16
"""An extension (encoded, including the dot) longer than this is not kept apart when shortening."""

STATE_DIR = ".kinko"
"""Directory under DIR holding all client state; unreachable by any encoded name."""

TEMP_PREFIX = ".kinko-tmp-"
"""Prefix of the client's own temporary files (ignored by the scanner)."""

CLASSES: frozenset[str] = frozenset(
    {
        "schedule",
        "specification",
        "evaluation_criteria",
        "technical_scores",
        "competition",
        "budget",
        "estimated_price",
        "evaluator_names",
        "proposal",
        "contact_record",
    }
)

_CASE_NUMBER = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ID_CHARS = re.compile(r"[A-Za-z0-9_-]+")

# Characters refused by at least one of Linux, macOS, Windows, plus '%' (the escape character),
# '~' (reserved for the id suffix) and bidirectional controls (they can make "evil\u202egpj.exe"
# display as "evilexe.jpg").
_ALWAYS = (
    frozenset('%/\\<>:"|?*~')
    | frozenset("\u061c\u200e\u200f")
    | frozenset(chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
)

_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789\u00b9\u00b2\u00b3"}
)


class UnsafePathError(ValueError):
    """A path would leave the sync root (or a component is not a single safe name)."""


def _must_escape(ch: str) -> bool:
    cp = ord(ch)
    return (
        ch in _ALWAYS
        or cp < 0x20
        or 0x7F <= cp <= 0x9F  # DEL and C1 controls
        or 0xD800 <= cp <= 0xDFFF  # lone surrogates cannot be written as UTF-8 names
    )


def _escape(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def _is_reserved_device(text: str) -> bool:
    base = text.split(".", 1)[0].rstrip(" ")
    return base.upper() in _RESERVED


def encode_component(text: str) -> str:
    """Map ``text`` (a title, case number, device name ...) to one safe path component.

    Rules, applied to the characters of ``text`` (an escaped character becomes ``%XX`` per
    UTF-8 byte, uppercase hex):

    1. always escaped: ``% / \\ < > : " | ? * ~``, C0 controls (incl. NUL), DEL, C1 controls,
       lone surrogates, bidi controls U+061C U+200E U+200F U+202A-U+202E U+2066-U+2069;
    2. the first character if it is ``.``;
    3. the last character if it is ``.`` or a space;
    4. the first character if the part before the first ``.`` (trailing spaces ignored) is a
       Windows device name (CON PRN AUX NUL CONIN$ CONOUT$ COM0-9 LPT0-9 COM¹²³ LPT¹²³),
       compared case-insensitively;
    5. the last character, if the result would otherwise be a name the scanner ignores
       (``x.tmp``, ``x.swp``, ``Thumbs.db``; see :func:`is_ignored`).

    Raises ValueError for the empty string.
    """
    if not text:
        raise ValueError("cannot encode an empty name")
    n = len(text)
    esc = [_must_escape(ch) for ch in text]
    if text[0] == ".":
        esc[0] = True
    if text[-1] in ". ":
        esc[n - 1] = True
    if _is_reserved_device(text):
        esc[0] = True
    out = _join(text, esc)
    if is_ignored(out):
        esc[n - 1] = True
        out = _join(text, esc)
    return out


def _join(text: str, esc: list[bool]) -> str:
    return "".join(_escape(ch) if e else ch for ch, e in zip(text, esc, strict=True))


_ESCAPE_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def decode_component(name: str, *, strict: bool = True) -> str:
    """Invert :func:`encode_component`: decode every ``%XX`` run as UTF-8 bytes.

    Hex digits may be upper or lower case. With ``strict`` (the default) a ``%`` that does not
    start an escape, or escapes that are not valid UTF-8, raise ValueError; otherwise they are
    kept literally (for names a user typed, e.g. ``100% done.txt``).
    """
    if not name:
        raise ValueError("cannot decode an empty name")
    out: list[str] = []
    pos = 0
    for m in _ESCAPE_RUN.finditer(name):
        literal = name[pos : m.start()]
        if strict and "%" in literal:
            raise ValueError(f"stray '%' in {name!r}")
        out.append(literal)
        raw = bytes.fromhex(m.group().replace("%", ""))
        try:
            out.append(raw.decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            if strict:
                raise ValueError(f"escapes in {name!r} are not UTF-8") from None
            out.append(m.group())
        pos = m.end()
    tail = name[pos:]
    if strict and "%" in tail:
        raise ValueError(f"stray '%' in {name!r}")
    out.append(tail)
    return "".join(out)


def is_canonical(name: str) -> bool:
    """True if ``name`` is exactly what :func:`encode_component` makes of some title."""
    try:
        return encode_component(decode_component(name)) == name
    except ValueError:
        return False


def _utf8_len(s: str) -> int:
    return len(s.encode("utf-8", "surrogatepass"))


def _units(name: str) -> list[str]:
    """Split a (possibly encoded) name into units that must not be cut apart.

    A unit is one literal character or the run of ``%XX`` escapes of one UTF-8 character.
    """
    units: list[str] = []
    i, n = 0, len(name)
    while i < n:
        if name[i] == "%" and i + 3 <= n and _is_hex(name[i + 1 : i + 3]):
            lead = int(name[i + 1 : i + 3], 16)
            count = 4 if lead >= 0xF0 else 3 if lead >= 0xE0 else 2 if lead >= 0xC0 else 1
            j = i + 3
            for _ in range(count - 1):
                if j + 3 <= n and name[j] == "%" and _is_hex(name[j + 1 : j + 3]):
                    j += 3
                else:
                    break
            units.append(name[i:j])
            i = j
        else:
            units.append(name[i])
            i += 1
    return units


def _is_hex(s: str) -> bool:
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


def _truncate(name: str, max_bytes: int) -> str:
    """Longest prefix of ``name`` of at most ``max_bytes`` UTF-8 bytes, cut between units."""
    out: list[str] = []
    used = 0
    for unit in _units(name):
        size = _utf8_len(unit)
        if used + size > max_bytes:
            break
        out.append(unit)
        used += size
    return "".join(out)


def split_ext(name: str) -> tuple[str, str]:
    """Split at the last ``.`` that is not the first character; ``("a.b", ".c")`` for "a.b.c".

    An extension longer than :data:`MAX_EXT_BYTES` bytes is not treated as one.
    """
    dot = name.rfind(".")
    if dot <= 0 or _utf8_len(name[dot:]) > MAX_EXT_BYTES:
        return name, ""
    return name[:dot], name[dot:]


def _id_prefix(doc_id: str, length: int) -> str:
    if not _ID_CHARS.fullmatch(doc_id):
        raise ValueError(f"document id {doc_id!r} must be letters, digits, '_' or '-'")
    return doc_id[:length]


def _with_suffix(encoded: str, suffix: str) -> str:
    stem, ext = split_ext(encoded)
    budget = MAX_NAME_BYTES - _utf8_len(suffix) - _utf8_len(ext)
    return _truncate(stem, budget) + suffix + ext


def file_name(title: str, doc_id: str, *, needs_suffix: bool, id_len: int = 8) -> str:
    """File name of a document: the encoded title, suffixed with ``~<id prefix>`` if needed.

    The suffix (``~`` + the first ``id_len`` characters of ``doc_id``) is added when
    ``needs_suffix`` is true or the encoded title is longer than 255 UTF-8 bytes; it goes
    before the extension (kept if at most 16 bytes encoded) and the stem is shortened, between
    whole characters/escapes, so that the name fits in 255 bytes.
    """
    encoded = encode_component(title)
    if not needs_suffix and _utf8_len(encoded) <= MAX_NAME_BYTES:
        return encoded
    return _with_suffix(encoded, "~" + _id_prefix(doc_id, id_len))


def parse_file_name(name: str) -> tuple[str, str | None]:
    """Split a file name made by :func:`file_name` into (decoded title, id prefix or None).

    For a shortened name the first element is the decoded (shortened) stem plus extension,
    not the full title. Raises ValueError if ``name`` contains malformed escapes.
    """
    tilde = name.rfind("~")
    if tilde >= 0:
        stem, rest = name[:tilde], name[tilde + 1 :]
        dot = rest.find(".")
        ident, ext = (rest, "") if dot < 0 else (rest[:dot], rest[dot:])
        if stem and _ID_CHARS.fullmatch(ident) and "~" not in ext:
            return decode_component(stem + ext), ident
    return decode_component(name), None


def fold_key(name: str) -> str:
    """Key under which case- and normalization-insensitive file systems consider names equal."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


@dataclass(frozen=True)
class DocRef:
    """What :func:`assign_names` needs to know about a document.

    ``created_at`` orders documents (older first); anything comparable works (a datetime, a
    server sequence number); ties are broken by ``id``.
    """

    id: str
    title: str
    created_at: Any
    case_id: str
    cls: str


_ID_LENGTHS = (8, 12, 16, 24)


def assign_names(docs: Iterable[DocRef]) -> dict[str, str]:
    """File name of every document, unique per case+class folder even case-insensitively.

    Within each (case_id, cls) folder documents are taken oldest first; each gets the first of
    these candidates whose :func:`fold_key` no earlier document has taken: the plain encoded
    title, then ``~`` + the first 8, 12, 16, 24 characters of its id, then the whole id, then
    the whole id + ``-2``, ``-3``, ... So the oldest of several documents sharing a title (or
    titles equal case-insensitively) keeps the plain name, and the result is deterministic.
    """
    groups: dict[tuple[str, str], list[DocRef]] = {}
    seen: set[str] = set()
    for doc in docs:
        if doc.id in seen:
            raise ValueError(f"document {doc.id!r} listed twice")
        seen.add(doc.id)
        groups.setdefault((doc.case_id, doc.cls), []).append(doc)
    names: dict[str, str] = {}
    for members in groups.values():
        members.sort(key=lambda d: (d.created_at, d.id))
        taken: set[str] = set()
        for doc in members:
            name = next(n for n in _candidates(doc) if fold_key(n) not in taken)
            taken.add(fold_key(name))
            names[doc.id] = name
    return names


def _candidates(doc: DocRef) -> Iterable[str]:
    encoded = encode_component(doc.title)
    _id_prefix(doc.id, 1)  # validate
    if _utf8_len(encoded) <= MAX_NAME_BYTES:
        yield encoded
    for length in _ID_LENGTHS:
        if length < len(doc.id):
            yield _with_suffix(encoded, "~" + doc.id[:length])
    yield _with_suffix(encoded, "~" + doc.id)
    counter = 2
    while True:
        yield _with_suffix(encoded, f"~{doc.id}-{counter}")
        counter += 1


def case_dir(number: str) -> str:
    """Directory name of a case: the encoded case number ("." -> "%2E", ".." -> "%2E%2E")."""
    if not isinstance(number, str) or not _CASE_NUMBER.fullmatch(number):
        raise ValueError(f"invalid case number {number!r}")
    return encode_component(number)


def class_dir(cls: str) -> str:
    """Directory name of a document class (the identifier itself; unknown ones are refused)."""
    if cls not in CLASSES:
        raise ValueError(f"unknown document class {cls!r}")
    return cls


def _check_component(component: str) -> None:
    if (
        not component
        or component in (".", "..")
        or any(c in component for c in "/\\\0:")
        or os.sep in component
        or (os.altsep is not None and os.altsep in component)
    ):
        raise UnsafePathError(f"unsafe path component {component!r}")


def safe_join(root: Path, *components: str) -> Path:
    """``root / c1 / c2 ...`` after checking that the result stays inside ``root``.

    Every component must be one plain name (not empty, ".", "..", nor containing a separator,
    NUL or ':'). Existing symlinks along the way are followed and refused if they lead outside
    ``root``; the final path, resolved, must be ``root`` or below it. The returned path is
    ``root.resolve()`` joined with the components (not resolved further).
    This is a check, not a lock: writers should still open files with O_NOFOLLOW.
    """
    base = root.resolve()
    path = base
    for component in components:
        _check_component(component)
        path = path / component
        if path.is_symlink():
            target = path.resolve()
            if target != base and base not in target.parents:
                raise UnsafePathError(f"{path} is a symlink leading outside {base}")
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafePathError(f"{path} is outside {base}")
    return path


_IGNORED_EXACT = frozenset({".ds_store", "thumbs.db"})
_IGNORED_PREFIX = ("~$", ".goutputstream-", TEMP_PREFIX)
_IGNORED_SUFFIX = (".swp", ".tmp")


def is_ignored(name: str) -> bool:
    """True for temp and lock files the client never syncs.

    ``~$*`` (Office), ``.~lock.*#`` (LibreOffice), ``*.swp``, ``*.tmp``, ``.goutputstream-*``,
    ``.DS_Store``, ``Thumbs.db`` and the client's own ``.kinko-tmp-*``; the suffixes and exact
    names are compared case-insensitively (Windows/macOS spell them either way).
    """
    lower = name.lower()
    return (
        lower in _IGNORED_EXACT
        or name.startswith(_IGNORED_PREFIX)
        or lower.endswith(_IGNORED_SUFFIX)
        or (name.startswith(".~lock.") and name.endswith("#"))
    )


def conflict_name(name: str, device: str, when: datetime) -> str:
    """``<stem> (conflict <device> <YYYYMMDD-HHMMSS>)<ext>`` for the local copy in a conflict.

    ``device`` goes through :func:`encode_component` (and is cut to 64 bytes); ``when`` is
    formatted as given (callers pass local time). The stem is shortened, between whole
    characters/escapes, so that the result is at most 255 UTF-8 bytes.
    """
    dev = _truncate(encode_component(device) if device else "unknown", 64) or "unknown"
    stem, ext = split_ext(name)
    marker = f" (conflict {dev} {when.strftime('%Y%m%d-%H%M%S')})"
    budget = MAX_NAME_BYTES - _utf8_len(marker) - _utf8_len(ext)
    return _truncate(stem, budget) + marker + ext
