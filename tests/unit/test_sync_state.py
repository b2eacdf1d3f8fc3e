"""The sync client's SQLite state: round trips, durability, crash safety, migrations."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clients.sync.state import SCHEMA_VERSION, FileRecord, State, StateError, db_path

ROOT = Path(__file__).resolve().parents[2]


def _rec(path: str = "R6-1/proposal/a.pdf", **kw: object) -> FileRecord:
    base: dict[str, Any] = {
        "path": path,
        "doc_id": "d" * 32,
        "case_id": "c" * 32,
        "cls": "proposal",
        "version": 3,
        "sha256": "ab" * 32,
        "size": 10,
        "mtime_ns": 1_700_000_000_123_456_789,
        "state": "synced",
    }
    base.update(kw)
    return FileRecord(**base)


def _upload_args(**kw: object) -> dict[str, Any]:
    base: dict[str, Any] = {
        "path": "R6-1/proposal/a.pdf",
        "doc_id": "d" * 32,
        "case_id": "c" * 32,
        "cls": "proposal",
        "base_version": 3,
        "sha256": "ef" * 32,
        "size": 11,
    }
    base.update(kw)
    return base


def test_open_creates_private_state_dir_with_wal(tmp_path: Path) -> None:
    with State.open(tmp_path) as st:
        assert st.path == db_path(tmp_path)
        assert st.integrity_ok()
    assert (tmp_path / ".kinko").stat().st_mode & 0o777 == 0o700
    conn = sqlite3.connect(db_path(tmp_path))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_files_round_trip_and_reopen(tmp_path: Path) -> None:
    with State.open(tmp_path) as st:
        stored = st.put_file(_rec())
        assert stored.updated_at is not None
        st.put_file(_rec("R6-1/budget/new.xlsx", doc_id=None, version=None, state="pending_upload"))
        st.put_file(_rec("R6-1/proposal/b.pdf", sha256=None, size=None, mtime_ns=None))
        assert st.get_file("R6-1/proposal/a.pdf") == stored
        assert st.get_file("nope") is None
    with State.open(tmp_path) as st:
        assert st.get_file("R6-1/proposal/a.pdf") == stored
        assert [f.path for f in st.list_files()] == [
            "R6-1/budget/new.xlsx",
            "R6-1/proposal/a.pdf",
            "R6-1/proposal/b.pdf",
        ]
        assert [f.path for f in st.list_files("pending_upload")] == ["R6-1/budget/new.xlsx"]
        assert len(st.files_for_doc("d" * 32)) == 2
        st.set_file_state("R6-1/proposal/a.pdf", "conflict")
        current = st.get_file("R6-1/proposal/a.pdf")
        assert current is not None
        assert current.state == "conflict"
        st.rename_file("R6-1/proposal/a.pdf", "R6-1/proposal/c.pdf")
        assert st.get_file("R6-1/proposal/a.pdf") is None
        st.delete_file("R6-1/proposal/c.pdf")
        assert st.get_file("R6-1/proposal/c.pdf") is None
        with pytest.raises(KeyError):
            st.set_file_state("nope", "synced")
        with pytest.raises(ValueError, match="state"):
            st.put_file(_rec(state="bogus"))
        # The CHECK constraint backs the Python check.
        with pytest.raises(sqlite3.IntegrityError):
            st._conn.execute(
                "INSERT INTO files VALUES ('x', NULL, 'c', 'proposal', NULL, NULL, NULL, NULL,"
                " 'bogus', 0)"
            )


def test_meta_device_id_stable_and_values(tmp_path: Path) -> None:
    with State.open(tmp_path) as st:
        device = st.device_id
        assert len(device) == 32
        assert st.device_id == device
        assert st.manifest_etag is None
        st.manifest_etag = 'W/"abc"'
        st.last_error = "boom"
        st.set_meta("k", "v")
    with State.open(tmp_path) as st:
        assert st.device_id == device
        assert st.manifest_etag == 'W/"abc"'
        assert st.last_error == "boom"
        st.last_error = None
        assert st.last_error is None
        assert st.get_meta("k") == "v"
    with State.open(tmp_path / "other") as st:
        assert st.device_id != device


def test_upload_queue_idempotency_key_stable_across_reopen(tmp_path: Path) -> None:
    with State.open(tmp_path) as st:
        st.put_file(_rec())
        up = st.enqueue_upload(**_upload_args())
        assert up.attempts == 0
        assert up.last_error is None
        assert up.created_at.tzinfo is not None
        again = st.enqueue_upload(**_upload_args())
        assert again == up
        synced = st.get_file(up.path)
        assert synced is not None
        assert synced.state == "pending_upload"
        new_doc = st.enqueue_upload(
            **_upload_args(path="R6-1/budget/n.xlsx", doc_id=None, base_version=None)
        )
        assert new_doc.idempotency_key != up.idempotency_key
        assert (
            st.enqueue_upload(
                **_upload_args(path="R6-1/budget/n.xlsx", doc_id=None, base_version=None)
            )
            == new_doc
        )
    with State.open(tmp_path) as st:
        assert st.get_upload(up.id) == up
        assert st.enqueue_upload(**_upload_args()) == up
        changed = st.enqueue_upload(**_upload_args(sha256="00" * 32))
        assert changed.idempotency_key != up.idempotency_key
        assert [u.id for u in st.list_uploads()] == [up.id, new_doc.id, changed.id]
        later = datetime.now(UTC) + timedelta(hours=1)
        st.record_upload_failure(up.id, "503", later)
        failed = st.get_upload(up.id)
        assert failed is not None
        assert (failed.attempts, failed.last_error) == (1, "503")
        assert failed.next_attempt_at == later
        assert failed.idempotency_key == up.idempotency_key
        assert [u.id for u in st.list_uploads(due_at=datetime.now(UTC))] == [new_doc.id, changed.id]
        st.complete_upload(up.id, _rec(version=4, sha256="ef" * 32, size=11))
        assert st.get_upload(up.id) is None
        done = st.get_file(up.path)
        assert done is not None
        assert (done.version, done.state) == (4, "synced")
        with pytest.raises(KeyError):
            st.complete_upload(up.id, None)
        st.cancel_upload(changed.id)
        assert [u.id for u in st.list_uploads()] == [new_doc.id]


def test_failed_write_rolls_back_whole_transaction(tmp_path: Path) -> None:
    with State.open(tmp_path) as st:
        up = st.enqueue_upload(**_upload_args())
        with pytest.raises(ValueError, match="state"):
            st.complete_upload(up.id, _rec(state="bogus"))
        assert st.get_upload(up.id) == up  # the delete was rolled back


def test_migration_from_version_0_and_refuses_newer(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    sqlite3.connect(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()
    with State(path) as st:
        st.put_file(_rec())
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"files", "uploads", "meta"} <= tables
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(StateError, match="schema version"):
        State(path)


def _child(script: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys, time\nfrom pathlib import Path\nfrom clients.sync.state import State\n"
    code += textwrap.dedent(script)
    return subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_kill_mid_transaction_leaves_consistent_state(tmp_path: Path) -> None:
    with State.open(tmp_path) as st:
        up = st.enqueue_upload(**_upload_args())
    child = _child(
        """
        st = State.open(Path(sys.argv[1]))
        with st._tx() as c:
            c.execute("DELETE FROM uploads")
            c.execute("INSERT INTO meta VALUES ('half', 'done')")
            print("mid", flush=True)
            time.sleep(60)
        """,
        tmp_path,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "mid"
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    with State.open(tmp_path) as st:
        assert st.integrity_ok()
        assert st.get_upload(up.id) == up
        assert st.get_meta("half") is None


def test_kill_during_write_loop_keeps_every_committed_row(tmp_path: Path) -> None:
    child = _child(
        """
        st = State.open(Path(sys.argv[1]))
        i = 0
        while True:
            up = st.enqueue_upload(path=f"c/proposal/{i}", doc_id=None, case_id="c",
                                   cls="proposal", base_version=None, sha256="ab" * 32, size=i)
            print(up.id, up.idempotency_key, flush=True)
            i += 1
        """,
        tmp_path,
    )
    assert child.stdout is not None
    acknowledged = [child.stdout.readline().split() for _ in range(50)]
    time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    with State.open(tmp_path) as st:
        assert st.integrity_ok()
        queued = {u.id: u for u in st.list_uploads()}
        for up_id, key in acknowledged:
            assert queued[int(up_id)].idempotency_key == key
        for u in queued.values():
            assert u.path == f"c/proposal/{u.size}"
        assert len({u.idempotency_key for u in queued.values()}) == len(queued)
        # Re-queueing after the crash returns the original entries, never duplicates.
        for u in list(queued.values())[:20]:
            again = st.enqueue_upload(
                path=u.path,
                doc_id=None,
                case_id="c",
                cls="proposal",
                base_version=None,
                sha256="ab" * 32,
                size=u.size,
            )
            assert again == u
        assert len(st.list_uploads()) == len(queued)
