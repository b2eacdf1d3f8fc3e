"""More of the sync client against a real server: two clients in conflict, lost read while
watching, SIGKILL mid-upload, and ``--restore`` through the CLI."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, KinkoServer

from clients import KinkoClient
from clients.sync.engine import PassReport, SyncEngine
from clients.sync.naming import case_dir
from clients.sync.state import State
from clients.sync.watch import watch

PURPOSE = "sync more test"
CONFLICT_RE = re.compile(r"^報告 \(conflict (\S+) (\d{8}-\d{6})\)\.txt$")


@dataclass
class Case:
    server: KinkoServer
    drafter: KinkoClient
    token: str
    sup: KinkoClient
    case_id: str
    number: str

    def folder(self, root: Path, cls: str) -> Path:
        return root / case_dir(self.number) / cls

    def sync(self, root: Path, token: str | None = None, **kw: bool) -> PassReport:
        client = self.server.client(token or self.token)
        with SyncEngine(root, client, purpose=PURPOSE) as eng:
            report = eng.run_once(**kw)
        assert not report.errors, report.errors
        return report

    def docs(self) -> dict[str, dict[str, object]]:
        return {str(d["title"]): d for d in self.drafter.documents(self.case_id)}


@pytest.fixture
def case(server: KinkoServer) -> Case:
    tag = uuid.uuid4().hex[:8]
    drafter = server.user(f"sm-drafter-{tag}", ["procurement"])
    sup_name = f"sm-sup-{tag}"
    sup = server.user(sup_name)
    number = f"SM-{tag}"
    case_id = drafter.create_case(number, "同期追加")["id"]
    server.admin.set_member(case_id, sup_name, ["supervisor"])
    token = drafter.http.headers["Authorization"][7:]
    return Case(server, drafter, token, sup, case_id, number)


def until(cond: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def cli_env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
    env.update({"PYTHONPATH": str(ROOT), "KINKO_TOKEN": token})
    return env


def cli(args: list[str], token: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vault.cli.main", "sync", *args],
        env=cli_env(token), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".kinko-tmp-")]


def test_two_clients_edit_the_same_file(case: Case, tmp_path: Path) -> None:
    c = case
    doc = c.drafter.create_document(c.case_id, "proposal", "報告.txt", b"base")["id"]
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    c.sync(root_a)
    c.sync(root_b)
    file_a = c.folder(root_a, "proposal") / "報告.txt"
    file_b = c.folder(root_b, "proposal") / "報告.txt"
    assert file_a.read_bytes() == file_b.read_bytes() == b"base"
    with State.open(root_b) as st:
        device_b = st.device_id

    file_a.write_bytes(b"edit from A")
    file_b.write_bytes(b"edit from B, longer")
    report = c.sync(root_a)
    assert report.uploaded == [f"{case_dir(c.number)}/proposal/報告.txt"]
    report = c.sync(root_b)
    assert len(report.conflicts) == 1

    # B: the server's version under the original name, its own edit as a conflict copy.
    assert file_b.read_bytes() == b"edit from A"
    copies = [p for p in c.folder(root_b, "proposal").iterdir() if p.name != "報告.txt"]
    assert len(copies) == 1
    m = CONFLICT_RE.match(copies[0].name)
    assert m, copies[0].name
    assert m.group(1) == device_b
    assert copies[0].read_bytes() == b"edit from B, longer"

    # The copy is a new document of the same case and class; the original has A's version.
    docs = c.docs()
    assert set(docs) == {"報告.txt", copies[0].name}
    copy_doc = docs[copies[0].name]
    assert copy_doc["class"] == "proposal"
    assert c.drafter.document(str(copy_doc["id"]))["case_id"] == c.case_id
    assert c.drafter.read(str(copy_doc["id"]), "check") == b"edit from B, longer"
    assert [v["version"] for v in c.drafter.document(doc)["versions"]] == [1, 2]
    assert c.drafter.read(doc, "check") == b"edit from A"

    # A syncs again: both files there too; nothing lost, nothing else moves.
    report = c.sync(root_a)
    assert report.downloaded == [f"{case_dir(c.number)}/proposal/{copies[0].name}"]
    assert file_a.read_bytes() == b"edit from A"
    assert (c.folder(root_a, "proposal") / copies[0].name).read_bytes() == b"edit from B, longer"
    for root in (root_a, root_b):
        report = c.sync(root)
        assert (report.uploaded, report.downloaded, report.conflicts) == ([], [], [])
    assert len(c.docs()) == 2


def test_lost_read_while_watching(case: Case, tmp_path: Path) -> None:
    c = case
    tag = uuid.uuid4().hex[:8]
    rev_name = f"sm-rev-{tag}"
    rev = c.server.user(rev_name)
    c.server.admin.set_member(c.case_id, rev_name, ["reviewer"])
    c.drafter.create_document(c.case_id, "budget", "予算.txt", b"budget")
    c.drafter.create_document(c.case_id, "schedule", "日程.txt", b"schedule")
    c.sup.transition(c.case_id, "review")
    rev_token = rev.http.headers["Authorization"][7:]
    root = tmp_path / "rev"
    budget = c.folder(root, "budget") / "予算.txt"
    schedule = c.folder(root, "schedule") / "日程.txt"

    reports: list[PassReport] = []
    stop = threading.Event()
    failure: list[BaseException] = []
    client = c.server.client(rev_token)

    def run() -> None:
        try:
            with SyncEngine(root, client, purpose=PURPOSE) as engine:
                watch(
                    engine, poll_seconds=0.5, settle_seconds=0.2, rescan_seconds=30,
                    stop=stop, on_report=reports.append,
                )  # fmt: skip
        except BaseException as exc:  # reported by the test thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        until(lambda: budget.exists() and schedule.exists(), 5, "first download")
        schedule.write_bytes(b"reviewer notes")  # a class the reviewer may not write
        until(lambda: any(r.blocked for r in reports), 5, "the edit reported as blocked")

        c.sup.transition(c.case_id, "evaluation")  # the reviewer loses read on both
        start = time.monotonic()
        until(lambda: not budget.exists(), 5, "unchanged copy removed")
        until(lambda: not schedule.exists(), 5 - (time.monotonic() - start), "edit moved away")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert not failure, failure
    assert not any(r.errors for r in reports), [r.errors for r in reports]
    quarantine = root / ".kinko" / "quarantine"
    moved = list(quarantine.iterdir())
    assert len(moved) == 1
    assert moved[0].read_bytes() == b"reviewer notes"

    res = cli(["status", str(root)], rev_token, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "quarantined: 1" in res.stdout
    assert moved[0].name in res.stdout


def test_sigkill_mid_upload_then_restart(case: Case, tmp_path: Path) -> None:
    c = case
    root = tmp_path / "kill"
    folder = c.folder(root, "specification")
    folder.mkdir(parents=True)
    big = folder / "大きい.bin"
    with big.open("wb") as f:
        for i in range(64):
            f.write(hashlib.sha256(str(i).encode()).digest() * (1 << 15))  # 1 MiB each
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    args = [str(root), "--server", c.server.base_url, "--once", "--purpose", PURPOSE]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vault.cli.main", "sync", *args],
        env=cli_env(c.token), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # The outbox snapshot is complete (64 MiB) just before the request starts.
        def sending() -> bool:
            return (
                any(
                    p.stat().st_size >= big.stat().st_size
                    for p in (root / ".kinko").glob(".kinko-tmp-outbox-*")
                )
                or proc.poll() is not None
            )

        until(sending, 30, "the upload started")
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL  # killed, not finished

    res = cli(args, c.token)
    assert res.returncode == 0, res.stdout + res.stderr
    res = cli(args, c.token)
    assert res.returncode == 0, res.stdout + res.stderr
    docs = [d for d in c.drafter.documents(c.case_id) if d["title"] == "大きい.bin"]
    assert len(docs) == 1
    meta = c.drafter.document(str(docs[0]["id"]))
    assert len(meta["versions"]) == 1
    assert meta["versions"][0]["sha256"] == digest
    assert temp_files(root) == []
    assert big.is_file()


def test_cli_restore_brings_back_a_deleted_file(case: Case, tmp_path: Path) -> None:
    c = case
    c.drafter.create_document(c.case_id, "schedule", "日程.txt", b"restore me")
    root = tmp_path / "restore"
    args = [str(root), "--server", c.server.base_url, "--once", "--purpose", PURPOSE]
    res = cli(args, c.token)
    assert res.returncode == 0, res.stdout + res.stderr
    path = c.folder(root, "schedule") / "日程.txt"
    assert path.read_bytes() == b"restore me"
    path.unlink()
    res = cli(args, c.token)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not path.exists()
    res = cli([*args, "--restore"], c.token)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "downloaded: " in res.stdout
    assert path.read_bytes() == b"restore me"
