"""The live watcher (``clients.sync.watch.watch``) against a real server and a real folder."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import KinkoServer

from clients import KinkoClient
from clients.sync.engine import PassReport, SyncEngine
from clients.sync.naming import case_dir
from clients.sync.watch import backoff_seconds, watch

PURPOSE = "watch test"
SETTLE = 0.3


@dataclass
class Live:
    server: KinkoServer
    drafter: KinkoClient
    token: str
    case_id: str
    number: str
    root: Path
    client: KinkoClient | None = None
    reports: list[tuple[float, PassReport]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def folder(self, cls: str) -> Path:
        return self.root / case_dir(self.number) / cls

    def start(self, poll: float = 30.0, rescan: float = 60.0) -> None:
        client = self.server.client(self.token)
        self.client = client

        def run() -> None:
            # The engine's SQLite state belongs to the thread that opened it.
            with SyncEngine(self.root, client, purpose=PURPOSE) as engine:
                watch(
                    engine, poll_seconds=poll, settle_seconds=SETTLE, rescan_seconds=rescan,
                    stop=self.stop, on_report=lambda r: self.reports.append((time.monotonic(), r)),
                )  # fmt: skip

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
            assert not self.thread.is_alive()

    def quiet(self, for_seconds: float = 4 * SETTLE, timeout: float = 10.0) -> None:
        """Wait until no pass has ended for ``for_seconds`` (and at least one has run)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.reports and time.monotonic() - self.reports[-1][0] >= for_seconds:
                return
            time.sleep(0.05)
        raise AssertionError("the watcher never went quiet")

    def versions(self, doc_id: str, client: KinkoClient | None = None) -> list[int]:
        c = client or self.drafter
        return [v["version"] for v in c.document(doc_id)["versions"]]

    def titles(self) -> set[str]:
        return {d["title"] for d in self.drafter.documents(self.case_id)}


def until(cond: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``cond`` until true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def _live(server: KinkoServer, root: Path) -> Live:
    tag = uuid.uuid4().hex[:8]
    drafter = server.user(f"sw-drafter-{tag}", ["procurement"])
    number = f"SW-{tag}"
    case_id = drafter.create_case(number, "watch")["id"]
    token = drafter.http.headers["Authorization"][7:]
    return Live(server, drafter, token, case_id, number, root)


@pytest.fixture
def live(server: KinkoServer, tmp_path: Path) -> Iterator[Live]:
    lv = _live(server, tmp_path / "vault")
    try:
        yield lv
    finally:
        lv.close()


def test_backoff_schedule() -> None:
    assert [backoff_seconds(n) for n in range(8)] == [0, 1, 2, 4, 8, 15, 15, 15]


def test_remote_change_shows_up_within_5_s(live: Live) -> None:
    doc = live.drafter.create_document(live.case_id, "schedule", "plan.txt", b"v1")["id"]
    live.start(poll=2.0)
    path = live.folder("schedule") / "plan.txt"
    until(lambda: path.exists() and path.read_bytes() == b"v1", 5, "first download")
    live.drafter.put_content(doc, b"v2 from the server")
    until(lambda: path.read_bytes() == b"v2 from the server", 5, "remote new version")
    new = live.folder("schedule") / "new.txt"
    new.write_bytes(b"made locally")
    until(lambda: "new.txt" in live.titles(), 5, "local new file uploaded")


def _gedit(path: Path, data: bytes) -> None:
    tmp = path.parent / ".goutputstream-X1Y2Z3"
    tmp.write_bytes(b"")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _vim(path: Path, data: bytes) -> None:
    swp = path.parent / f".{path.name}.swp"
    swp.write_bytes(b"vim swap")
    backup = path.parent / f"{path.name}~"
    os.rename(path, backup)
    with path.open("wb") as f:
        f.write(data[:3])
        f.flush()
        f.write(data[3:])
    backup.unlink()
    swp.unlink()


def _libreoffice(path: Path, data: bytes) -> None:
    lock = path.parent / f".~lock.{path.name}#"
    lock.write_bytes(b"user,host")
    tmp = path.parent / "lu4821xk.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    lock.unlink()


@pytest.mark.parametrize("save", [_gedit, _vim, _libreoffice], ids=["gedit", "vim", "lo"])
def test_atomic_save_makes_one_version(live: Live, save: Callable[[Path, bytes], None]) -> None:
    doc = live.drafter.create_document(live.case_id, "proposal", "案.odt", b"v1")["id"]
    live.start()
    path = live.folder("proposal") / "案.odt"
    until(path.exists, 5, "first download")
    live.quiet()
    before = live.titles()

    save(path, b"saved by an editor")
    until(lambda: live.versions(doc) == [1, 2], 5, "the save uploaded")
    live.quiet()
    assert live.versions(doc) == [1, 2]
    assert live.drafter.read(doc, "check") == b"saved by an editor"
    assert live.titles() == before  # no temp, lock or backup file became a document
    assert not any(r.errors for _, r in live.reports)


def test_burst_of_writes_makes_one_version(live: Live) -> None:
    doc = live.drafter.create_document(live.case_id, "budget", "budget.csv", b"v1")["id"]
    live.start()
    path = live.folder("budget") / "budget.csv"
    until(path.exists, 5, "first download")
    live.quiet()
    for i in range(20):
        path.write_bytes(f"row {i}\n".encode() * (i + 1))
        time.sleep(0.005)
    until(lambda: live.versions(doc) == [1, 2], 5, "the burst uploaded")
    live.quiet()
    # Exactly one: no pass starts before the writes have been quiet for the settle time.
    assert live.versions(doc) == [1, 2]
    assert live.drafter.read(doc, "check") == b"row 19\n" * 20


@pytest.mark.slow
def test_server_down_then_back(fresh_server: KinkoServer, tmp_path: Path) -> None:
    srv = fresh_server
    lv = _live(srv, tmp_path / "vault")
    try:
        doc = lv.drafter.create_document(lv.case_id, "schedule", "日程.txt", b"v1")["id"]
        lv.start(poll=1.0)
        path = lv.folder("schedule") / "日程.txt"
        until(path.exists, 5, "first download")
        lv.quiet(for_seconds=0.2)

        srv.stop()
        path.write_bytes(b"edited while the server is down")
        (lv.folder("schedule") / "offline.txt").write_bytes(b"new while down")
        until(lambda: any(r.errors for _, r in lv.reports), 10, "a failed pass")
        time.sleep(3)  # a few failed passes: the backoff grows
        failed = sum(1 for _, r in lv.reports if r.errors)
        assert failed <= 4  # 1 + 2 + 4 s of backoff, not a pass every poll

        srv.start()  # on a new port: point the running engine's client at it
        assert lv.client is not None
        lv.client.http.base_url = srv.base_url
        lv.drafter = srv.client(lv.token)
        elapsed = until(
            lambda: lv.versions(doc) == [1, 2] and "offline.txt" in lv.titles(),
            20,
            "the queued edits after the restart",
        )
        assert elapsed <= 20
        time.sleep(2)  # two more passes: nothing is sent twice
        assert lv.versions(doc) == [1, 2]
        assert lv.drafter.read(doc, "check") == b"edited while the server is down"
        assert lv.titles() == {"日程.txt", "offline.txt"}
        assert not lv.reports[-1][1].errors
    finally:
        lv.close()
