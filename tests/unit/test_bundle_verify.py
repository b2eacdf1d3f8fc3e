"""The offline bundle verifier: a genuine bundle passes, every kind of tampering is named."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vault.audit.bundle import (
    CHECKPOINT_ACTION,
    BundleError,
    Report,
    checkpoint_filename,
    checkpoint_reason,
    parse_checkpoint_reason,
    verify_bundle,
    write_bundle,
)
from vault.audit.log import EVENT_FIELDS, canonical_bytes, format_time
from vault.audit.merkle import CompactRange, leaf_hash
from vault.audit.note import Checkpoint, NoteSigner, format_checkpoint

ORIGIN = "kinko.example/audit"
T0 = datetime(2026, 11, 26, 7, 0, 0, tzinfo=UTC)
N_EVENTS = 1000
EVERY = 100


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner.generate(ORIGIN)


def make_event(
    seq: int, action: str = "document.read", reason: str | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = dict.fromkeys(EVENT_FIELDS)
    event.update(
        seq=seq,
        time=format_time(T0 + timedelta(milliseconds=seq)),
        actor=f"user{seq % 7}",
        action=action,
        decision="allow" if seq % 5 else "deny",
        reason=reason,
        case_id=f"case-{seq % 13}",
        document_id=f"doc-{seq % 31}",
        version=1 + seq % 3,
        purpose="入札評価のための閲覧" if action == "document.read" else None,
        client={"ip": "10.0.0.7", "user_agent": "kinko-cli/0.1", "device": "ws-12"},
        request_id=f"req-{seq:08d}",
    )
    if action == CHECKPOINT_ACTION:
        for key in ("actor", "decision", "case_id", "document_id", "version", "purpose", "client"):
            event[key] = None
        event["request_id"] = None
    return event


@dataclass
class Log:
    """A synthetic audit log with a checkpoint (and its audit.checkpoint event) every EVERY."""

    events: list[bytes]
    notes: dict[int, str]
    cps: dict[int, Checkpoint]
    roots: list[bytes] = field(default_factory=list)
    frontiers: dict[int, list[tuple[int, int, bytes]]] = field(default_factory=dict)


def build_log(
    signer: NoteSigner,
    n: int = N_EVENTS,
    every: int = EVERY,
    *,
    rewrite: Callable[[dict[str, Any]], None] | None = None,
    keep_roots: bool = True,
    frontier_at: tuple[int, ...] = (),
) -> Log:
    cr = CompactRange()
    log = Log([], {}, {}, [cr.root()] if keep_roots else [])
    for seq in range(n):
        if seq in frontier_at:
            log.frontiers[seq] = cr.frontier()
        if seq and seq % every == 0:
            cp = Checkpoint(ORIGIN, seq, cr.root(), T0 + timedelta(seconds=seq))
            log.cps[seq] = cp
            log.notes[seq] = signer.sign(format_checkpoint(cp))
            event = make_event(seq, CHECKPOINT_ACTION, checkpoint_reason(seq, cp.root))
        else:
            event = make_event(seq)
        if rewrite is not None:
            rewrite(event)
        data = canonical_bytes(event)
        log.events.append(data)
        cr.push(leaf_hash(data))
        if keep_roots:
            log.roots.append(cr.root())
    return log


def export(log: Log, signer: NoteSigner, path: Path, first_seq: int = 0) -> Path:
    frontier = log.frontiers[first_seq] if first_seq else None
    write_bundle(
        path,
        log.events[first_seq:],
        log.notes.values(),
        signer.verifier_key(),
        ORIGIN,
        first_seq,
        frontier,
    )
    return path


@pytest.fixture(scope="module")
def genuine(signer: NoteSigner) -> Log:
    return build_log(signer, frontier_at=(350,))


def failing(report: Report) -> set[str]:
    return report.kinds() - {"unverified_tail"}


# -- the genuine bundle -------------------------------------------------------------------------


def test_genuine_bundle_verifies(genuine: Log, signer: NoteSigner, tmp_path: Path) -> None:
    bundle = export(genuine, signer, tmp_path / "b")
    assert sorted(p.name for p in bundle.iterdir()) == [
        "checkpoints",
        "events.jsonl",
        "manifest.json",
        "verifier.key",
    ]
    assert (bundle / "events.jsonl").read_bytes() == b"".join(e + b"\n" for e in genuine.events)
    assert (bundle / "verifier.key").read_text() == signer.verifier_key() + "\n"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == "kinko-audit-bundle/v1"
    assert (manifest["origin"], manifest["first_seq"], manifest["event_count"]) == (ORIGIN, 0, 1000)
    assert (bundle / "checkpoints" / "00000000000000000500.note").read_text() == genuine.notes[500]
    assert not list(tmp_path.glob("*.tmp-*"))

    report = verify_bundle(bundle, signer.verifier_key())
    assert report.ok, report.findings
    assert report.event_count == 1000
    assert report.checkpoints == 9
    assert report.verified_size == 900
    assert report.unverified_tail == 100
    assert [f.kind for f in report.findings] == ["unverified_tail"]
    assert report.findings[0].where == "seq 900–999"


def test_trusted_checkpoints_of_the_genuine_log(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    bundle = export(genuine, signer, tmp_path / "b")
    # One the bundle also holds, and one at a size the bundle never signed (in the tail).
    at_950 = signer.sign(format_checkpoint(Checkpoint(ORIGIN, 950, genuine.roots[950], T0)))
    for trusted in (genuine.notes[300], at_950):
        report = verify_bundle(bundle, signer.verifier_key(), trusted_note=trusted)
        assert report.ok, report.findings


# -- the mutation suite -------------------------------------------------------------------------


def read_lines(bundle: Path) -> list[bytes]:
    return (bundle / "events.jsonl").read_bytes().split(b"\n")[:-1]


def write_lines(bundle: Path, lines: list[bytes]) -> None:
    """Rewrite the events, and the manifest count too, as a careful forger would."""
    (bundle / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["event_count"] = len(lines)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def edit_event(bundle: Path, seq: int, **changes: Any) -> None:
    lines = read_lines(bundle)
    event = json.loads(lines[seq])
    event.update(changes)
    lines[seq] = canonical_bytes(event)
    write_lines(bundle, lines)


def resign(bundle: Path, signer: NoteSigner, cp: Checkpoint, filename: str) -> None:
    (bundle / "checkpoints" / filename).write_text(signer.sign(format_checkpoint(cp)))


Mutation = Callable[[Path, Log, NoteSigner], str | None]


def m_modified_canonical(bundle: Path, log: Log, signer: NoteSigner) -> None:
    edit_event(bundle, 450, actor="mallory")


def m_modified_noncanonical(bundle: Path, log: Log, signer: NoteSigner) -> None:
    lines = read_lines(bundle)
    lines[450] = lines[450].replace(b'"seq":450', b'"seq": 450')
    write_lines(bundle, lines)


def m_missing(bundle: Path, log: Log, signer: NoteSigner) -> None:
    lines = read_lines(bundle)
    del lines[450]
    write_lines(bundle, lines)


def m_reordered(bundle: Path, log: Log, signer: NoteSigner) -> None:
    lines = read_lines(bundle)
    lines[450], lines[451] = lines[451], lines[450]
    write_lines(bundle, lines)


def m_inserted(bundle: Path, log: Log, signer: NoteSigner) -> None:
    lines = read_lines(bundle)
    forged = make_event(450)
    forged["actor"] = "mallory"
    lines.insert(451, canonical_bytes(forged))
    write_lines(bundle, lines)


def m_duplicate(bundle: Path, log: Log, signer: NoteSigner) -> None:
    lines = read_lines(bundle)
    lines.insert(451, lines[450])
    write_lines(bundle, lines)


def m_malformed(bundle: Path, log: Log, signer: NoteSigner) -> None:
    lines = read_lines(bundle)
    lines[450] = b'{"seq":450,'
    write_lines(bundle, lines)


def m_truncated(bundle: Path, log: Log, signer: NoteSigner) -> None:
    write_lines(bundle, read_lines(bundle)[:850])


def m_checkpoint_size(bundle: Path, log: Log, signer: NoteSigner) -> None:
    cp = dataclasses.replace(log.cps[500], size=501)
    resign(bundle, signer, cp, checkpoint_filename(500))


def m_checkpoint_size_renamed(bundle: Path, log: Log, signer: NoteSigner) -> None:
    (bundle / "checkpoints" / checkpoint_filename(500)).unlink()
    cp = dataclasses.replace(log.cps[500], size=501)
    resign(bundle, signer, cp, checkpoint_filename(501))


def m_checkpoint_root(bundle: Path, log: Log, signer: NoteSigner) -> None:
    cp = dataclasses.replace(log.cps[500], root=hashlib.sha256(b"forged").digest())
    resign(bundle, signer, cp, checkpoint_filename(500))


def m_checkpoint_signature(bundle: Path, log: Log, signer: NoteSigner) -> None:
    path = bundle / "checkpoints" / checkpoint_filename(500)
    note = path.read_text()
    head, b64 = note.rstrip("\n").rsplit(" ", 1)
    blob = bytearray(base64.b64decode(b64))
    blob[20] ^= 1
    path.write_text(f"{head} {base64.b64encode(bytes(blob)).decode()}\n")


def m_checkpoint_other_key(bundle: Path, log: Log, signer: NoteSigner) -> None:
    impostor = NoteSigner.generate(ORIGIN)
    path = bundle / "checkpoints" / checkpoint_filename(500)
    path.write_text(impostor.sign(format_checkpoint(log.cps[500])))


def m_deleted_checkpoint(bundle: Path, log: Log, signer: NoteSigner) -> None:
    (bundle / "checkpoints" / checkpoint_filename(500)).unlink()


def m_time_not_increasing(bundle: Path, log: Log, signer: NoteSigner) -> None:
    earlier = log.cps[500].time - timedelta(seconds=1)
    cp = dataclasses.replace(log.cps[600], time=earlier)
    resign(bundle, signer, cp, checkpoint_filename(600))


def m_history_rewrite(bundle: Path, log: Log, signer: NoteSigner) -> str:
    """Rewrite event 150 and re-sign everything after it with the real key.

    The rewritten bundle is internally consistent; only the checkpoint the auditor kept from
    before (size 300) exposes it.
    """

    def rewrite(event: dict[str, Any]) -> None:
        if event["seq"] == 150:
            event["actor"] = "mallory"

    forged = build_log(signer, rewrite=rewrite, keep_roots=False)
    for p in bundle.iterdir():
        if p.is_dir():
            for q in p.iterdir():
                q.unlink()
            p.rmdir()
        else:
            p.unlink()
    bundle.rmdir()
    export(forged, signer, bundle)
    alone = verify_bundle(bundle, signer.verifier_key())
    assert alone.ok, alone.findings
    return log.notes[300]


def m_history_rewrite_tail(bundle: Path, log: Log, signer: NoteSigner) -> str:
    """The auditor kept a checkpoint of size 950, which the bundle itself never signed."""
    edit_event(bundle, 940, actor="mallory")
    return signer.sign(format_checkpoint(Checkpoint(ORIGIN, 950, log.roots[950], T0)))


def m_rolled_back(bundle: Path, log: Log, signer: NoteSigner) -> str:
    """Events and checkpoints after 700 were dropped; the auditor had kept checkpoint 800."""
    write_lines(bundle, read_lines(bundle)[:750])
    for size in (800, 900):
        (bundle / "checkpoints" / checkpoint_filename(size)).unlink()
    return log.notes[800]


MUTATIONS: dict[str, tuple[Mutation, set[str]]] = {
    # name: (mutation, exactly the failing finding kinds expected)
    "modified_canonical": (m_modified_canonical, {"bad_checkpoint_root"}),
    "modified_noncanonical": (m_modified_noncanonical, {"modified", "bad_checkpoint_root"}),
    "missing": (m_missing, {"missing", "bad_checkpoint_root"}),
    "reordered": (m_reordered, {"reordered", "bad_checkpoint_root"}),
    "inserted": (m_inserted, {"inserted", "bad_checkpoint_root"}),
    "duplicate": (m_duplicate, {"duplicate", "bad_checkpoint_root"}),
    "malformed": (m_malformed, {"malformed", "bad_checkpoint_root"}),
    "truncated": (m_truncated, {"truncated"}),
    "checkpoint_size": (m_checkpoint_size, {"bad_checkpoint_size"}),
    "checkpoint_size_renamed": (m_checkpoint_size_renamed, {"bad_checkpoint_size"}),
    "checkpoint_root": (m_checkpoint_root, {"bad_checkpoint_root"}),
    "checkpoint_signature": (m_checkpoint_signature, {"bad_signature"}),
    "checkpoint_other_key": (m_checkpoint_other_key, {"bad_signature"}),
    "deleted_checkpoint": (m_deleted_checkpoint, {"deleted_checkpoint"}),
    "time_not_increasing": (m_time_not_increasing, {"time_not_increasing"}),
    "history_rewrite": (m_history_rewrite, {"inconsistent_with_trusted"}),
    "history_rewrite_tail": (m_history_rewrite_tail, {"inconsistent_with_trusted"}),
    "rolled_back": (m_rolled_back, {"inconsistent_with_trusted"}),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_detected(genuine: Log, signer: NoteSigner, tmp_path: Path, name: str) -> None:
    mutate, expected = MUTATIONS[name]
    bundle = export(genuine, signer, tmp_path / "b")
    trusted = mutate(bundle, genuine, signer)
    report = verify_bundle(bundle, signer.verifier_key(), trusted_note=trusted)
    assert not report.ok
    assert failing(report) == expected, report.findings


def test_findings_name_the_place(genuine: Log, signer: NoteSigner, tmp_path: Path) -> None:
    def findings(name: str) -> list[tuple[str, str, str]]:
        bundle = export(genuine, signer, tmp_path / name)
        trusted = MUTATIONS[name][0](bundle, genuine, signer)
        report = verify_bundle(bundle, signer.verifier_key(), trusted_note=trusted)
        return [(f.kind, f.where, f.detail) for f in report.findings]

    roots = [f for f in findings("modified_canonical") if f[0] == "bad_checkpoint_root"]
    # The first mismatching checkpoint narrows the change to the events since the last match.
    assert roots[0][1] == "checkpoints/00000000000000000500.note"
    assert "seq 400–499" in roots[0][2]
    assert len(roots) == 5

    missing = [f for f in findings("missing") if f[0] == "missing"]
    assert [f[1] for f in missing] == ["seq 450"]

    reordered = [f for f in findings("reordered") if f[0] == "reordered"]
    assert [f[1] for f in reordered] == ["seq 450 (line 452)"]

    inserted = [f for f in findings("inserted") if f[0] == "inserted"]
    assert [f[1] for f in inserted] == ["seq 450 (line 452)"]

    truncated = [f for f in findings("truncated") if f[0] == "truncated"]
    assert [f[1] for f in truncated] == ["checkpoints/00000000000000000900.note"]

    deleted = [f for f in findings("deleted_checkpoint") if f[0] == "deleted_checkpoint"]
    assert [f[1] for f in deleted] == ["seq 500"]
    assert "size 500" in deleted[0][2]

    signature = [f for f in findings("checkpoint_signature") if f[0] == "bad_signature"]
    assert [f[1] for f in signature] == ["checkpoints/00000000000000000500.note"]


def test_manifest_count_mismatch_is_truncation(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    bundle = export(genuine, signer, tmp_path / "b")
    lines = read_lines(bundle)
    (bundle / "events.jsonl").write_bytes(b"".join(x + b"\n" for x in lines[:990]))
    report = verify_bundle(bundle, signer.verifier_key())
    assert failing(report) == {"truncated"}


def test_wrong_verifier_key_fails_every_checkpoint(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    bundle = export(genuine, signer, tmp_path / "b")
    other = NoteSigner.generate(ORIGIN)
    report = verify_bundle(bundle, other.verifier_key())
    assert "bad_signature" in report.kinds()
    assert report.counts["bad_signature"] == 9
    assert report.verified_size == 0


def test_broken_manifest_is_malformed(genuine: Log, signer: NoteSigner, tmp_path: Path) -> None:
    bundle = export(genuine, signer, tmp_path / "b")
    (bundle / "manifest.json").write_text("{}")
    report = verify_bundle(bundle, signer.verifier_key())
    assert not report.ok
    assert report.kinds() == {"malformed"}


# -- what a bundle cannot prove -----------------------------------------------------------------


def test_genuine_bundle_says_where_its_proof_ends(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    report = verify_bundle(export(genuine, signer, tmp_path / "b"), signer.verifier_key())
    assert report.coverage == (
        "Verified only up to the newest checkpoint in the bundle that matches its events "
        "(size 900, cut 2026-11-26T07:15:00Z): truncation after that point can only be "
        "detected with --trusted or --anchored."
    )
    assert report.to_dict()["coverage"] == report.coverage


def test_newest_checkpoint_dropped_with_the_events_after_it(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    """The truncation no bundle can show by itself: it verifies, and the report says so."""
    bundle = export(genuine, signer, tmp_path / "b")
    # Events from seq 800 on go, and with them checkpoints 800 and 900 and the audit.checkpoint
    # events naming them; the manifest is fixed too.  Nothing left refers to what is gone.
    write_lines(bundle, read_lines(bundle)[:800])
    for size in (800, 900):
        (bundle / "checkpoints" / checkpoint_filename(size)).unlink()
    report = verify_bundle(bundle, signer.verifier_key())
    assert report.ok, report.findings
    assert (report.verified_size, report.unverified_tail) == (700, 100)
    assert "size 700, cut 2026-11-26T07:11:40Z" in report.coverage
    assert report.coverage.startswith("Verified only up to the newest checkpoint")
    assert "truncation after that point can only be detected with --trusted or --anchored" in (
        report.coverage
    )
    # A checkpoint the auditor kept from beyond the cut is what exposes it.
    kept = verify_bundle(bundle, signer.verifier_key(), trusted_note=genuine.notes[900])
    assert failing(kept) == {"inconsistent_with_trusted"}


def test_trusted_checkpoint_beyond_the_bundles_own_extends_the_proof(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    bundle = export(genuine, signer, tmp_path / "b")
    at_950 = signer.sign(format_checkpoint(Checkpoint(ORIGIN, 950, genuine.roots[950], T0)))
    report = verify_bundle(bundle, signer.verifier_key(), trusted_note=at_950)
    assert report.ok, report.findings
    assert report.coverage == (
        "Verified only up to the trusted checkpoint of size 950 (the bundle's own newest "
        "matching checkpoint: size 900, cut 2026-11-26T07:15:00Z): truncation after that "
        "point can only be detected with a newer checkpoint from --trusted or --anchored."
    )
    older = verify_bundle(bundle, signer.verifier_key(), trusted_note=genuine.notes[300])
    assert "(size 900, cut" in older.coverage
    assert older.coverage.endswith("a newer checkpoint from --trusted or --anchored.")


def test_events_without_any_checkpoint_are_not_called_verified(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    bundle = export(genuine, signer, tmp_path / "b")
    write_lines(bundle, read_lines(bundle)[:50])
    for note in (bundle / "checkpoints").iterdir():
        note.unlink()
    report = verify_bundle(bundle, signer.verifier_key())
    assert report.ok, report.findings
    assert report.unverified_tail == 50
    assert report.coverage.startswith("Not verified: no checkpoint in the bundle matches")


def test_empty_bundle_is_reported_not_passed(signer: NoteSigner, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    write_bundle(bundle, [], [], signer.verifier_key(), ORIGIN, 0, None)
    report = verify_bundle(bundle, signer.verifier_key())
    assert not report.ok
    assert report.kinds() == {"empty"}
    assert report.findings[0].where == "events.jsonl"
    assert report.coverage == "Nothing verified: the bundle holds no events."


def test_bundle_emptied_by_a_forger_is_reported(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    bundle = export(genuine, signer, tmp_path / "b")
    write_lines(bundle, [])
    for note in (bundle / "checkpoints").iterdir():
        note.unlink()
    report = verify_bundle(bundle, signer.verifier_key())
    assert not report.ok
    assert report.kinds() == {"empty"}


def test_missing_events_file_is_reported_as_empty(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    bundle = export(genuine, signer, tmp_path / "b")
    (bundle / "events.jsonl").unlink()
    report = verify_bundle(bundle, signer.verifier_key())
    assert not report.ok
    empty = [f for f in report.findings if f.kind == "empty"]
    assert [(f.where, f.detail) for f in empty] == [
        ("events.jsonl", "the file is missing: the bundle holds no events to verify")
    ]
    # The checkpoints still in the bundle (and the manifest) show how much was cut off.
    assert report.counts["truncated"] == 10
    assert report.coverage == "Nothing verified: the bundle holds no events."


# -- since-seq bundles ------------------------------------------------------------------------


def test_since_seq_bundle_verifies(genuine: Log, signer: NoteSigner, tmp_path: Path) -> None:
    bundle = export(genuine, signer, tmp_path / "b", first_seq=350)
    prefix = json.loads((bundle / "prefix.json").read_text())
    assert prefix["size"] == 350
    # 350 = 256 + 64 + 16 + 8 + 4 + 2: one perfect subtree per set bit, left to right.
    assert [(lvl, idx) for lvl, idx, _ in prefix["frontier"]] == [
        (8, 0),
        (6, 4),
        (4, 20),
        (3, 42),
        (2, 86),
        (1, 174),
    ]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert (manifest["first_seq"], manifest["event_count"]) == (350, 650)
    assert json.loads(read_lines(bundle)[0])["seq"] == 350

    report = verify_bundle(bundle, signer.verifier_key(), trusted_note=genuine.notes[300])
    assert report.ok, report.findings
    assert report.first_seq == 350
    assert report.event_count == 650
    assert report.checkpoints == 9  # 100–300 are checked for their signature only.
    assert report.verified_size == 900
    assert report.unverified_tail == 100


def test_since_seq_bundle_still_detects_tampering(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    bundle = export(genuine, signer, tmp_path / "b", first_seq=350)
    lines = read_lines(bundle)
    event = json.loads(lines[10])
    assert event["seq"] == 360
    event["actor"] = "mallory"
    lines[10] = canonical_bytes(event)
    (bundle / "events.jsonl").write_bytes(b"".join(x + b"\n" for x in lines))
    report = verify_bundle(bundle, signer.verifier_key())
    assert failing(report) == {"bad_checkpoint_root"}
    assert "seq 350–399" in report.findings[0].detail


def test_since_seq_forged_prefix(genuine: Log, signer: NoteSigner, tmp_path: Path) -> None:
    bundle = export(genuine, signer, tmp_path / "b", first_seq=350)
    prefix = json.loads((bundle / "prefix.json").read_text())
    prefix["frontier"][1][2] = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    (bundle / "prefix.json").write_text(json.dumps(prefix))
    report = verify_bundle(bundle, signer.verifier_key())
    assert failing(report) == {"bad_checkpoint_root"}


def test_since_seq_trusted_before_start_cannot_be_checked(
    genuine: Log, signer: NoteSigner, tmp_path: Path
) -> None:
    bundle = export(genuine, signer, tmp_path / "b", first_seq=350)
    at_250 = signer.sign(format_checkpoint(Checkpoint(ORIGIN, 250, genuine.roots[250], T0)))
    report = verify_bundle(bundle, signer.verifier_key(), trusted_note=at_250)
    assert failing(report) == {"inconsistent_with_trusted"}


# -- writing --------------------------------------------------------------------------------------


def test_write_bundle_refuses_bad_input(genuine: Log, signer: NoteSigner, tmp_path: Path) -> None:
    target = tmp_path / "b"
    vkey = signer.verifier_key()
    with pytest.raises(BundleError, match="prefix"):
        write_bundle(target, genuine.events[10:], [], vkey, ORIGIN, 10, None)
    with pytest.raises(BundleError, match="frontier"):
        write_bundle(target, genuine.events[10:], [], vkey, ORIGIN, 10, genuine.frontiers[350])
    with pytest.raises(BundleError, match="newline"):
        write_bundle(target, [b"{}\n"], [], vkey, ORIGIN, 0, None)
    with pytest.raises(BundleError, match="not a checkpoint"):
        write_bundle(target, [], ["hello\n\n— x AAAA\n"], vkey, ORIGIN, 0, None)
    # A failed export leaves neither the bundle nor its temporary directory behind.
    assert list(tmp_path.iterdir()) == []
    export(genuine, signer, target)
    with pytest.raises(BundleError, match="exists"):
        export(genuine, signer, target)


def test_checkpoint_reason_round_trip() -> None:
    root = hashlib.sha256(b"r").digest()
    assert parse_checkpoint_reason(checkpoint_reason(42, root)) == (42, root)
    for bad in (None, "size=042 root=x", "size=1", f"size=1 root={base64.b64encode(root[:31])!r}"):
        assert parse_checkpoint_reason(bad) is None


# -- speed ----------------------------------------------------------------------------------------


def test_verify_speed(signer: NoteSigner, tmp_path: Path) -> None:
    n = 200_000
    log = build_log(signer, n, every=10_000, keep_roots=False)
    bundle = export(log, signer, tmp_path / "big")
    started = time.perf_counter()
    report = verify_bundle(bundle, signer.verifier_key())
    elapsed = time.perf_counter() - started
    assert report.ok, report.findings
    assert report.verified_size == 190_000
    per_million = elapsed * 1_000_000 / n
    print(f"\nverify_bundle: {n} events in {elapsed:.2f} s = {per_million:.1f} s per million")
    assert per_million < 30
