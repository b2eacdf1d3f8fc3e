"""The tamper-evident log over HTTP and the CLI: checkpoints, proofs, export and verify."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import KinkoServer, make_server, run_kinko
from vault.audit.merkle import (
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from vault.audit.note import NoteVerifier, parse_checkpoint


def kinko(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = run_kinko(*args, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def busy(server: KinkoServer) -> KinkoServer:
    """A server with some history: users, a case, documents, reads and refusals."""
    officer = server.user("log-officer", ["procurement"])
    case = officer.create_case("LOG-1", "監査ログ")
    for i in range(5):
        doc = officer.create_document(case["id"], "budget", f"予算{i}", b"x" * (i + 1))
        officer.read(doc["id"], "確認")
        officer.http.get(f"/api/v1/documents/{doc['id']}/content")  # 400: no purpose
    server.user("log-auditor", ["auditor"])
    return server


def _all_events(auditor: object) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    cursor = None
    while True:
        page = auditor.audit_events(limit=1000, cursor=cursor)  # type: ignore[attr-defined]
        events += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def _canonical(ev: dict[str, object]) -> bytes:
    return json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_checkpoint_from_the_cli_is_what_the_api_serves(busy: KinkoServer) -> None:
    auditor = busy.user("log-auditor")
    cut = kinko("audit", "checkpoint", "--data-dir", str(busy.data_dir)).stdout
    served = auditor.http.get("/api/v1/audit/checkpoint")
    assert served.status_code == 200
    assert served.text == cut
    vkey = auditor.http.get("/api/v1/audit/public-key").text.strip()
    assert vkey == kinko("audit", "public-key", "--data-dir", str(busy.data_dir)).stdout.strip()
    verifier = NoteVerifier.from_verifier_key(vkey)
    cp = parse_checkpoint(verifier.verify(cut))
    assert cp.origin == verifier.name
    assert cp.origin.startswith("kinko/")
    # The signed root is the RFC 6962 root of exactly the first `size` events' canonical bytes.
    events = _all_events(auditor)
    leaves = [leaf_hash(_canonical(ev)) for ev in events[: cp.size]]
    assert len(leaves) == cp.size
    assert root_from_leaf_hashes(leaves) == cp.root


def test_inclusion_and_consistency_proofs_verify(busy: KinkoServer) -> None:
    auditor = busy.user("log-auditor")
    events = _all_events(auditor)
    leaves = [leaf_hash(_canonical(ev)) for ev in events]
    size = len(leaves)
    root = root_from_leaf_hashes(leaves)
    for seq in (0, 1, size // 2, size - 1):
        proof = auditor.http.get(
            "/api/v1/audit/proofs/inclusion", params={"seq": seq, "size": size}
        ).json()
        assert proof["leaf_index"] == seq
        assert proof["tree_size"] == size
        verify_inclusion(
            leaves[seq], seq, size, [base64.b64decode(h) for h in proof["hashes"]], root
        )
    for old in (1, 7, size // 2, size):
        proof = auditor.http.get(
            "/api/v1/audit/proofs/consistency", params={"old": old, "new": size}
        ).json()
        old_root = root_from_leaf_hashes(leaves[:old])
        verify_consistency(
            old, size, old_root, root, [base64.b64decode(h) for h in proof["hashes"]]
        )
    bad = auditor.http.get("/api/v1/audit/proofs/inclusion", params={"seq": size, "size": size})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_proof_request"
    drafter = busy.user("log-officer")
    assert drafter.http.get("/api/v1/audit/checkpoint").status_code == 403


def test_export_verifies_offline_and_a_modified_entry_is_named(
    busy: KinkoServer, tmp_path: Path
) -> None:
    kinko("audit", "checkpoint", "--data-dir", str(busy.data_dir))
    out = tmp_path / "bundle"
    kinko("audit", "export", "--out", str(out), "--data-dir", str(busy.data_dir))
    key = tmp_path / "verifier.key"
    key.write_text(kinko("audit", "public-key", "--data-dir", str(busy.data_dir)).stdout)
    ok = kinko("audit", "verify", str(out), "--key", str(key))
    assert "OK" in ok.stdout
    lines = (out / "events.jsonl").read_bytes().splitlines(keepends=True)
    target = next(i for i, ln in enumerate(lines) if b'"document.read"' in ln)
    ev = json.loads(lines[target])
    ev["purpose"] = "changed afterwards"
    lines[target] = _canonical(ev) + b"\n"
    (out / "events.jsonl").write_bytes(b"".join(lines))
    bad = kinko("audit", "verify", str(out), "--key", str(key), check=False)
    assert bad.returncode == 1
    assert "modified" in bad.stdout or "bad_checkpoint_root" in bad.stdout
    assert "FAILED" in bad.stdout


def test_live_verification_and_query_cli(busy: KinkoServer) -> None:
    live = kinko("audit", "verify", "--data-dir", str(busy.data_dir))
    assert "OK" in live.stdout
    rows = kinko(
        "audit",
        "query",
        "--data-dir",
        str(busy.data_dir),
        "--action",
        "document.read",
        "--decision",
        "deny",
        "--json",
        "--limit",
        "0",
    ).stdout.splitlines()
    events = [json.loads(r) for r in rows]
    assert len(events) == 5
    assert {e["reason"] for e in events} == {"purpose_required"}


def test_signing_key_is_a_private_file_not_in_the_database(busy: KinkoServer) -> None:
    key_file = busy.data_dir / "audit-signing.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    # "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>"; base64 itself may hold "+".
    secret = key_file.read_text().strip().split("+", 4)[4]
    seed = base64.b64decode(secret)[1:]
    assert len(seed) == 32
    for db in busy.data_dir.glob("*.db*"):
        raw = db.read_bytes()
        assert secret.encode() not in raw
        assert seed not in raw


def test_checkpoints_are_cut_periodically(tmp_path: Path) -> None:
    srv = make_server(tmp_path, KINKO_CHECKPOINT_INTERVAL_SECONDS="1")
    srv.start()
    try:
        auditor = srv.user("tick-auditor", ["auditor"])
        deadline = time.monotonic() + 10
        sizes = set()
        while time.monotonic() < deadline and len(sizes) < 2:
            auditor.me()  # keep events arriving
            resp = auditor.http.get("/api/v1/audit/checkpoint")
            if resp.status_code == 200:
                sizes.add(parse_checkpoint(resp.text.rsplit("\n\n", 1)[0] + "\n").size)
            time.sleep(0.2)
        assert len(sizes) >= 2, "checkpoints did not advance while events arrived"
    finally:
        srv.close_clients()
        srv.stop()


def _export_and_verify(srv: KinkoServer, tmp_path: Path, name: str) -> tuple[Path, dict]:
    out = tmp_path / name
    kinko("audit", "export", "--out", str(out), "--data-dir", str(srv.data_dir))
    key = tmp_path / "verifier.key"
    key.write_text(kinko("audit", "public-key", "--data-dir", str(srv.data_dir)).stdout)
    report = json.loads(kinko("audit", "verify", str(out), "--key", str(key), "--json").stdout)
    return out, report


@pytest.mark.slow
def test_clean_shutdown_cuts_a_checkpoint(tmp_path: Path) -> None:
    """A server that lives less than one checkpoint interval still leaves its events signed.

    The periodic cut comes at the earliest 10 s after start-up (the interval's upper bound), so
    a server stopped sooner can only have a checkpoint if ``AuditLog.stop`` cuts one.  The cut
    appends its own audit.checkpoint event after the size it signs, so that one event is the
    only unverified tail there can be: the next checkpoint would cover it, and none comes.
    """
    srv = make_server(tmp_path)
    born = time.monotonic()
    srv.start()
    try:
        officer = srv.user("stop-officer", ["procurement"])
        case = officer.create_case("STOP-1", "停止時のチェックポイント")
        doc = officer.create_document(case["id"], "budget", "予算", b"amount")
        officer.read(doc["id"], "確認")
        officer.http.get(f"/api/v1/documents/{doc['id']}/content")  # 400: no purpose
        srv.close_clients()
        proc = srv.proc
        assert proc is not None
        srv.stop()  # SIGTERM: uvicorn's lifespan shutdown closes the vault
        lived = time.monotonic() - born
        # uvicorn re-raises SIGTERM once its lifespan shutdown has completed.
        assert proc.returncode in (0, -signal.SIGTERM), srv.log()
        assert "Application shutdown complete" in srv.log()
    finally:
        srv.close_clients()
        srv.stop()
    # Had the server lived a whole interval, a periodic cut could stand in for the one at
    # shutdown and this test would prove nothing.
    assert lived < 10, f"the server lived {lived:.1f} s; the test needs less than 10 s"
    assert "could not cut" not in srv.log()

    bundle, report = _export_and_verify(srv, tmp_path, "bundle")
    assert report["ok"], report
    assert report["checkpoints"] == 1
    assert report["verified_size"] == report["event_count"] - 1
    assert report["unverified_tail"] == 1
    last = json.loads((bundle / "events.jsonl").read_bytes().splitlines()[-1])
    assert last["action"] == "audit.checkpoint"
    assert last["reason"].startswith(f"size={report['verified_size']} ")
    reads = [
        json.loads(line)
        for line in (bundle / "events.jsonl").read_bytes().splitlines()
        if b'"document.read"' in line
    ]
    assert {(e["decision"], e["reason"]) for e in reads} == {
        ("allow", "ok"),
        ("deny", "purpose_required"),
    }
    assert max(e["seq"] for e in reads) < report["verified_size"]

    # A restart that serves nothing adds no event, so its shutdown has nothing to sign.
    srv.start()
    srv.stop()
    _, again = _export_and_verify(srv, tmp_path, "again")
    assert again["ok"], again
    assert (again["checkpoints"], again["event_count"]) == (1, report["event_count"])
