"""Guarantee (SPEC §5): fail closed.  If the audit log cannot be written, a content read gets
503 and not a byte of content; a write gets 503 and leaves no version behind.

The audit store is made unwritable for real: the test opens ``audit.db`` itself and holds
SQLite's write lock (``BEGIN EXCLUSIVE``; in WAL mode this takes the single writer lock that
the server's ``BEGIN IMMEDIATE`` needs).  With ``KINKO_AUDIT_TIMEOUT_SECONDS=1`` the server's
busy timeout runs out after a second and the append fails.  (``chmod`` would not do: tests
run as root, who ignores file modes.)
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest import make_server
from guarantee_support import all_files, purpose_header

BLOCKED_PURPOSE = "attempt while the audit store is locked"


@pytest.fixture
def srv(tmp_path: Path):
    s = make_server(tmp_path, KINKO_AUDIT_TIMEOUT_SECONDS="1")
    s.start()
    try:
        yield s
    finally:
        s.close_clients()
        s.stop()


@contextmanager
def audit_store_locked(data_dir: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(data_dir / "audit.db", isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def _objects(data_dir: Path) -> set[str]:
    return {p.name for p in all_files(data_dir / "blobs" / "objects")}


def _error_code(resp: httpx.Response) -> str | None:
    try:
        return str(resp.json()["error"]["code"])
    except Exception:
        return None


def test_audit_unwritable_fails_closed(srv) -> None:
    tag = secrets.token_hex(4)
    drafter = srv.user(f"drafter-{tag}", ["procurement"])
    auditor = srv.user(f"auditor-{tag}", ["auditor"])
    case_id = drafter.create_case(f"A-{tag}", "audit fail-closed case")["id"]
    marker = f"SECRET-CONTENT-{tag}".encode()
    original = marker * 2000 + os.urandom(70_000) + marker
    doc_id = drafter.create_document(case_id, "budget", f"budget {tag}", original)["id"]
    assert drafter.read(doc_id, "before the lock") == original
    objects_before = _objects(srv.data_dir)
    assert len(objects_before) == 1

    new_body = f"NEW-VERSION-{tag}".encode() * 5000
    with audit_store_locked(srv.data_dir) as lock:
        # The lock really is held: another writer cannot get in.
        probe = sqlite3.connect(srv.data_dir / "audit.db", timeout=0.2, isolation_level=None)
        with closing(probe), pytest.raises(sqlite3.OperationalError, match="locked"):
            probe.execute("BEGIN IMMEDIATE")

        t0 = time.monotonic()
        r = drafter.http.get(
            f"/api/v1/documents/{doc_id}/content",
            headers=purpose_header(BLOCKED_PURPOSE),
            timeout=30,
        )
        elapsed = time.monotonic() - t0
        assert r.status_code == 503, (r.status_code, r.content[:200])
        assert _error_code(r) == "audit_unavailable"
        assert marker not in r.content
        assert original[-5000:] not in r.content
        assert len(r.content) < 1000
        assert elapsed < 15, elapsed

        # Streaming client: not a byte of content before the status either.
        with drafter.http.stream(
            "GET",
            f"/api/v1/documents/{doc_id}/content",
            params={"version": "1"},
            headers=purpose_header(BLOCKED_PURPOSE),
            timeout=30,
        ) as resp:
            body = resp.read()
        assert resp.status_code == 503
        assert marker not in body

        # A write: 503, and (checked below) no version and no blob left behind.
        w = drafter.http.put(f"/api/v1/documents/{doc_id}/content", content=new_body, timeout=30)
        assert w.status_code == 503, (w.status_code, w.text[:200])
        assert _error_code(w) == "audit_unavailable"

        # Creating a document: same.
        c = drafter.http.post(
            f"/api/v1/cases/{case_id}/documents",
            params={"class": "budget"},
            headers={"X-Kinko-Title": quote(f"blocked {tag}", safe="")},
            content=new_body,
            timeout=30,
        )
        assert c.status_code == 503, (c.status_code, c.text[:200])

        # Metadata (which carries titles) is not served unaudited either.
        m = drafter.http.get(f"/api/v1/documents/{doc_id}", timeout=30)
        assert m.status_code == 503, (m.status_code, m.text[:200])
        assert f"budget {tag}" not in m.text

        lock.execute("ROLLBACK")

    # After the lock is released everything works again ...
    meta = drafter.document(doc_id)
    assert meta["latest_version"] == 1
    assert [v["version"] for v in meta["versions"]] == [1]
    assert [d["id"] for d in drafter.documents(case_id)] == [doc_id]
    assert _objects(srv.data_dir) == objects_before, "a failed write left a blob behind"
    assert list(all_files(srv.data_dir / "blobs" / "tmp")) == []
    assert drafter.read(doc_id, "after the lock") == original

    # ... and the log holds the allowed reads that were served, and none of the refused ones.
    events = auditor.audit_events(document_id=doc_id, limit=1000)["events"]
    reads = [e for e in events if e["action"] == "document.read" and e["decision"] == "allow"]
    assert [e["purpose"] for e in reads] == ["before the lock", "after the lock"]
    assert all(e["actor"] == f"drafter-{tag}" for e in reads)
    assert not [e for e in events if e["purpose"] == BLOCKED_PURPOSE and e["decision"] == "allow"]
    writes = [e for e in events if e["action"] == "document.write" and e["decision"] == "allow"]
    assert writes == []
