"""Guarantee: nothing a document says (content, title) and no case title is stored in clear.

After real uploads through the HTTP API, every file under the data directory (databases, their
-wal/-shm files, blobs, key file) is searched byte by byte for the plaintext in the encodings
that could plausibly leak: UTF-8, percent-encoding (as the title travels in its header), and
JSON escapes (as the case title travels in its body).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import stat
from pathlib import Path
from urllib.parse import quote

import pytest
from guarantee_support import all_files, version_rows

from clients import KinkoClient


def _forms(text: str) -> set[bytes]:
    """The byte forms of ``text`` that must not appear on disk."""
    forms = {
        text.encode("utf-8"),
        quote(text, safe="").encode(),
        quote(text).encode(),
        json.dumps(text).strip('"').encode(),  # \uXXXX escapes (ensure_ascii)
    }
    return {f for f in forms if len(f) >= 8}


def _upload_everything(client: KinkoClient, case_id: str, tag: str) -> dict[str, object]:
    titles = [
        f"予定価格調書 第{tag}号 (極秘)",
        f"評価委員名簿-{tag}-内部限り",
        f"Specification draft {tag} / secret & confidential",
        f"技術点 集計表 {tag} – 最終版",
    ]
    markers: list[bytes] = []
    digests: list[str] = []
    docs: list[tuple[str, str]] = []
    classes = ["estimated_price", "evaluator_names", "specification", "budget"]
    for i, (title, cls) in enumerate(zip(titles, classes, strict=True)):
        versions = []
        for v in range(1, 4):
            ascii_marker = f"KINKO-PLAINTEXT-MARKER-{tag}-{i}-{v}".encode()
            jp_marker = f"予定価格は金壱億円也-{tag}-{i}-{v}".encode()
            markers += [ascii_marker, jp_marker]
            # Markers at the start, across a segment boundary (65536) and near the end.
            body = bytearray(os.urandom(150_000))
            body[0 : len(ascii_marker)] = ascii_marker
            body[65530 : 65530 + len(jp_marker)] = jp_marker
            body[-len(ascii_marker) - 5 : -5] = ascii_marker
            # A highly repetitive part too (a compressor or a dedup store would keep it).
            body += (ascii_marker + b" ") * 200
            versions.append(bytes(body))
            digests.append(hashlib.sha256(body).hexdigest())
        doc = client.create_document(case_id, cls, title, versions[0])
        for body in versions[1:]:
            client.put_content(doc["id"], body)
        client.finalize(doc["id"], 2)
        docs.append((doc["id"], title))
        # Reads too (they write audit events and review items).
        for v in (1, 3):
            assert client.read(doc["id"], "checking the draft", v) == versions[v - 1]
    return {"titles": titles, "markers": markers, "docs": docs, "digests": digests}


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_no_plaintext_on_disk(fresh_server, stop_signal: int) -> None:
    srv = fresh_server
    tag = secrets.token_hex(5)
    case_title = f"庁舎清掃業務委託 案件名 {tag}"
    client = srv.user(f"drafter-{tag}", ["procurement"])
    case = client.create_case(f"R8-{tag}", case_title)
    case_id = case["id"]
    got = _upload_everything(client, case_id, tag)
    titles: list[str] = got["titles"]  # type: ignore[assignment]
    markers: list[bytes] = got["markers"]  # type: ignore[assignment]
    docs: list[tuple[str, str]] = got["docs"]  # type: ignore[assignment]
    digests: list[str] = got["digests"]  # type: ignore[assignment]
    # The API does give the titles back (they are stored, only not in clear).
    listed = {d["title"] for d in client.documents(case_id)}
    assert listed == set(titles)
    assert client.case(case_id)["title"] == case_title

    srv.close_clients()
    srv.stop(stop_signal)  # SIGKILL leaves -wal files un-checkpointed; SIGTERM closes cleanly

    data_dir: Path = srv.data_dir
    files = list(all_files(data_dir))
    names = {f.name for f in files}
    assert "catalog.db" in names
    assert "audit.db" in names
    if stop_signal == signal.SIGKILL:
        assert {"catalog.db-wal", "audit.db-wal"} & names, sorted(names)

    needles: dict[bytes, str] = {}
    for m in markers:
        needles[m] = f"content marker {m[:40]!r}"
    for t in [*titles, case_title]:
        for form in _forms(t):
            needles[form] = f"title {t!r} as {form[:40]!r}"
    # The random part of each title alone must not appear either (e.g. a truncated title).
    for t in titles:
        needles[t.split(tag)[0].encode()] = f"title prefix of {t!r}"
    needles[case_title.split(tag)[0].encode()] = "case title prefix"
    # Content digests are sealed too (hex and raw forms).
    for d in digests:
        needles[d.encode()] = f"sha256 hex {d[:16]}"
        needles[bytes.fromhex(d)] = f"sha256 raw {d[:16]}"
    assert all(len(n) >= 8 for n in needles), [n for n in needles if len(n) < 8]

    leaks: list[str] = []
    total = 0
    control = f"R8-{tag}".encode()  # the case number is stored in clear by design
    control_seen = False
    for path in files:
        raw = path.read_bytes()
        total += len(raw)
        control_seen = control_seen or control in raw
        for needle, what in needles.items():
            if needle in raw:
                leaks.append(f"{path.relative_to(data_dir)}: {what}")
    assert total > 12 * 150_000  # the blobs were really scanned
    assert control_seen, "positive control: the case number should be found in clear"
    assert not leaks, "plaintext found on disk:\n" + "\n".join(leaks)

    # The master key file is private to the server's user.
    mode = stat.S_IMODE((data_dir / "master.key").stat().st_mode)
    assert mode == 0o600, oct(mode)

    # Blob paths are random names only: nothing of ids, numbers or titles.
    rows = version_rows(data_dir)
    assert len(rows) == 12
    blob_files = [p for p in files if "objects" in p.parts]
    assert len(blob_files) == 12
    identifiers = [case_id, f"R8-{tag}", tag] + [d for d, _ in docs]
    for path in blob_files:
        rel = str(path.relative_to(data_dir / "blobs"))
        assert path.name in {r[2] for r in rows}
        for ident in identifiers:
            windows = {ident[i : i + 10] for i in range(max(1, len(ident) - 9))}
            hit = [w for w in windows if len(w) >= 8 and w in rel]
            assert not hit, f"blob path {rel} contains part of {ident!r}"
        for t in [*titles, case_title]:
            assert t.encode() not in rel.encode()
            assert quote(t, safe="") not in rel
