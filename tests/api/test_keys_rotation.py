"""Master key rotation and crypto-shredding, end to end against a real server.

``kinko keys rotate`` runs as a separate process on the data directory while the server keeps
serving reads; ``kinko case shred`` likewise.  A KMS variant runs against moto's KMS over HTTP.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, KinkoServer, make_server
from kms_support import (  # noqa: F401  (the fixture is found by pytest through the import)
    _kms_endpoint,
    kms_client,
    kms_env,
    new_kms_key,
)

from clients import KinkoClient, KinkoHTTPError

PURPOSE = "確認 / check"


def kinko(srv: KinkoServer, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "vault.cli.main", *args, "--data-dir", str(srv.data_dir)]
    return subprocess.run(
        argv, env=srv.env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def status(srv: KinkoServer) -> dict[str, Any]:
    res = kinko(srv, "keys", "status", "--json")
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout))


def audit_events(srv: KinkoServer, action: str) -> list[dict[str, Any]]:
    res = kinko(srv, "audit", "query", "--action", action, "--json", "--limit", "0")
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


# Every event carries the fields of SPEC §5 (plus ``target``), whoever wrote it.
EVENT_FIELDS = {
    "seq",
    "time",
    "actor",
    "action",
    "decision",
    "reason",
    "case_id",
    "document_id",
    "version",
    "class",
    "purpose",
    "target",
    "client",
    "request_id",
}


def assert_cli_event(event: dict[str, Any], user_agent: str) -> None:
    """An event written by a ``kinko`` command: no actor, no network client, a cli- request id."""
    assert set(event) >= EVENT_FIELDS, EVENT_FIELDS - set(event)
    assert event["actor"] is None
    assert event["client"] == {"ip": None, "user_agent": user_agent, "device": None}
    assert event["request_id"].startswith("cli-")


def seed(officer: KinkoClient, prefix: str, n: int) -> dict[str, bytes]:
    docs: dict[str, bytes] = {}
    for i in range(n):
        case = officer.create_case(f"{prefix}-{i}", f"案件 {prefix} {i}")
        content = f"{prefix} content {i}".encode() * 50
        docs[officer.create_document(case["id"], "budget", f"予算 {i}", content)["id"]] = content
    return docs


class Reader(threading.Thread):
    """Reads every document over and over (and now and then creates a case) until stopped."""

    def __init__(self, officer: KinkoClient, docs: dict[str, bytes], prefix: str) -> None:
        super().__init__(daemon=True)
        self.officer, self.docs, self.prefix = officer, docs, prefix
        self.stop = threading.Event()
        self.reads = 0
        self.created: dict[str, bytes] = {}
        self.errors: list[str] = []

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                for doc_id, content in list(self.docs.items()) + list(self.created.items()):
                    assert self.officer.read(doc_id, PURPOSE) == content
                    self.reads += 1
                if i % 5 == 0:
                    # Cases created during the rotation are wrapped by whichever key the
                    # server holds as current at that moment: the stragglers.
                    self.created.update(seed(self.officer, f"{self.prefix}-r{i}", 1))
            except Exception as exc:  # recorded, the test fails below
                self.errors.append(repr(exc))
            i += 1


@pytest.mark.slow
def test_local_rotation_while_the_server_reads(tmp_path: Path) -> None:
    srv = make_server(tmp_path)
    srv.start()
    try:
        officer = srv.user("rot-officer", ["procurement"])
        docs = seed(officer, "ROT", 6)
        before = status(srv)
        assert before["provider"] == "local"
        [old] = before["keys"]
        assert old["current"]
        assert old["cases"] == 6

        reader = Reader(officer, docs, "ROTR")
        reader.start()
        time.sleep(0.5)
        res = kinko(srv, "keys", "rotate", "--grace", "0.5", "--batch-size", "2")
        time.sleep(0.5)
        reader.stop.set()
        reader.join(30)
        assert res.returncode == 0, res.stdout + res.stderr
        assert reader.errors == []
        assert reader.reads > 0
        assert reader.created  # cases created while the rotation ran

        after = status(srv)
        [new] = after["keys"]  # the old version is gone: nothing needs it any more
        assert new["id"] != old["id"]
        assert new["current"]
        assert new["cases"] == 6 + len(reader.created)

        key_file = srv.data_dir / "master.key"
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        assert [k["id"] for k in json.loads(key_file.read_text())["keys"]] == [new["id"]]
        [event] = audit_events(srv, "keys.rotate")
        assert event["target"] == new["id"]
        assert event["decision"] == "allow"
        # At least the six seeded cases; those created meanwhile may already use the new key.
        assert int(event["reason"].removeprefix("rewrapped=")) >= 6
        assert_cli_event(event, "kinko keys rotate")

        # The running server keeps working, also for new cases (wrapped under the new key).
        docs.update(reader.created)
        docs.update(seed(officer, "ROTAFTER", 1))
        for doc_id, content in docs.items():
            assert officer.read(doc_id, PURPOSE) == content
        assert status(srv)["keys"][0]["cases"] == 6 + len(reader.created) + 1

        srv.close_clients()
        srv.stop()
        srv.start()
        officer = srv.user("rot-officer", ["procurement"])
        for doc_id, content in docs.items():
            assert officer.read(doc_id, PURPOSE) == content
    finally:
        srv.close_clients()
        srv.stop()


@pytest.mark.slow
def test_crypto_shredding(tmp_path: Path) -> None:
    srv = make_server(tmp_path)
    srv.start()
    try:
        officer = srv.user("shred-officer", ["procurement"])
        sup = srv.user("shred-sup", [])
        closed = officer.create_case("SHRED-1", "閉じた案件")
        open_case = officer.create_case("SHRED-2", "進行中")
        gone_doc = officer.create_document(closed["id"], "budget", "予算", b"secret budget")["id"]
        kept_doc = officer.create_document(open_case["id"], "budget", "予算", b"kept")["id"]
        officer.finalize(gone_doc, 1)
        srv.admin.set_member(closed["id"], "shred-sup", ["supervisor"])
        sup.transition(closed["id"], "closed")
        assert gone_doc in [d["id"] for d in officer.public_documents()]

        res = kinko(srv, "case", "shred", closed["id"])
        assert res.returncode == 2
        assert "--confirm" in res.stderr
        res = kinko(srv, "case", "shred", "SHRED-2", "--confirm")
        assert res.returncode == 2
        assert "closed" in res.stderr
        assert officer.read(gone_doc, PURPOSE) == b"secret budget"

        res = kinko(srv, "case", "shred", "SHRED-1", "--confirm", "--delete-blobs")
        assert res.returncode == 0, res.stderr
        with pytest.raises(KinkoHTTPError) as err:
            officer.read(gone_doc, PURPOSE)
        assert (err.value.status, err.value.code) == (410, "case_shredded")
        with pytest.raises(KinkoHTTPError) as err:
            officer.document(gone_doc)
        assert err.value.status == 410
        # The case itself stays listed (its title is gone); its document list is 410.
        assert officer.case(closed["id"])["title"] is None
        with pytest.raises(KinkoHTTPError) as err:
            officer.documents(closed["id"])
        assert (err.value.status, err.value.code) == (410, "case_shredded")
        titles = {c["number"]: c["title"] for c in officer._json("GET", "/api/v1/cases")["cases"]}
        assert titles == {"SHRED-1": None, "SHRED-2": "進行中"}
        # The public listing skips the shredded case's disclosed documents.
        assert gone_doc not in [d["id"] for d in officer.public_documents()]
        # Other cases are unaffected.
        assert officer.read(kept_doc, PURPOSE) == b"kept"
        [event] = audit_events(srv, "case.shred")
        assert event["case_id"] == closed["id"]
        assert event["decision"] == "allow"
        assert event["reason"] == "ok"
        assert event["target"] is None
        assert_cli_event(event, "kinko case shred")
        # A second shred is refused; status no longer counts the shredded case.
        assert kinko(srv, "case", "shred", "SHRED-1", "--confirm").returncode == 2
        assert status(srv)["keys"][0]["cases"] == 1
        # Still refused after a restart (nothing was cached but the tombstone is durable).
        srv.close_clients()
        srv.stop()
        srv.start()
        officer = srv.user("shred-officer", ["procurement"])
        with pytest.raises(KinkoHTTPError) as err:
            officer.read(gone_doc, PURPOSE)
        assert err.value.status == 410
        assert officer.read(kept_doc, PURPOSE) == b"kept"
    finally:
        srv.close_clients()
        srv.stop()


@pytest.mark.slow
def test_kms_rotation_to_another_kms_key(tmp_path: Path, kms_endpoint: str) -> None:
    client = kms_client()
    first, second = new_kms_key(client), new_kms_key(client)
    srv = make_server(
        tmp_path,
        KINKO_KEY_PROVIDER="aws-kms",
        KINKO_KMS_KEY_ID=first,
        **kms_env(kms_endpoint),
    )
    srv.start()
    try:
        officer = srv.user("kms-officer", ["procurement"])
        docs = seed(officer, "KMS", 3)
        [old] = status(srv)["keys"]
        assert old["id"].endswith(first)
        assert old["cases"] == 3

        reader = Reader(officer, docs, "KMSR")
        reader.start()
        res = kinko(srv, "keys", "rotate", "--kms-key-id", second, "--grace", "0.2")
        reader.stop.set()
        reader.join(30)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "KINKO_KMS_KEY_ID" in res.stdout
        assert reader.errors == []

        srv.close_clients()
        srv.stop()
        srv.env["KINKO_KMS_KEY_ID"] = second
        srv.start()
        # A case created by the old server after the rotation's last scan is a straggler:
        # status names it and a second rotate run re-wraps it.
        officer = srv.user("kms-officer", ["procurement"])
        assert kinko(srv, "keys", "rotate", "--kms-key-id", second, "--grace", "0").returncode == 0
        rows = status(srv)["keys"]
        assert [r["id"].endswith(second) for r in rows] == [True]
        assert rows[0]["cases"] == 3 + len(reader.created)
        # The old KMS key is not needed any more: disable it, reads still work.
        client.disable_key(KeyId=first)
        docs.update(reader.created)
        for doc_id, content in docs.items():
            assert officer.read(doc_id, PURPOSE) == content
        assert len(audit_events(srv, "keys.rotate")) == 2
    finally:
        srv.close_clients()
        srv.stop()


@pytest.mark.slow
def test_kms_server_refuses_to_start_with_a_missing_key(tmp_path: Path, kms_endpoint: str) -> None:
    srv = make_server(
        tmp_path,
        KINKO_KEY_PROVIDER="aws-kms",
        KINKO_KMS_KEY_ID="11111111-2222-3333-4444-555555555555",
        **kms_env(kms_endpoint),
    )
    with pytest.raises(RuntimeError, match="not usable"):
        srv.start(timeout=20)
    srv.stop()
