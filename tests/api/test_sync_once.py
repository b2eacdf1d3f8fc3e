"""``kinko sync DIR --once`` against a real server: down, up, conflicts, deletions, permissions."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, KinkoServer

from clients import KinkoClient
from clients.sync.engine import PassReport, SyncEngine, status_lines
from clients.sync.naming import case_dir
from clients.sync.state import State

PURPOSE = "sync test"


@dataclass
class World:
    server: KinkoServer
    drafter: KinkoClient
    drafter_name: str
    sup: KinkoClient
    auditor: KinkoClient
    case_id: str
    number: str
    root: Path

    def folder(self, cls: str) -> Path:
        return self.root / case_dir(self.number) / cls

    def engine(self, client: KinkoClient | None = None, root: Path | None = None) -> SyncEngine:
        # A client of its own: the engine sets the device header on it.
        c = client or self.server.client(self.drafter.http.headers["Authorization"][7:])
        return SyncEngine(root or self.root, c, purpose=PURPOSE, device=None)

    def sync(self, **kw: bool) -> PassReport:
        with self.engine() as eng:
            report = eng.run_once(**kw)
        assert not report.errors, report.errors
        return report

    def reads(self, actor: str | None = None) -> int:
        events = self.auditor.audit_events(
            actor=actor or self.drafter_name, action="document.read", limit=1000
        )["events"]
        return sum(1 for e in events if e["decision"] == "allow")


@pytest.fixture
def world(server: KinkoServer, tmp_path: Path) -> World:
    tag = uuid.uuid4().hex[:8]
    drafter_name = f"sy-drafter-{tag}"
    drafter = server.user(drafter_name, ["procurement"])
    sup = server.user(f"sy-sup-{tag}")
    number = f"SY-{tag}"
    case_id = drafter.create_case(number, "同期")["id"]
    server.admin.set_member(case_id, f"sy-sup-{tag}", ["supervisor"])
    return World(
        server=server,
        drafter=drafter,
        drafter_name=drafter_name,
        sup=sup,
        auditor=server.user("sy-auditor", ["auditor"]),
        case_id=case_id,
        number=number,
        root=tmp_path / "vault",
    )


def versions(c: KinkoClient, doc_id: str) -> list[int]:
    return [v["version"] for v in c.document(doc_id)["versions"]]


def titles(c: KinkoClient, case_id: str) -> dict[str, str]:
    return {d["title"]: d["id"] for d in c.documents(case_id)}


def test_pull_is_complete_verified_and_not_repeated(world: World) -> None:
    w = world
    spec = w.drafter.create_document(w.case_id, "specification", "仕様書.txt", "仕様".encode())
    slash = w.drafter.create_document(w.case_id, "budget", "a/b report.pdf", b"budget")
    w.drafter.put_content(slash["id"], b"budget v2")

    report = w.sync()
    assert sorted(report.downloaded) == sorted(
        [
            f"{case_dir(w.number)}/specification/仕様書.txt",
            f"{case_dir(w.number)}/budget/a%2Fb report.pdf",
        ]
    )
    assert report.in_step
    assert (w.folder("specification") / "仕様書.txt").read_bytes() == "仕様".encode()
    assert (w.folder("budget") / "a%2Fb report.pdf").read_bytes() == b"budget v2"
    assert not list(w.root.rglob(".kinko-tmp-*"))
    reads = w.reads()
    assert reads == 2
    events = w.auditor.audit_events(actor=w.drafter_name, action="document.read")["events"]
    with State.open(w.root) as st:
        device = st.device_id
    assert {e["purpose"] for e in events} == {PURPOSE}
    assert {e["client"]["device"] for e in events} == {device}

    # Nothing changed: nothing is read again.
    report = w.sync()
    assert report.downloaded == []
    assert w.reads() == reads

    # A new version on the server comes down (only that one).
    w.drafter.put_content(spec["id"], "仕様 v2".encode())
    report = w.sync()
    assert report.downloaded == [f"{case_dir(w.number)}/specification/仕様書.txt"]
    assert (w.folder("specification") / "仕様書.txt").read_bytes() == "仕様 v2".encode()
    assert w.reads() == reads + 1


def test_local_new_file_and_edit_go_up(world: World) -> None:
    w = world
    w.sync()
    new = w.folder("schedule") / "日程 メモ.txt"
    new.parent.mkdir(parents=True, exist_ok=True)
    new.write_bytes(b"first")
    (w.folder("schedule") / "~$lock.docx").write_bytes(b"lock")  # ignored
    (w.folder("schedule") / "draft.tmp").write_bytes(b"tmp")  # ignored
    report = w.sync()
    assert report.uploaded == [f"{case_dir(w.number)}/schedule/日程 メモ.txt"]
    docs = titles(w.drafter, w.case_id)
    assert set(docs) == {"日程 メモ.txt"}
    doc_id = docs["日程 メモ.txt"]
    assert w.drafter.read(doc_id, "check") == b"first"
    # The media type told from the file name is kept with the version and sent back.
    got = w.drafter.http.get(
        f"/api/v1/documents/{doc_id}/content", headers={"X-Access-Purpose": "check"}
    )
    assert got.headers["Content-Type"] == "text/plain"

    new.write_bytes(b"second, longer")
    report = w.sync()
    assert report.uploaded == [f"{case_dir(w.number)}/schedule/日程 メモ.txt"]
    assert versions(w.drafter, doc_id) == [1, 2]
    assert w.drafter.read(doc_id, "check") == b"second, longer"
    # Our own upload is not downloaded back, and the next pass has nothing to do.
    report = w.sync()
    assert (report.uploaded, report.downloaded) == ([], [])
    assert versions(w.drafter, doc_id) == [1, 2]


def test_both_changed_keeps_a_conflict_copy(world: World) -> None:
    w = world
    doc = w.drafter.create_document(w.case_id, "budget", "予算.xlsx", b"base")["id"]
    w.sync()
    local = w.folder("budget") / "予算.xlsx"
    local.write_bytes(b"local edit")
    w.drafter.put_content(doc, b"server edit")

    report = w.sync()
    assert len(report.conflicts) == 1
    copy = w.root / report.conflicts[0]
    assert copy.name.startswith("予算 (conflict ")
    assert copy.name.endswith(".xlsx")
    assert copy.read_bytes() == b"local edit"
    assert local.read_bytes() == b"server edit"
    assert versions(w.drafter, doc) == [1, 2]
    docs = titles(w.drafter, w.case_id)
    assert copy.name in docs
    assert w.drafter.read(docs[copy.name], "check") == b"local edit"
    assert any("conflict" in line and copy.name in line for line in status_lines(w.root))
    # Converged: the next pass changes nothing.
    report = w.sync()
    assert (report.uploaded, report.downloaded, report.conflicts) == ([], [], [])
    assert len(titles(w.drafter, w.case_id)) == 2


def test_local_delete_stays_local_until_restore(world: World) -> None:
    w = world
    doc = w.drafter.create_document(w.case_id, "schedule", "日程.txt", b"v1")["id"]
    w.sync()
    path = w.folder("schedule") / "日程.txt"
    path.unlink()
    reads = w.reads()
    report = w.sync()
    assert report.downloaded == []
    assert not path.exists()
    assert versions(w.drafter, doc) == [1]  # the document is still in the vault
    assert w.reads() == reads

    report = w.sync(restore=True)
    assert report.downloaded == [f"{case_dir(w.number)}/schedule/日程.txt"]
    assert path.read_bytes() == b"v1"

    # Deleted again: it comes back when it changes on the server.
    path.unlink()
    w.sync()
    assert not path.exists()
    w.drafter.put_content(doc, b"v2")
    w.sync()
    assert path.read_bytes() == b"v2"


def test_lost_read_removes_or_quarantines(server: KinkoServer, world: World) -> None:
    w = world
    tag = uuid.uuid4().hex[:8]
    rev_name = f"sy-rev-{tag}"
    rev = server.user(rev_name)
    server.admin.set_member(w.case_id, rev_name, ["reviewer"])
    w.drafter.create_document(w.case_id, "budget", "予算.txt", b"budget")
    w.drafter.create_document(w.case_id, "schedule", "日程.txt", b"schedule")
    w.sup.transition(w.case_id, "review")

    root = w.root.parent / "rev"
    token = rev.http.headers["Authorization"][7:]

    def sync() -> PassReport:
        with w.engine(server.client(token), root) as eng:
            return eng.run_once()

    report = sync()
    assert len(report.downloaded) == 2
    schedule = root / case_dir(w.number) / "schedule" / "日程.txt"
    budget = root / case_dir(w.number) / "budget" / "予算.txt"
    schedule.write_bytes(b"reviewer notes")  # the reviewer may not write: reported once
    report = sync()
    assert report.blocked == [f"{case_dir(w.number)}/schedule/日程.txt"]
    assert report.uploaded == []
    assert sync().blocked == []
    assert len(titles(w.drafter, w.case_id)) == 2

    w.sup.transition(w.case_id, "evaluation")  # the reviewer loses both
    report = sync()
    assert report.removed == [f"{case_dir(w.number)}/budget/予算.txt"]
    assert len(report.quarantined) == 1
    assert not budget.exists()
    assert not schedule.exists()
    moved = root / report.quarantined[0]
    assert moved.read_bytes() == b"reviewer notes"
    assert moved.parent == root / ".kinko" / "quarantine"
    lines = status_lines(root)
    assert "quarantined: 1" in lines
    assert any(moved.name in line for line in lines)


def test_crash_after_commit_does_not_duplicate(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    doc = w.drafter.create_document(w.case_id, "proposal", "提案.txt", b"v1")["id"]
    w.sync()
    (w.folder("proposal") / "提案.txt").write_bytes(b"v2 local")
    (w.folder("proposal") / "新規.txt").write_bytes(b"new")

    real = State.complete_upload

    def crash(self: State, upload_id: int, synced: object) -> None:
        raise RuntimeError("killed after the server answered")

    monkeypatch.setattr(State, "complete_upload", crash)
    with pytest.raises(RuntimeError), w.engine() as eng:
        eng.run_once()
    assert versions(w.drafter, doc) == [1, 2]  # the server has it, the state does not
    assert "pending uploads: 2" in status_lines(w.root)

    monkeypatch.setattr(State, "complete_upload", real)
    w.sync()
    w.sync()
    assert versions(w.drafter, doc) == [1, 2]
    docs = titles(w.drafter, w.case_id)
    assert set(docs) == {"提案.txt", "新規.txt"}
    assert versions(w.drafter, docs["新規.txt"]) == [1]
    assert "pending uploads: 0" in status_lines(w.root)


def test_server_down_queues_and_retries(world: World, tmp_path: Path) -> None:
    w = world
    w.sync()
    (w.folder("schedule")).mkdir(parents=True, exist_ok=True)
    (w.folder("schedule") / "later.txt").write_bytes(b"queued")
    dead = KinkoClient("http://127.0.0.1:9", "x", timeout=2)
    with SyncEngine(w.root, dead, purpose=PURPOSE) as eng:
        report = eng.run_once()
    dead.close()
    assert report.errors
    assert not report.in_step
    assert any(
        line.startswith("last error: ") and line[12:] != "-" for line in status_lines(w.root)
    )
    report = w.sync()
    assert report.uploaded == [f"{case_dir(w.number)}/schedule/later.txt"]


def test_cli_once_and_status(world: World) -> None:
    w = world
    w.drafter.create_document(w.case_id, "specification", "spec.md", b"# spec")
    token_file = w.root.parent / "token"
    token_file.write_text(w.drafter.http.headers["Authorization"][7:])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KINKO_TOKEN", None)
    base = [sys.executable, "-m", "vault.cli.main", "sync"]
    res = subprocess.run(
        [*base, str(w.root), "--server", w.server.base_url, "--once",
         "--token-file", str(token_file), "--purpose", PURPOSE],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "in step" in res.stdout
    got = (w.folder("specification") / "spec.md").read_bytes()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(b"# spec").hexdigest()

    res = subprocess.run(
        [*base, "status", str(w.root)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "pending uploads: 0" in res.stdout
    assert "conflicts: 0" in res.stdout
    assert "quarantined: 0" in res.stdout
    assert "last error: -" in res.stdout

    res = subprocess.run(
        [*base, "status", str(w.root.parent / "nowhere")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 1
    assert "not a sync folder" in res.stdout
    assert not (w.root.parent / "nowhere").exists()


def test_polling_an_unchanged_vault_is_conditional(world: World) -> None:
    """A running client asks with If-None-Match: no body, no audit event while nothing changes."""
    w = world
    w.drafter.create_document(w.case_id, "schedule", "日程.txt", b"v1")

    def manifest_events() -> int:
        events = w.auditor.audit_events(actor=w.drafter_name, action="sync.manifest", limit=1000)[
            "events"
        ]
        return len(events)

    with w.engine() as eng:
        assert not eng.run_once().errors
        after_first = manifest_events()
        for _ in range(3):
            report = eng.run_once()
            assert not report.errors
            assert report.downloaded == []
        assert manifest_events() == after_first
        w.drafter.create_document(w.case_id, "schedule", "日程2.txt", b"new")
        report = eng.run_once()
        assert report.downloaded == [f"{case_dir(w.number)}/schedule/日程2.txt"]
        assert manifest_events() == after_first + 1


def test_transfers_are_reported_for_the_progress_bar(world: World) -> None:
    w = world
    body = b"x" * (3 * (1 << 20) + 5)
    w.drafter.create_document(w.case_id, "proposal", "big.bin", body)
    moved: list[tuple[str, int, bool]] = []
    with w.engine() as eng:
        eng.on_transfer = lambda path, n, done: moved.append((path, n, done))
        assert not eng.run_once().errors
    rel = f"{case_dir(w.number)}/proposal/big.bin"
    assert sum(n for p, n, _ in moved if p == rel) == len(body)
    assert (rel, 0, True) in moved


# -- the folder's purpose -------------------------------------------------------------------


def _sync_cli(w: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
    token = w.drafter.http.headers["Authorization"][7:]
    env.update({"PYTHONPATH": str(ROOT), "KINKO_TOKEN": token})
    return subprocess.run(
        [sys.executable, "-m", "vault.cli.main", "sync", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _read_purposes(w: World) -> list[str]:
    events = w.auditor.audit_events(actor=w.drafter_name, action="document.read", limit=1000)
    return [e["purpose"] for e in events["events"] if e["decision"] == "allow"]


def test_cli_without_a_purpose_refuses_before_asking_the_server(world: World) -> None:
    w = world
    w.drafter.create_document(w.case_id, "specification", "仕様書.txt", b"spec")
    manifests = len(w.auditor.audit_events(actor=w.drafter_name, action="sync.manifest")["events"])
    res = _sync_cli(w, str(w.root), "--server", w.server.base_url, "--once")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    (line,) = res.stderr.splitlines()
    assert line.startswith("Error: ")
    assert "--purpose" in line
    assert "閲覧目的" in line
    # Nothing was made up, asked or written: no manifest request, no read, no state.
    after = len(w.auditor.audit_events(actor=w.drafter_name, action="sync.manifest")["events"])
    assert after == manifests
    assert _read_purposes(w) == []
    assert not w.root.exists()

    for blank in ("", "   ", "line one\nline two"):
        res = _sync_cli(w, str(w.root), "--server", w.server.base_url, "--once", "--purpose", blank)
        assert res.returncode == 2, (blank, res.stdout + res.stderr)
        assert len(res.stderr.splitlines()) == 1, res.stderr
        assert res.stderr.startswith("Error: --purpose")
    assert not w.root.exists()


def test_cli_purpose_is_saved_reused_and_replaced(world: World) -> None:
    w = world
    base = [str(w.root), "--server", w.server.base_url, "--once"]
    w.drafter.create_document(w.case_id, "specification", "一.txt", b"1")
    res = _sync_cli(w, *base, "--purpose", "起案作業 / drafting")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "purpose for" in res.stdout
    assert _read_purposes(w) == ["起案作業 / drafting"]
    status = _sync_cli(w, "status", str(w.root))
    assert status.returncode == 0, status.stderr
    assert "purpose: 起案作業 / drafting" in status.stdout.splitlines()

    # The next run without --purpose reads with the saved one, and says nothing about it.
    w.drafter.create_document(w.case_id, "specification", "二.txt", b"2")
    res = _sync_cli(w, *base)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "purpose for" not in res.stdout
    assert _read_purposes(w) == ["起案作業 / drafting"] * 2

    # A new --purpose replaces it, for this run and the ones after.
    w.drafter.create_document(w.case_id, "specification", "三.txt", b"3")
    res = _sync_cli(w, *base, "--purpose", "評価準備 / preparing the evaluation")
    assert res.returncode == 0, res.stdout + res.stderr
    w.drafter.create_document(w.case_id, "specification", "四.txt", b"4")
    res = _sync_cli(w, *base)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _read_purposes(w)[2:] == ["評価準備 / preparing the evaluation"] * 2
    status = _sync_cli(w, "status", str(w.root))
    assert "purpose: 評価準備 / preparing the evaluation" in status.stdout.splitlines()
