"""``kinko audit verify`` says each distinct problem once, with a count, not once per copy.

One event changed early in the log breaks the signed root of every later checkpoint; the
report must say so in one line (how many, the first and the last checkpoint, and the first
finding's detail, which narrows the change down), keep exit status 1, and keep the JSON report
machine-readable: every finding listed as before, plus the folded ``problems``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_kinko
from tests.unit.test_bundle_verify import (
    build_log,
    edit_event,
    export,
    read_lines,
    write_lines,
)
from vault.audit.bundle import MAX_FINDINGS_PER_KIND
from vault.audit.note import NoteSigner

EVERY = 40
EVENTS = 1000


def kinko(*args: str) -> subprocess.CompletedProcess[str]:
    return run_kinko(*args, timeout=60)


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, Path]:
    signer = NoteSigner.generate("kinko.example/audit")
    log = build_log(signer, n=EVENTS, every=EVERY)
    out = export(log, signer, tmp_path / "bundle")
    key = tmp_path / "verifier.key"
    key.write_text(signer.verifier_key() + "\n")
    return out, key


def test_one_tampered_event_is_one_line(bundle: tuple[Path, Path]) -> None:
    out, key = bundle
    edit_event(out, 45, actor="mallory")  # canonical, so only the roots can tell
    result = kinko("audit", "verify", str(out), "--key", str(key))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAILED: ")
    problems = [ln for ln in lines[2:] if ln.startswith("  ")]
    roots = [ln for ln in problems if ln.startswith("  bad_checkpoint_root:")]
    assert len(roots) == 1, result.stdout
    # Checkpoints at 80, 120, ..., 960 cover seq 45: 23 of them, reported once.
    affected = len(range(2 * EVERY, EVENTS, EVERY))
    assert f"{affected} times" in roots[0]
    assert (
        "from checkpoints/00000000000000000080.note to checkpoints/00000000000000000960.note"
        in roots[0]
    )
    # The first finding's detail is kept: it narrows the change to seq 40–79.
    assert "seq 40–79" in roots[0]
    # Nothing else fails, and the whole report fits on a screen.
    assert {ln.split(":")[0].strip() for ln in problems} <= {
        "bad_checkpoint_root",
        "unverified_tail",
    }
    assert len(lines) <= 5

    report = json.loads(kinko("audit", "verify", str(out), "--key", str(key), "--json").stdout)
    assert report["ok"] is False
    assert report["counts"]["bad_checkpoint_root"] == affected
    assert len([f for f in report["findings"] if f["kind"] == "bad_checkpoint_root"]) == affected
    (folded,) = [p for p in report["problems"] if p["kind"] == "bad_checkpoint_root"]
    assert folded == {
        "kind": "bad_checkpoint_root",
        "count": affected,
        "first": "checkpoints/00000000000000000080.note",
        "last": "checkpoints/00000000000000000960.note",
        "detail": folded["detail"],
    }
    assert "seq 40–79" in folded["detail"]


def test_different_problems_stay_apart_and_counts_pass_the_listing_cap(
    bundle: tuple[Path, Path],
) -> None:
    out, key = bundle
    lines = read_lines(out)
    # Many lines re-serialized non-canonically (a whole file rewritten by a tool, say) and one
    # event deleted: two problems of different kinds, and more copies than are listed.
    rewritten = range(100, 100 + MAX_FINDINGS_PER_KIND + 50)
    for i in rewritten:
        lines[i] = lines[i].replace(b'{"action"', b'{ "action"', 1)
    del lines[700]
    write_lines(out, lines)
    result = kinko("audit", "verify", str(out), "--key", str(key))
    assert result.returncode == 1, result.stdout + result.stderr
    problems = [ln for ln in result.stdout.splitlines() if ln.startswith("  ")]
    modified = [ln for ln in problems if ln.startswith("  modified:")]
    assert len(modified) == 1
    assert f"{len(rewritten)} times" in modified[0]
    last = rewritten[-1]
    assert f"from seq 100 (line 101) to seq {last} (line {last + 1})" in modified[0]
    missing = [ln for ln in problems if ln.startswith("  missing:")]
    assert missing == ["  missing: seq 700: 1 events absent (the jump is at line 701)"]

    report = json.loads(kinko("audit", "verify", str(out), "--key", str(key), "--json").stdout)
    (folded,) = [p for p in report["problems"] if p["kind"] == "modified"]
    assert folded["count"] == len(rewritten) == report["counts"]["modified"]
    listed = [f for f in report["findings"] if f["kind"] == "modified"]
    assert len(listed) == MAX_FINDINGS_PER_KIND + 1  # the cap, plus its "(summary)" line


def test_a_genuine_bundle_still_reads_ok(bundle: tuple[Path, Path]) -> None:
    out, key = bundle
    result = kinko("audit", "verify", str(out), "--key", str(key))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: ")
