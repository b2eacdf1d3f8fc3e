"""Naming rules of the sync client: reversible, safe on every file system, collision-free."""

from __future__ import annotations

import os
import random
import re
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest

from clients.sync.naming import (
    CLASSES,
    MAX_NAME_BYTES,
    DocRef,
    UnsafePathError,
    assign_names,
    case_dir,
    class_dir,
    conflict_name,
    decode_component,
    encode_component,
    file_name,
    fold_key,
    is_canonical,
    is_ignored,
    parse_file_name,
    safe_join,
)

TRICKY = [
    "a",
    ".",
    "..",
    "...",
    ".hidden",
    ".kinko",
    "..%2F..",
    "../../etc/passwd",
    "..\\..\\windows",
    "a/b",
    "/",
    "\\",
    "C:\\x",
    "C:",
    'a<b>c:d"e|f?g*h',
    "100%",
    "%",
    "%2E",
    "%25",
    "%zz",
    "trailing.",
    "trailing ",
    "trailing. . ",
    " leading space",
    "CON",
    "con",
    "Con.txt",
    "con.tar.gz",
    "CON .txt",
    "NUL",
    "aux",
    "PRN.",
    "COM1",
    "com9.doc",
    "LPT1",
    "COM\u00b9",
    "CONIN$",
    "CONOUT$.x",
    "CONSOLE",
    "COM10",
    "~$report.docx",
    ".~lock.report.odt#",
    "x.swp",
    "notes.tmp",
    "NOTES.TMP",
    "Thumbs.db",
    "thumbs.DB",
    ".DS_Store",
    ".goutputstream-ABC",
    ".kinko-tmp-123",
    "a~01234567",
    "report~deadbeef.pdf",
    "~",
    "emoji 😀🎉👨‍👩‍👧",
    "rtl \u202egpj.exe",
    "mark \u200f\u200e\u061c",
    "isolate \u2066x\u2069",
    "日本語の入札仕様書.pdf",
    "e\u0301 vs \u00e9",
    "tab\tand\nnewline",
    "nul\x00byte",
    "del\x7f c1\x85",
    "surrogate \ud800 lone",
    "ß ẞ ﬁ",
    "İstanbul",
    "x" * 255,
    "/" * 255,
    "😀" * 255,
    "€" * 255,
    "a." + "b" * 253,
    "a" * 250 + ".pdf",
    "é" * 200 + ".docx",
    "name." + "x" * 30,
]


def _random_titles(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = [
        *"abcXYZ019 ._-~%/\\:*?\"<>|'()[]{}",
        "é",
        "e\u0301",
        "ß",
        "日",
        "😀",
        "\u202e",
        "\u200f",
        "\ufeff",
        "\u00a0",
        "\x85",
        "CON",
        "nul",
        ".tmp",
        ".swp",
        "Thumbs.db",
        "~$",
        "..",
        "%2F",
        "%",
    ]
    titles = []
    for _ in range(count):
        n = rng.choice([1, 2, 3, 5, 10, 40, 120, 255])
        t = "".join(rng.choice(alphabet) for _ in range(n))
        titles.append(t[: rng.randint(1, 255)] or "x")
    return titles


ALL_TITLES = TRICKY + _random_titles(20240601, 3000)


def _check_safe(name: str) -> None:
    assert name
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert not any(c in name for c in '/\\\x00<>:"|?*')
    assert not any(ord(c) < 0x20 for c in name)
    assert not name.endswith((".", " "))
    assert not is_ignored(name), name
    base = name.split(".", 1)[0].rstrip(" ").upper()
    assert base not in {"CON", "PRN", "AUX", "NUL"}
    assert not re.fullmatch(r"(COM|LPT)[0-9\u00b9\u00b2\u00b3]", base)
    name.encode("utf-8")  # no lone surrogates


def test_round_trip_and_safety_over_all_titles() -> None:
    for title in ALL_TITLES:
        enc = encode_component(title)
        _check_safe(enc)
        assert "~" not in enc
        assert decode_component(enc) == title
        assert is_canonical(enc)
        assert re.fullmatch(r"(?:[^%]|%[0-9A-F]{2})*", enc)  # uppercase hex, no stray '%'


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (".", "%2E"),
        ("..", "%2E%2E"),
        (".hidden", "%2Ehidden"),
        ("a/b", "a%2Fb"),
        ("a\\b", "a%5Cb"),
        ("100%", "100%25"),
        ("x.", "x%2E"),
        ("x ", "x%20"),
        ("CON", "%43ON"),
        ("con.txt", "%63on.txt"),
        ("x.tmp", "x.tm%70"),
        ("Thumbs.db", "Thumbs.d%62"),
        ("~$a", "%7E$a"),
        ("a\x00b", "a%00b"),
        ("é", "é"),
        ("\u202e", "%E2%80%AE"),
        ("a:b", "a%3Ab"),
        ("COM10", "COM10"),
        ("CONSOLE", "CONSOLE"),
    ],
)
def test_encode_examples(title: str, expected: str) -> None:
    assert encode_component(title) == expected
    assert decode_component(expected) == title


