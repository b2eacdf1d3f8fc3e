"""Mutation suite on REAL exported audit bundles: every tampering is named by the verifier.

One server (checkpoints every second) builds a history of users, a case, documents, reads with
a purpose and refusals; ``kinko audit checkpoint`` is cut between bursts of activity and the
first note it prints is kept as the auditor's trusted checkpoint. The bundle comes from
``kinko audit export`` and the key from ``kinko audit public-key``. Each test tampers with its
own copy and runs the real CLI, ``kinko audit verify DIR --key FILE [--trusted FILE] --json``.
The forgeries that need the signing key read the data directory's ``audit-signing.key``: they
model an insider who holds the key, which only ``--trusted`` can expose.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.audit_support import rewrite_history
from tests.conftest import KinkoServer, make_server, run_kinko
from vault.audit.bundle import checkpoint_filename
from vault.audit.note import Checkpoint, NoteSigner, format_checkpoint, parse_checkpoint

Report = dict[str, Any]


def kinko(*args: str) -> subprocess.CompletedProcess[str]:
    return run_kinko(*args)


def ok_run(*args: str) -> str:
    result = kinko(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def canonical(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Audit:
    server: KinkoServer
    bundle: Path  # the genuine export; tests copy it, never change it
    key: Path
    trusted: Path  # the earliest checkpoint the auditor cut and kept
    trusted_cp: Checkpoint
    signer: NoteSigner  # the server's real signing key (insider forgeries)
    cli_cuts: list[Checkpoint]


def _activity(srv: KinkoServer, burst: int, case_id: str) -> None:
    """One burst: documents, reads with a purpose, refusals, a failed login."""
    officer = srv.user("tamper-officer", ["procurement"])
    outsider = srv.user("tamper-outsider", [])
    workstation = srv.client(
        str(officer.http.headers["Authorization"]).removeprefix("Bearer "), device="WS-TAMPER-7"
    )
    for i in range(3):
        doc = officer.create_document(
            case_id, "budget", f"予算書 {burst}-{i}", f"金額 {burst}{i}".encode() * 50
        )
        workstation.read(doc["id"], f"予算確認 {burst}-{i} / budget check")
        # Refused and logged: no purpose, and a user with no role on the case.
        assert officer.http.get(f"/api/v1/documents/{doc['id']}/content").status_code == 400
        purpose = {"X-Access-Purpose": quote("見たい", safe="")}
        denied = outsider.http.get(f"/api/v1/documents/{doc['id']}/content", headers=purpose)
        assert denied.status_code in (403, 404)
    assert srv.client("not-a-real-token-" + "x" * 20).http.get("/api/v1/me").status_code == 401
    srv.close_clients()


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audit]:
    tmp = tmp_path_factory.mktemp("tamper")
    srv = make_server(tmp, KINKO_CHECKPOINT_INTERVAL_SECONDS="1")
    srv.start()
    try:
        case_id = srv.user("tamper-officer", ["procurement"]).create_case(
            "TAMPER-1", "改ざん検知テスト案件"
        )["id"]
        notes: list[str] = []
        for burst in range(3):
            _activity(srv, burst, case_id)
            if burst == 1:
                time.sleep(1.3)  # let the server cut a periodic checkpoint of its own too
            notes.append(ok_run("audit", "checkpoint", "--data-dir", str(srv.data_dir)))
        _activity(srv, 3, case_id)  # events after the last cut (a periodic cut may cover some)
        key = tmp / "verifier.key"
        key.write_text(ok_run("audit", "public-key", "--data-dir", str(srv.data_dir)))
        bundle = tmp / "genuine"
        ok_run("audit", "export", "--out", str(bundle), "--data-dir", str(srv.data_dir))
        trusted = tmp / "trusted.note"
        trusted.write_text(notes[0])
        signer = NoteSigner.from_private_key((srv.data_dir / "audit-signing.key").read_text())
        cuts = [parse_checkpoint(signer.verifier().verify(n)) for n in notes]
        yield Audit(srv, bundle, key, trusted, cuts[0], signer, cuts)
    finally:
        srv.close_clients()
        srv.stop()


# -- helpers -------------------------------------------------------------------------------------


def verify(bundle: Path, audit: Audit, *, trusted: bool = False) -> tuple[int, Report]:
    args = ["audit", "verify", str(bundle), "--key", str(audit.key), "--json"]
    if trusted:
        args += ["--trusted", str(audit.trusted)]
    result = kinko(*args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report: Report = json.loads(result.stdout)
    assert report["ok"] == (result.returncode == 0), report
    return result.returncode, report


def kinds(report: Report) -> set[str]:
    return {f["kind"] for f in report["findings"]}


def failing(report: Report) -> set[str]:
    return kinds(report) - {"unverified_tail"}


def assert_caught(
    bundle: Path, audit: Audit, kind: str, where: str | None = None, *, trusted: bool = False
) -> Report:
    rc, report = verify(bundle, audit, trusted=trusted)
    assert rc == 1, report
    assert not report["ok"]
    hits = [f for f in report["findings"] if f["kind"] == kind]
    assert hits, f"expected a {kind!r} finding, got {report['findings']}"
    if where is not None:
        assert any(where in f["where"] for f in hits), hits
    return report


def copy(audit: Audit, tmp_path: Path) -> Path:
    return Path(shutil.copytree(audit.bundle, tmp_path / "bundle"))


def read_lines(bundle: Path) -> list[bytes]:
    return (bundle / "events.jsonl").read_bytes().split(b"\n")[:-1]


def write_lines(bundle: Path, lines: list[bytes], *, fix_manifest: bool = True) -> None:
    """Write events back; like a careful forger, also fix the (unsigned) manifest count."""
    (bundle / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    if fix_manifest:
        manifest = json.loads((bundle / "manifest.json").read_text())
        manifest["event_count"] = len(lines)
        (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def checkpoints(bundle: Path, audit: Audit) -> list[tuple[Path, Checkpoint]]:
    files = sorted((bundle / "checkpoints").iterdir())
    return [(f, parse_checkpoint(audit.signer.verifier().verify(f.read_text()))) for f in files]


def sign(audit: Audit, cp: Checkpoint) -> str:
    return audit.signer.sign(format_checkpoint(cp))


def first_index(lines: list[bytes], pred: Callable[[dict[str, Any]], bool]) -> int:
    return next(i for i, line in enumerate(lines) if pred(json.loads(line)))


def purposeful_read(ev: dict[str, Any]) -> bool:
    return ev["action"] == "document.read" and ev["decision"] == "allow" and bool(ev["purpose"])


# -- the genuine bundle --------------------------------------------------------------------------


def test_genuine_export_verifies_with_and_without_the_trusted_checkpoint(audit: Audit) -> None:
    rc, report = verify(audit.bundle, audit)
    assert rc == 0, report
    assert failing(report) == set()
    assert report["checkpoints"] >= 3
    assert report["verified_size"] >= max(cp.size for cp in audit.cli_cuts)
    lines = read_lines(audit.bundle)
    assert report["event_count"] == len(lines)
    events = [json.loads(line) for line in lines]
    assert all(line == canonical(ev) for line, ev in zip(lines, events, strict=True))
    assert [ev["seq"] for ev in events] == list(range(len(events)))
    seen = {(ev["action"], ev["decision"], ev["reason"]) for ev in events}
    assert ("document.read", "deny", "purpose_required") in seen
    assert ("document.read", "allow", "ok") in seen
    assert any(a == "auth.fail" for a, _, _ in seen)
    assert any(ev["client"] and ev["client"]["device"] == "WS-TAMPER-7" for ev in events)
    # The bundle's checkpoints are the CLI cuts plus the server's periodic ones.
    sizes = {cp.size for _, cp in checkpoints(audit.bundle, audit)}
    assert {cp.size for cp in audit.cli_cuts} <= sizes
    assert audit.trusted_cp.size == min(cp.size for cp in audit.cli_cuts)
    rc, report = verify(audit.bundle, audit, trusted=True)
    assert rc == 0, report


def test_live_store_verifies(audit: Audit) -> None:
    out = ok_run("audit", "verify", "--data-dir", str(audit.server.data_dir), "--json")
    report = json.loads(out)
    assert report["ok"], report
    assert report["event_count"] >= len(read_lines(audit.bundle))
    out = ok_run(
        "audit",
        "verify",
        "--data-dir",
        str(audit.server.data_dir),
        "--trusted",
        str(audit.trusted),
        "--json",
    )
    assert json.loads(out)["ok"]


def test_since_seq_export_verifies(audit: Audit, tmp_path: Path) -> None:
    since = audit.trusted_cp.size + 7  # not a power of two: a frontier of several subtrees
    out = tmp_path / "since"
    ok_run(
        "audit",
        "export",
        "--out",
        str(out),
        "--since-seq",
        str(since),
        "--data-dir",
        str(audit.server.data_dir),
    )
    assert (out / "prefix.json").exists()
    rc, report = verify(out, audit)
    assert rc == 0, report
    assert report["first_seq"] == since
    assert report["verified_size"] >= max(cp.size for cp in audit.cli_cuts)
    # The trusted checkpoint predates the bundle; the bundle carries the same signed note.
    rc, report = verify(out, audit, trusted=True)
    assert rc == 0, report
    # A forged prefix frontier makes every later root mismatch.
    prefix = json.loads((out / "prefix.json").read_text())
    prefix["frontier"][-1][2] = prefix["frontier"][0][2]
    (out / "prefix.json").write_text(json.dumps(prefix))
    assert_caught(out, audit, "bad_checkpoint_root")


# -- events --------------------------------------------------------------------------------------


def test_non_canonical_edit_is_modified(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    lines = read_lines(b)
    i = first_index(lines, purposeful_read)
    ev = json.loads(lines[i])
    lines[i] = json.dumps(ev, ensure_ascii=True).encode()  # same event, other spelling
    write_lines(b, lines)
    assert_caught(b, audit, "modified", f"seq {ev['seq']}")


def test_canonical_field_change_is_bad_checkpoint_root(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    lines = read_lines(b)
    i = first_index(lines, purposeful_read)
    ev = json.loads(lines[i])
    ev["actor"] = "someone-else"
    ev["purpose"] = "書き換えられた目的"
    lines[i] = canonical(ev)
    write_lines(b, lines)
    report = assert_caught(b, audit, "bad_checkpoint_root")
    assert "modified" not in kinds(report)
    # The first checkpoint covering the event names a seq range that contains it.
    first = min(cp.size for _, cp in checkpoints(b, audit) if cp.size > ev["seq"])
    hit = next(f for f in report["findings"] if f["kind"] == "bad_checkpoint_root")
    assert hit["where"] == f"checkpoints/{checkpoint_filename(first)}"
    lo, _, hi = hit["detail"].split("the change is in seq ")[1].split(" ")[0].partition("–")
    assert int(lo) <= ev["seq"] <= int(hi or lo)


def test_missing_entry(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    lines = read_lines(b)
    i = first_index(lines, purposeful_read)
    seq = json.loads(lines[i])["seq"]
    del lines[i]
    write_lines(b, lines)
    assert_caught(b, audit, "missing", f"seq {seq}")


def test_reordered_entries(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    lines = read_lines(b)
    i = first_index(lines, purposeful_read)
    seq = json.loads(lines[i])["seq"]
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    write_lines(b, lines)
    assert_caught(b, audit, "reordered", f"seq {seq}")


def test_inserted_entry(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    lines = read_lines(b)
    i = first_index(lines, purposeful_read)
    forged = json.loads(lines[i])
    forged["actor"] = "ghost"
    forged["document_id"] = "0" * 32
    lines.insert(i + 1, canonical(forged))
    write_lines(b, lines)
    assert_caught(b, audit, "inserted", f"seq {forged['seq']}")


def test_inserted_and_renumbered_entry(audit: Audit, tmp_path: Path) -> None:
    # A smarter insertion renumbers every later event; the signed roots still give it away.
    b = copy(audit, tmp_path)
    events = [json.loads(line) for line in read_lines(b)]
    i = first_index(read_lines(b), purposeful_read)
    forged = dict(events[i], actor="ghost")
    events.insert(i + 1, forged)
    for seq, ev in enumerate(events):
        ev["seq"] = seq
    write_lines(b, [canonical(ev) for ev in events])
    report = assert_caught(b, audit, "bad_checkpoint_root")
    assert "modified" not in kinds(report)


def test_truncated_tail(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    newest = max(cp.size for _, cp in checkpoints(b, audit))
    lines = read_lines(b)
    write_lines(b, lines[: newest - 3])  # manifest fixed: only the checkpoint can tell
    assert_caught(b, audit, "truncated", f"checkpoints/{checkpoint_filename(newest)}")


def test_truncated_tail_with_stale_manifest(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    lines = read_lines(b)
    write_lines(b, lines[:-2], fix_manifest=False)
    assert_caught(b, audit, "truncated", "events.jsonl")


def test_cut_with_its_newest_checkpoint_verifies_and_says_where_the_proof_ends(
    audit: Audit, tmp_path: Path
) -> None:
    """No bundle can show this cut by itself; the plain report says so in one line."""
    b = copy(audit, tmp_path)
    cps = checkpoints(b, audit)
    (newest_file, newest), (_, kept) = cps[-1], cps[-2]
    # Everything from the newest checkpoint's size on goes, its audit.checkpoint event too.
    newest_file.unlink()
    write_lines(b, read_lines(b)[: newest.size])
    result = kinko("audit", "verify", str(b), "--key", str(audit.key))
    assert result.returncode == 0, result.stdout + result.stderr
    summary, coverage = result.stdout.splitlines()[:2]
    assert summary.startswith("OK: ")
    assert f"verified up to size {kept.size}," in summary
    when = kept.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert coverage == (
        "Verified only up to the newest checkpoint in the bundle that matches its events "
        f"(size {kept.size}, cut {when}): truncation after that point can only be detected "
        "with --trusted or --anchored."
    )
    # The checkpoint the auditor kept from before the cut cannot extend the proof past it.
    trusted = kinko(
        "audit", "verify", str(b), "--key", str(audit.key), "--trusted", str(audit.trusted)
    )
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert trusted.stdout.splitlines()[1].endswith(
        "can only be detected with a newer checkpoint from --trusted or --anchored."
    )


def test_emptied_bundle_fails_and_says_nothing_was_verified(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    write_lines(b, [])
    for f, _ in checkpoints(b, audit):
        f.unlink()
    result = kinko("audit", "verify", str(b), "--key", str(audit.key))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAILED: 0 events")
    assert lines[1] == "Nothing verified: the bundle holds no events."
    assert "  empty: events.jsonl: the file holds no events: there is nothing to verify" in lines


# -- checkpoints ---------------------------------------------------------------------------------


def _middle(b: Path, audit: Audit) -> tuple[Path, Checkpoint, set[int]]:
    cps = checkpoints(b, audit)
    assert len(cps) >= 3
    path, cp = cps[len(cps) // 2]
    return path, cp, {c.size for _, c in cps}


def _free_size_below(size: int, taken: set[int]) -> int:
    return next(s for s in range(size - 1, 0, -1) if s not in taken)


def test_checkpoint_file_renamed_to_a_wrong_size(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    path, cp, taken = _middle(b, audit)
    wrong = _free_size_below(cp.size, taken)
    path.rename(path.with_name(checkpoint_filename(wrong)))
    assert_caught(b, audit, "bad_checkpoint_size", checkpoint_filename(wrong))


def test_checkpoint_resigned_with_a_wrong_size(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    path, cp, taken = _middle(b, audit)
    wrong = _free_size_below(cp.size, taken)
    path.unlink()
    forged = sign(audit, replace(cp, size=wrong))
    (b / "checkpoints" / checkpoint_filename(wrong)).write_text(forged)
    assert_caught(b, audit, "bad_checkpoint_size", checkpoint_filename(wrong))


def test_checkpoint_with_a_wrong_root_unsigned(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    path, _, _ = _middle(b, audit)
    text = path.read_text()
    root_line = text.split("\n")[2]
    fake = hashlib.sha256(b"forged").digest()
    path.write_text(text.replace(root_line, base64.b64encode(fake).decode()))
    assert_caught(b, audit, "bad_signature", path.name)


def test_checkpoint_resigned_with_a_wrong_root(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    path, cp, _ = _middle(b, audit)
    path.write_text(sign(audit, replace(cp, root=hashlib.sha256(b"forged").digest())))
    assert_caught(b, audit, "bad_checkpoint_root", path.name)


def test_checkpoint_with_a_wrong_signature(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    path, _, _ = _middle(b, audit)
    text = path.read_text()
    body, sig_line = text[:-1].rsplit("\n", 1)
    name, b64 = sig_line.rsplit(" ", 1)
    blob = bytearray(base64.b64decode(b64))
    blob[-1] ^= 0x01
    path.write_text(f"{body}\n{name} {base64.b64encode(bytes(blob)).decode()}\n")
    assert_caught(b, audit, "bad_signature", path.name)


def test_checkpoint_signed_by_another_key(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    path, cp, _ = _middle(b, audit)
    other = NoteSigner.generate(audit.signer.name)  # same name, other key
    path.write_text(other.sign(format_checkpoint(cp)))
    assert_caught(b, audit, "bad_signature", path.name)


def test_deleted_checkpoint_file(audit: Audit, tmp_path: Path) -> None:
    b = copy(audit, tmp_path)
    path, cp, _ = _middle(b, audit)
    path.unlink()
    report = assert_caught(b, audit, "deleted_checkpoint")
    hit = next(f for f in report["findings"] if f["kind"] == "deleted_checkpoint")
    assert f"size {cp.size}" in hit["detail"]


def test_non_increasing_checkpoint_times_resigned_with_the_real_key(
    audit: Audit, tmp_path: Path
) -> None:
    b = copy(audit, tmp_path)
    cps = checkpoints(b, audit)
    (_, first), (path, second) = cps[0], cps[1]
    backdated = replace(second, time=first.time - timedelta(seconds=1))
    path.write_text(sign(audit, backdated))
    report = assert_caught(b, audit, "time_not_increasing", path.name)
    # Nothing else is wrong with it: size and root are the genuine ones.
    assert failing(report) == {"time_not_increasing"}


def test_history_rewrite_resigned_with_the_real_key_needs_the_trusted_checkpoint(
    audit: Audit, tmp_path: Path
) -> None:
    b = copy(audit, tmp_path)
    cps = checkpoints(b, audit)
    sizes = {cp.size for _, cp in cps}
    events = [json.loads(line) for line in read_lines(b)]
    # Rewrite an early read, well inside the auditor's trusted checkpoint.
    target_seq = next(ev for ev in events if purposeful_read(ev))["seq"]
    assert target_seq < audit.trusted_cp.size

    def rewrite(evs: list[dict[str, Any]]) -> None:
        evs[target_seq]["purpose"] = "定例点検 (rewritten)"
        evs[target_seq]["actor"] = "tamper-outsider"

    roots = rewrite_history(b, audit.signer, rewrite)
    for _, cp in cps:
        # Every root that covers the rewritten event changes (earlier periodic ones do not).
        assert (roots[cp.size] != cp.root) == (cp.size > target_seq)

    # Internally consistent and signed with the real key: the bundle alone verifies...
    rc, report = verify(b, audit)
    assert rc == 0, report
    assert report["ok"]
    assert failing(report) == set()
    assert report["verified_size"] == max(sizes)
    # ...but it cannot reproduce the root the auditor kept.
    report = assert_caught(b, audit, "inconsistent_with_trusted", trusted=True)
    assert failing(report) == {"inconsistent_with_trusted"}