def test_decode_accepts_lowercase_hex_and_rejects_garbage() -> None:
    assert decode_component("a%2fb") == "a/b"
    assert not is_canonical("a%2fb")
    for bad in ["100% done", "%", "%G0", "%FF", "%E2%80"]:
        with pytest.raises(ValueError, match=r"stray|UTF-8"):
            decode_component(bad)
        assert not is_canonical(bad)
    assert decode_component("100% done", strict=False) == "100% done"
    assert decode_component("%FF%2F", strict=False) == "%FF%2F"
    with pytest.raises(ValueError, match="empty"):
        encode_component("")


def _id(n: int) -> str:
    return f"{n:032x}"[::-1]


def test_file_name_plain_and_suffixed() -> None:
    doc = "0123456789abcdef0123456789abcdef"
    assert file_name("report.pdf", doc, needs_suffix=False) == "report.pdf"
    assert file_name("report.pdf", doc, needs_suffix=True) == "report~01234567.pdf"
    assert file_name("report", doc, needs_suffix=True) == "report~01234567"
    assert file_name(".pdf", doc, needs_suffix=True) == "%2Epdf~01234567"
    assert parse_file_name("report~01234567.pdf") == ("report.pdf", "01234567")
    assert parse_file_name("report.pdf") == ("report.pdf", None)
    with pytest.raises(ValueError, match="document id"):
        file_name("x", "bad/id", needs_suffix=True)


def test_file_name_properties_over_all_titles() -> None:
    rng = random.Random(7)
    for title in ALL_TITLES:
        doc = f"{rng.getrandbits(128):032x}"
        enc = encode_component(title)
        for needs in (False, True):
            name = file_name(title, doc, needs_suffix=needs)
            _check_safe(name)
            assert len(name.encode()) <= MAX_NAME_BYTES
            suffixed = needs or len(enc.encode()) > MAX_NAME_BYTES
            decoded, ident = parse_file_name(name)
            if not suffixed:
                assert name == enc
                assert (decoded, ident) == (title, None)
            else:
                assert ident == doc[:8]
                assert f"~{doc[:8]}" in name
                if len(enc.encode()) <= MAX_NAME_BYTES - 9:
                    assert decoded == title  # nothing had to be cut
                else:
                    # A cut keeps a prefix of the title (and the extension if it was short).
                    stem_enc = name.split("~")[0]
                    assert title.startswith(decode_component(stem_enc))


def test_long_names_keep_short_extension_and_cut_between_characters() -> None:
    doc = "abcdef0123456789" * 2
    name = file_name("😀" * 100 + ".pdf", doc, needs_suffix=False)
    assert name.endswith("~abcdef01.pdf")
    assert len(name.encode()) <= 255
    name = file_name("/" * 200 + ".docx", doc, needs_suffix=False)
    assert name.endswith("~abcdef01.docx")
    assert re.fullmatch(r"(%2F)+~abcdef01\.docx", name)
    name = file_name("a" * 300 + "." + "x" * 40, doc, needs_suffix=False)
    assert name.endswith("~abcdef01")  # long extension is not kept apart
    assert len(name.encode()) <= 255


def _ref(i: int, title: str, *, case: str = "c1", cls: str = "proposal") -> DocRef:
    return DocRef(id=_id(i), title=title, created_at=i, case_id=case, cls=cls)


def test_assign_names_shared_titles_all_but_oldest_suffixed() -> None:
    docs = [_ref(3, "Report.pdf"), _ref(1, "Report.pdf"), _ref(2, "Report.pdf")]
    names = assign_names(docs)
    assert names[_id(1)] == "Report.pdf"
    assert names[_id(2)] == f"Report~{_id(2)[:8]}.pdf"
    assert names[_id(3)] == f"Report~{_id(3)[:8]}.pdf"
    # Different folders do not collide.
    other = assign_names([_ref(1, "a"), _ref(2, "a", cls="budget"), _ref(3, "a", case="c2")])
    assert set(other.values()) == {"a"}


def test_assign_names_case_and_normalization_insensitive() -> None:
    names = assign_names(
        [_ref(1, "REPORT"), _ref(2, "report"), _ref(3, "Caf\u00e9"), _ref(4, "Cafe\u0301")]
    )
    assert names[_id(1)] == "REPORT"
    assert names[_id(2)] == f"report~{_id(2)[:8]}"
    assert names[_id(3)] == "Caf\u00e9"
    assert names[_id(4)].startswith("Cafe\u0301~")


def test_assign_names_suffix_collisions_resolved_deterministically() -> None:
    # Ids sharing their first 8 (and 12) characters, same title: longer prefixes kick in.
    a = DocRef("abcdefgh11111111", "t", 1, "c", "proposal")
    b = DocRef("abcdefgh22222222", "t", 2, "c", "proposal")
    c = DocRef("ABCDEFGH22222222", "t", 3, "c", "proposal")  # equal to b case-insensitively
    d = DocRef("abcdefgh33333333", "t", 4, "c", "proposal")
    names = assign_names([d, c, b, a])
    assert names == assign_names([a, b, c, d])
    assert names[a.id] == "t"
    assert names[b.id] == "t~abcdefgh"
    assert names[c.id] == "t~ABCDEFGH2222"  # "t~ABCDEFGH" collides with b's name on macOS
    assert names[d.id] == "t~abcdefgh3333"
    assert len({fold_key(n) for n in names.values()}) == 4
    # Whole ids equal case-insensitively: a counter is appended.
    e = DocRef("abcd", "t", 1, "c", "proposal")
    f = DocRef("ABCD", "t", 2, "c", "proposal")
    g = DocRef("AbCd", "t", 3, "c", "proposal")
    assert assign_names([e, f, g]) == {"abcd": "t", "ABCD": "t~ABCD", "AbCd": "t~AbCd-2"}
    with pytest.raises(ValueError, match="twice"):
        assign_names([e, e])


def test_assign_names_random_groups_are_collision_free() -> None:
    rng = random.Random(99)
    pool = ["a", "A", "b.txt", "B.TXT", "x" * 260, "X" * 260, "t~1", "CON", "con", "é", "e\u0301"]
    docs = [
        DocRef(
            id=f"{rng.getrandbits(16):04x}" + f"{i:028x}",
            title=rng.choice(pool),
            created_at=rng.randint(0, 50),
            case_id=rng.choice(["c1", "c2"]),
            cls=rng.choice(["proposal", "budget"]),
        )
        for i in range(400)
    ]
    names = assign_names(docs)
    rng.shuffle(docs)
    assert assign_names(docs) == names
    folders: dict[tuple[str, str], set[str]] = {}
    for doc in docs:
        name = names[doc.id]
        _check_safe(name)
        assert len(name.encode()) <= 255
        key = fold_key(name)
        folder = folders.setdefault((doc.case_id, doc.cls), set())
        assert key not in folder
        folder.add(key)


def test_case_and_class_dirs() -> None:
    assert case_dir(".") == "%2E"
    assert case_dir("..") == "%2E%2E"
    assert case_dir(".kinko") == "%2Ekinko"
    assert case_dir("R6-001") == "R6-001"
    assert case_dir("CON") == "%43ON"
    assert case_dir("A.") == "A%2E"
    for bad in ["", "a/b", "x" * 65, "日本", "a b"]:
        with pytest.raises(ValueError, match="case number"):
            case_dir(bad)
    for cls in CLASSES:
        assert class_dir(cls) == cls
    with pytest.raises(ValueError, match="class"):
        class_dir("../x")


def test_safe_join(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "c" / "proposal").mkdir(parents=True)
    assert safe_join(root, "c", "proposal", "x.pdf") == root.resolve() / "c" / "proposal" / "x.pdf"
    for bad in [
        ("..",),
        (".",),
        ("",),
        ("a/b",),
        ("a\\b",),
        ("c", "..", ".."),
        ("/etc",),
        ("a\0",),
    ]:
        with pytest.raises(UnsafePathError):
            safe_join(root, *bad)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "c" / "evil")
    with pytest.raises(UnsafePathError):
        safe_join(root, "c", "evil", "x")
    os.symlink(root / "c" / "proposal", root / "c" / "inside")
    assert safe_join(root, "c", "inside", "x") == root.resolve() / "c" / "inside" / "x"
    # Every encoded title joins safely.
    for title in TRICKY:
        path = safe_join(
            root, case_dir("."), "proposal", file_name(title, "ab" * 16, needs_suffix=False)
        )
        assert root.resolve() in path.parents


def test_is_ignored() -> None:
    for name in [
        "~$a.docx",
        ".~lock.a.odt#",
        "a.swp",
        "a.tmp",
        "A.TMP",
        ".goutputstream-1",
        ".DS_Store",
        "Thumbs.db",
        "thumbs.db",
        ".kinko-tmp-abc",
    ]:
        assert is_ignored(name), name
    for name in ["a.docx", ".~lock.a.odt", "tmp", "a.tmpx", "x~$", "Thumbs.dbx"]:
        assert not is_ignored(name), name


def test_conflict_name() -> None:
    when = datetime(2024, 6, 1, 9, 5, 7)
    assert (
        conflict_name("report.pdf", "laptop", when)
        == "report (conflict laptop 20240601-090507).pdf"
    )
    assert (
        conflict_name("report", "my/pc:1", when) == "report (conflict my%2Fpc%3A1 20240601-090507)"
    )
    assert conflict_name("report~01234567.pdf", "", when) == (
        "report~01234567 (conflict unknown 20240601-090507).pdf"
    )
    for title in TRICKY:
        name = file_name(title, "0f" * 16, needs_suffix=False)
        out = conflict_name(name, "dev\u202e" * 40, when)
        _check_safe(out)
        assert len(out.encode()) <= 255
        assert "(conflict dev%E2%80%AE" in out
        assert "20240601-090507)" in out
    # The stem is never cut inside an escape of one character.
    out = conflict_name(file_name("😀" * 200, "ab" * 16, needs_suffix=False), "d", when)
    assert unicodedata.is_normalized("NFC", decode_component(out.split(" (conflict")[0]))
