"""The offline verifier (``verify_bundle``); every rule is in docs/audit-bundle.md.

``verify_bundle`` streams events.jsonl once.  Each line is parsed and re-serialized to prove it
is in canonical form, its seq is checked against its position, and its leaf hash is pushed into
a ``CompactRange``; the root is snapshotted whenever the tree reaches the size of a checkpoint
(or of the auditor's trusted checkpoint), so every signed root is recomputed from the events.
The checks that need the whole stream (checkpoint roots, deleted checkpoints, trusted
checkpoints, the tail) run afterwards on those snapshots.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import json.encoder
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from vault.audit.bundle.format import (
    BUNDLE_FORMAT,
    CHECKPOINT_ACTION,
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    EVENTS_FILE,
    FAILING_KINDS,
    FINDING_KINDS,
    MANIFEST_FILE,
    PREFIX_FILE,
    Finding,
    Problem,
    Report,
    parse_checkpoint_reason,
)
from vault.audit.merkle import EMPTY_ROOT, CompactRange
from vault.audit.note import Checkpoint, NoteError, NoteVerifier, parse_checkpoint

__all__ = ["MAX_FINDINGS_PER_KIND", "verify_bundle"]

# A wholesale shuffled or rewritten file would otherwise produce one finding per line; past
# this many findings of one kind only a count is kept, which is what a reader can act on.
MAX_FINDINGS_PER_KIND = 100
# Distinct wordings folded separately per kind; past this, the rest of a kind share one line, so
# a file full of differently broken lines cannot make the summary as long as the file.
MAX_PROBLEMS_PER_KIND = 20
# What varies between findings that say the same thing: numbers (sizes, seqs, lines) and the
# base64 roots of checkpoints.
_VARYING = re.compile(r"[A-Za-z0-9+/]{43}=|[0-9]+")

_DIGEST = 8  # bytes of each leaf hash kept per seq, only to tell duplicates from insertions
_ZERO = bytes(_DIGEST)

_UNREADABLE = "Nothing verified: the bundle could not be read (see the findings)."


def verify_bundle(
    path: Path, verifier_key: str, trusted_note: str | Sequence[str] | None = None
) -> Report:
    """Verify a bundle directory offline; see docs/audit-bundle.md for every rule.

    Raises NoteError only when ``verifier_key`` itself is unusable; everything wrong with the
    bundle is reported as findings.  ``ok`` is true when the only finding is the unverified
    tail.  ``trusted_note`` is one checkpoint the auditor kept (``--trusted``) or several (the
    WORM-anchored checkpoints, ``--anchored``).
    """
    started = time.perf_counter()
    root = Path(path)
    verifier = NoteVerifier.from_verifier_key(verifier_key)
    out = _Findings()

    manifest = _read_manifest(root, out)
    if manifest is None:
        return _report(out, started)
    origin: str = manifest["origin"]
    first_seq: int = manifest["first_seq"]
    prefix = _read_prefix(root, first_seq, out)
    if prefix is None:
        return _report(out, started, origin=origin, first_seq=first_seq)
    cps, rejected = _read_checkpoints(root, verifier, origin, out)
    trusted = _read_trusted(trusted_note, verifier, origin, out)

    events = _read_events(root, first_seq, prefix, _sizes_to_snapshot(cps, trusted, first_seq), out)
    if events is None:
        return _report(out, started, origin=origin, first_seq=first_seq, checkpoints=len(cps))
    _check_not_empty(events, out)
    _check_event_count(manifest["event_count"], events, out)

    verified, newest = _check_checkpoint_roots(cps, events, first_seq, out)
    _check_announced_checkpoints(cps, rejected, events, first_seq, out)
    trusted_ok = [t.size for t in trusted if _check_trusted(t, cps, events, first_seq, out)]
    tail = _report_tail(newest, events.tree_size, out)
    return _report(
        out,
        started,
        origin=origin,
        first_seq=first_seq,
        tree_size=events.tree_size,
        event_count=events.lines,
        verified_size=verified.cp.size if verified is not None else 0,
        checkpoints=len(cps),
        unverified_tail=tail,
        coverage=_coverage(events, first_seq, verified, trusted_ok, bool(trusted_note)),
    )


# -- findings and what the steps hand on -------------------------------------------------------


class _Findings:
    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.counts: dict[str, int] = {}
        # (kind, wording with the varying parts masked) -> the folded problem, in the order
        # first found; ``None`` as wording is the shared line of a kind past its limit.
        self.problems: dict[tuple[str, str | None], Problem] = {}
        self._wordings: dict[str, int] = {}

    def add(self, kind: str, where: str, detail: str) -> None:
        assert kind in FINDING_KINDS, kind
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n <= MAX_FINDINGS_PER_KIND:
            self.items.append(Finding(kind, where, detail))
        key: tuple[str, str | None] = (kind, _VARYING.sub("#", detail))
        if key not in self.problems and self._wordings.get(kind, 0) >= MAX_PROBLEMS_PER_KIND:
            key = (kind, None)
        problem = self.problems.get(key)
        if problem is None:
            self.problems[key] = Problem(kind, 1, where, where, detail)
            if key[1] is not None:
                self._wordings[kind] = self._wordings.get(kind, 0) + 1
        else:
            problem.count += 1
            problem.last = where

    def close(self) -> None:
        for kind, n in self.counts.items():
            if n > MAX_FINDINGS_PER_KIND:
                more = n - MAX_FINDINGS_PER_KIND
                self.items.append(Finding(kind, "(summary)", f"{more} more not listed"))


@dataclass
class _Cp:
    file: str
    cp: Checkpoint


@dataclass
class _CpEvent:
    seq: int
    size: int
    root: bytes


@dataclass
class _Events:
    """What the one pass over events.jsonl found."""

    lines: int
    tree_size: int
    roots: dict[int, bytes]  # the root recomputed at each checkpoint (and trusted) size
    announced: list[_CpEvent]  # the audit.checkpoint events, in file order
    missing: bool = False  # events.jsonl does not exist


def _report(
    out: _Findings, started: float, *, coverage: str = _UNREADABLE, **values: Any
) -> Report:
    out.close()
    values.setdefault("event_count", 0)
    values.setdefault("verified_size", 0)
    values.setdefault("checkpoints", 0)
    values.setdefault("unverified_tail", 0)
    return Report(
        ok=not any(f.kind in FAILING_KINDS for f in out.items),
        findings=out.items,
        seconds=time.perf_counter() - started,
        counts=dict(out.counts),
        coverage=coverage,
        problems=list(out.problems.values()),
        **values,
    )


def _seq_range(lo: int, hi: int) -> str:
    """Human form of the seq range [lo, hi)."""
    return f"seq {lo}" if hi - lo == 1 else f"seq {lo}–{hi - 1}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the steps, in the order verify_bundle takes them ---------------------------------------------


def _read_manifest(root: Path, out: _Findings) -> dict[str, Any] | None:
    try:
        manifest = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        out.add("malformed", MANIFEST_FILE, f"cannot read the manifest: {exc}")
        return None
    if not isinstance(manifest, dict):
        out.add("malformed", MANIFEST_FILE, "the manifest is not a JSON object")
        return None
    problems = []
    if manifest.get("format") != BUNDLE_FORMAT:
        problems.append(f"format is not {BUNDLE_FORMAT!r}")
    if not isinstance(manifest.get("origin"), str) or not manifest["origin"]:
        problems.append("origin missing")
    for name in ("first_seq", "event_count"):
        value = manifest.get(name)
        if type(value) is not int or value < 0:
            problems.append(f"{name} is not a non-negative integer")
    if problems:
        out.add("malformed", MANIFEST_FILE, "; ".join(problems))
        return None
    return manifest


def _read_prefix(root: Path, first_seq: int, out: _Findings) -> CompactRange | None:
    if first_seq == 0:
        return CompactRange()
    try:
        prefix = json.loads((root / PREFIX_FILE).read_text(encoding="utf-8"))
        if not isinstance(prefix, dict) or prefix.get("size") != first_seq:
            raise ValueError(f"size is not first_seq {first_seq}")
        frontier: list[tuple[int, int, bytes]] = []
        for item in prefix["frontier"]:
            level, index, h = item
            if type(level) is not int or type(index) is not int or not isinstance(h, str):
                raise ValueError(f"bad frontier entry {item!r}")
            frontier.append((level, index, base64.b64decode(h, validate=True)))
        return CompactRange.from_frontier(first_seq, frontier)
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        out.add("malformed", PREFIX_FILE, f"the prefix frontier is unusable: {exc}")
        return None


def _read_checkpoints(
    root: Path, verifier: NoteVerifier, origin: str, out: _Findings
) -> tuple[list[_Cp], set[int]]:
    """The checkpoints that verify, by size, and the sizes of the files that did not."""
    rejected: set[int] = set()
    cp_dir = root / CHECKPOINT_DIR
    if not cp_dir.is_dir():
        out.add("malformed", CHECKPOINT_DIR, "the checkpoints directory is missing")
        return [], rejected
    good: list[_Cp] = []
    for entry in sorted(cp_dir.iterdir()):
        where = f"{CHECKPOINT_DIR}/{entry.name}"
        m = CHECKPOINT_FILE.fullmatch(entry.name)
        if m is None or not entry.is_file():
            out.add("malformed", where, "not a checkpoint file name (20 digits + .note)")
            continue
        rejected.add(int(m.group(1)))
        try:
            note = entry.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            out.add("malformed", where, f"unreadable: {exc}")
            continue
        try:
            text = verifier.verify(note)
        except NoteError as exc:
            out.add("bad_signature", where, str(exc))
            continue
        try:
            cp = parse_checkpoint(text)
        except NoteError as exc:
            out.add("malformed", where, f"signed, but not a valid checkpoint: {exc}")
            continue
        if cp.origin != origin:
            out.add("malformed", where, f"origin {cp.origin!r} is not the bundle's {origin!r}")
            continue
        if int(m.group(1)) != cp.size:
            out.add(
                "bad_checkpoint_size",
                where,
                f"the file name says size {int(m.group(1))}, the signed note says {cp.size}",
            )
        rejected.discard(int(m.group(1)))
        good.append(_Cp(where, cp))
    good.sort(key=lambda c: c.cp.size)
    kept: list[_Cp] = []
    for c in good:
        if kept and kept[-1].cp.size == c.cp.size:
            prev = kept[-1]
            if prev.cp.root != c.cp.root:
                out.add(
                    "bad_checkpoint_size",
                    c.file,
                    f"size {c.cp.size} is also claimed by {prev.file} with a different root",
                )
            continue
        if kept and c.cp.time <= kept[-1].cp.time:
            out.add(
                "time_not_increasing",
                c.file,
                f"cut at {c.cp.time.isoformat()}, not after the smaller checkpoint "
                f"{kept[-1].file} ({kept[-1].cp.time.isoformat()})",
            )
        kept.append(c)
    return kept, rejected


def _read_trusted(
    trusted_note: str | Sequence[str] | None,
    verifier: NoteVerifier,
    origin: str,
    out: _Findings,
) -> list[Checkpoint]:
    """The trusted checkpoints that verify with the key and belong to this log."""
    notes = [trusted_note] if isinstance(trusted_note, str) else list(trusted_note or [])
    trusted_set: list[Checkpoint] = []
    for note in notes:
        try:
            trusted = parse_checkpoint(verifier.verify(note))
        except NoteError as exc:
            out.add("inconsistent_with_trusted", "--trusted", f"unusable: {exc}")
            continue
        if trusted.origin != origin:
            out.add(
                "inconsistent_with_trusted",
                "--trusted",
                f"origin {trusted.origin!r} is not the bundle's {origin!r}",
            )
            continue
        trusted_set.append(trusted)
    return trusted_set


def _sizes_to_snapshot(cps: list[_Cp], trusted: list[Checkpoint], first_seq: int) -> list[int]:
    """The tree sizes whose root the event stream must recompute, ascending."""
    wanted = {c.cp.size for c in cps if c.cp.size >= first_seq}
    wanted.update(t.size for t in trusted if t.size >= first_seq)
    return sorted(wanted)


def _read_events(
    root: Path, first_seq: int, prefix: CompactRange, wanted: list[int], out: _Findings
) -> _Events | None:
    """Stream events.jsonl; None when it exists but cannot be read to the end."""
    roots: dict[int, bytes] = {}
    if first_seq in wanted:
        roots[first_seq] = prefix.root()
    try:
        lines, announced = _stream_events(root / EVENTS_FILE, first_seq, prefix, wanted, roots, out)
    except FileNotFoundError:
        # No events at all: the later checks still run, so that every checkpoint the bundle
        # holds is reported as cut off rather than the bundle being waved through as empty.
        return _Events(0, first_seq, roots, [], missing=True)
    except OSError as exc:
        out.add("malformed", EVENTS_FILE, f"cannot read the events: {exc}")
        return None
    return _Events(lines, first_seq + lines, roots, announced)


def _check_not_empty(events: _Events, out: _Findings) -> None:
    # A bundle without events proves nothing, and emptying one is the cheapest forgery of all;
    # it must never read as a clean "OK".
    if events.missing:
        out.add("empty", EVENTS_FILE, "the file is missing: the bundle holds no events to verify")
    elif events.lines == 0:
        out.add("empty", EVENTS_FILE, "the file holds no events: there is nothing to verify")


def _check_event_count(listed: int, events: _Events, out: _Findings) -> None:
    lines = events.lines
    if lines < listed:
        out.add(
            "truncated",
            EVENTS_FILE,
            f"the manifest lists {listed} events, the file holds {lines}",
        )
    elif lines > listed:
        out.add(
            "inserted",
            EVENTS_FILE,
            f"the manifest lists {listed} events, the file holds {lines}",
        )


def _check_checkpoint_roots(
    cps: list[_Cp], events: _Events, first_seq: int, out: _Findings
) -> tuple[_Cp | None, int]:
    """Each signed root against the recomputed one; returns (newest match, newest size).

    Smallest first, so that a mismatch can be narrowed to the events between the last
    checkpoint that matched and the one that does not.
    """
    tree_size, roots = events.tree_size, events.roots
    named: dict[bytes, _CpEvent] = {}
    for ce in events.announced:
        named.setdefault(ce.root, ce)
    verified: _Cp | None = None
    last_good = first_seq
    newest = first_seq
    for c in cps:
        size = c.cp.size
        if size < first_seq:
            continue
        if size > tree_size:
            out.add(
                "truncated",
                c.file,
                f"the checkpoint covers {size} events but the bundle ends at seq {tree_size - 1}"
                f" ({size - tree_size} events cut off)",
            )
            continue
        newest = max(newest, size)
        if roots.get(size) == c.cp.root:
            verified = c
            last_good = size
            continue
        announced = named.get(c.cp.root)
        if announced is not None and announced.size != size:
            out.add(
                "bad_checkpoint_size",
                c.file,
                f"the note says size {size}, but its root is the one the audit.checkpoint "
                f"event at seq {announced.seq} gives for size {announced.size}",
            )
            continue
        where = _seq_range(last_good, size) if size > last_good else "the prefix frontier"
        out.add(
            "bad_checkpoint_root",
            c.file,
            f"the root of the {size} events differs from the signed root; "
            f"the change is in {where} (after the last matching checkpoint)",
        )
    return verified, newest


def _check_announced_checkpoints(
    cps: list[_Cp], rejected: set[int], events: _Events, first_seq: int, out: _Findings
) -> None:
    """Every checkpoint an audit.checkpoint event names must be in the bundle, unaltered.

    A checkpoint the server cut is announced by such an event; if the note is gone from the
    bundle it was deleted (unless it predates a since-seq bundle).
    """
    by_size = {c.cp.size: c for c in cps}
    cp_roots = {c.cp.root for c in cps}
    for ce in events.announced:
        if ce.size < first_seq:
            continue
        present = by_size.get(ce.size)
        if present is not None and present.cp.root == ce.root:
            continue
        if ce.root in cp_roots or ce.size in rejected:
            continue  # The note is there but altered or unverifiable; reported above.
        if present is None:
            out.add(
                "deleted_checkpoint",
                f"seq {ce.seq}",
                f"the audit.checkpoint event names a checkpoint of size {ce.size} "
                f"(root {_b64(ce.root)}) that is not in {CHECKPOINT_DIR}/",
            )
        elif events.roots.get(ce.size) == present.cp.root:
            out.add(
                "bad_checkpoint_root",
                f"seq {ce.seq}",
                f"the audit.checkpoint event names root {_b64(ce.root)} for size {ce.size}, "
                f"but the events and {present.file} give {_b64(present.cp.root)}",
            )


def _check_trusted(
    trusted: Checkpoint, cps: list[_Cp], events: _Events, first_seq: int, out: _Findings
) -> bool:
    """One trusted checkpoint against the bundle; True when the bundle agrees with it."""
    size = trusted.size
    where = f"--trusted (size {size})"
    same = next((c for c in cps if c.cp.size == size), None)
    if same is not None:
        if same.cp.root != trusted.root:
            out.add(
                "inconsistent_with_trusted",
                where,
                f"{same.file} has a different root for the same size: history was rewritten",
            )
            return False
        return True
    if size > events.tree_size:
        out.add(
            "inconsistent_with_trusted",
            where,
            f"the bundle ends at tree size {events.tree_size}, before the trusted checkpoint",
        )
    elif size < first_seq:
        out.add(
            "inconsistent_with_trusted",
            where,
            f"cannot be checked: the bundle starts at seq {first_seq} and holds no "
            f"checkpoint of size {size}",
        )
    elif size == 0:
        if trusted.root == EMPTY_ROOT:
            return True
        out.add("inconsistent_with_trusted", where, "not the empty-tree root")
    elif events.roots.get(size) != trusted.root:
        out.add(
            "inconsistent_with_trusted",
            where,
            "the root recomputed from the events differs: history was rewritten",
        )
    else:
        return True
    return False


def _report_tail(newest: int, tree_size: int, out: _Findings) -> int:
    """Events after the newest checkpoint: reported, not failing (SPEC §5)."""
    tail = tree_size - newest
    if tail <= 0:
        return 0
    out.add(
        "unverified_tail",
        _seq_range(newest, tree_size),
        f"{tail} events after the newest checkpoint are not covered by a signed root",
    )
    return tail


def _coverage(
    events: _Events,
    first_seq: int,
    verified: _Cp | None,
    trusted_sizes: list[int],
    trusted_given: bool,
) -> str:
    """The one sentence saying how far the bundle is proven complete.

    The bundle cannot prove its own end: events cut off together with every newer checkpoint
    and the audit.checkpoint events naming them leave a bundle that verifies cleanly.  Only a
    checkpoint kept outside it (``--trusted``, ``--anchored``) can show such a truncation, so
    the report always states where the proof stops instead of leaving "OK" to imply more.
    """
    if events.lines == 0:
        return "Nothing verified: the bundle holds no events."
    # With checkpoints already given, only one newer than those can extend the proof.
    later = "--trusted or --anchored"
    if trusted_given:
        later = f"a newer checkpoint from {later}"
    own = ""
    if verified is not None:
        when = verified.cp.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        own = f"size {verified.cp.size}, cut {when}"
    best_trusted = max((s for s in trusted_sizes if s > first_seq), default=None)
    if best_trusted is not None and (verified is None or best_trusted > verified.cp.size):
        mine = (
            f"the bundle's own newest matching checkpoint: {own}"
            if own
            else "no checkpoint in the bundle matches its events"
        )
        return (
            f"Verified only up to the trusted checkpoint of size {best_trusted} ({mine}): "
            f"truncation after that point can only be detected with {later}."
        )
    if verified is None:
        return (
            "Not verified: no checkpoint in the bundle matches its events, so truncation "
            f"can only be detected with {later}."
        )
    return (
        f"Verified only up to the newest checkpoint in the bundle that matches its events "
        f"({own}): truncation after that point can only be detected with {later}."
    )


# -- the event stream ---------------------------------------------------------------------------


def _canonical_encoder() -> Callable[[Any], str]:
    """``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, faster.

    ``JSONEncoder.encode`` builds a new C encoder object on every call; building it once saves
    a noticeable share of the verifier's per-event cost.  Cycle detection is off because a
    value that came out of the JSON parser cannot be circular.  Without the C accelerator
    the documented encoder is used.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    c_encode = make(None, None, json.encoder.encode_basestring, None, ":", ",", True, False, True)

    def encode(obj: Any) -> str:
        return "".join(c_encode(obj, 0))

    return encode


def _stream_events(
    file: Path,
    first_seq: int,
    cr: CompactRange,
    wanted: list[int],
    roots: dict[int, bytes],
    out: _Findings,
) -> tuple[int, list[_CpEvent]]:
    """One pass over events.jsonl: canonical form, seq order, leaf hashes, root snapshots.

    This loop is the verifier's whole cost, so it keeps per-line work to parse, re-serialize,
    hash and push; anything unusual is handed to the slow path in ``_SeqTracker``.
    """
    encode = _canonical_encoder()
    raw_decode = json.JSONDecoder().raw_decode
    leaf_prefix = hashlib.sha256(b"\x00")
    push = cr.push
    snaps = [s for s in wanted if s > cr.size]
    snap_i = 0
    next_snap = snaps[0] if snaps else -1
    seq_track = _SeqTracker(first_seq, out)
    seen = seq_track.seen
    expected = first_seq
    cp_events: list[_CpEvent] = []
    lines = 0
    with open(file, "rb", buffering=1 << 20) as f:
        for line in f:
            lines += 1
            if line[-1:] == b"\n":
                body = line[:-1]
            else:
                body = line
                out.add("malformed", f"line {lines}", "the last line has no final newline")
            h = leaf_prefix.copy()
            h.update(body)
            leaf = h.digest()
            push(leaf)
            if cr.size == next_snap:
                roots[next_snap] = cr.root()
                snap_i += 1
                next_snap = snaps[snap_i] if snap_i < len(snaps) else -1
            # Comparing text with text is exact here: strict UTF-8 decoding is a bijection, so
            # the line equals the encoded canonical form exactly when the decoded line equals
            # the canonical text (and a lone surrogate in the canonical text can never match).
            try:
                text = body.decode()
                ev, end = raw_decode(text)
            except (ValueError, RecursionError) as exc:
                # RecursionError: absurdly deep nesting, which no genuine event has.
                out.add("malformed", f"line {lines}", f"not a UTF-8 JSON value: {exc!r}")
                ev = None
            seq = ev.get("seq") if type(ev) is dict else None
            if type(seq) is not int:
                if ev is not None:
                    out.add("malformed", f"line {lines}", "not an event object with an integer seq")
                # An unreadable line still occupies the next position; counting it there keeps
                # one broken line from also being reported as a missing event.
                expected += 1
                seen += leaf[:_DIGEST]
                continue
            if end != len(text) or encode(ev) != text:
                out.add(
                    "modified",
                    f"seq {seq} (line {lines})",
                    "the line is not the canonical serialization of its event",
                )
            if seq == expected:
                expected += 1
                seen += leaf[:_DIGEST]
            else:
                expected = seq_track.unexpected(seq, expected, lines, leaf[:_DIGEST])
            if ev.get("action") == CHECKPOINT_ACTION:
                named = parse_checkpoint_reason(ev.get("reason"))
                if named is None:
                    out.add("malformed", f"seq {seq}", "audit.checkpoint event without size/root")
                    continue
                if named[0] > seq:
                    out.add(
                        "malformed",
                        f"seq {seq}",
                        f"audit.checkpoint event names size {named[0]}, after itself",
                    )
                cp_events.append(_CpEvent(seq, named[0], named[1]))
    seq_track.finish()
    return lines, cp_events


class _SeqTracker:
    """Classifies lines whose seq is not the next expected one.

    ``seen`` keeps a short digest of each seq's leaf (zero bytes for a seq not seen yet), so a
    seq that shows up again can be told apart: the same bytes again are a duplicate, other
    bytes an inserted event.  A seq that fills an earlier gap arrived out of order.  Gaps
    still open at the end are missing events.
    """

    # A seq this far beyond every line so far cannot be a deletion in a real export; not
    # tracking it keeps a single hostile line from allocating gigabytes.
    MAX_JUMP = 50_000_000

    def __init__(self, first_seq: int, out: _Findings) -> None:
        self.first_seq = first_seq
        self.out = out
        self.seen = bytearray()
        self.gap_lo: list[int] = []
        self.gaps: list[list[int]] = []  # [lo, hi, line where the gap was noticed]

    def unexpected(self, seq: int, expected: int, line: int, digest: bytes) -> int:
        first = self.first_seq
        if seq > expected:
            if seq - expected > self.MAX_JUMP:
                self.out.add("malformed", f"line {line}", f"seq {seq} is implausibly far ahead")
                return expected
            self.gap_lo.append(expected)
            self.gaps.append([expected, seq, line])
            self.seen += bytes(_DIGEST * (seq - expected))
            self.seen += digest
            return seq + 1
        if seq < first:
            self.out.add(
                "inserted",
                f"seq {seq} (line {line})",
                f"the bundle starts at seq {first}; this event does not belong to it",
            )
            return expected
        slot = (seq - first) * _DIGEST
        previous = bytes(self.seen[slot : slot + _DIGEST])
        if previous == _ZERO:
            self._fill_gap(seq, line)
            self.seen[slot : slot + _DIGEST] = digest
        elif previous == digest:
            self.out.add(
                "duplicate",
                f"seq {seq} (line {line})",
                "an identical event with this seq appeared earlier",
            )
        else:
            self.out.add(
                "inserted",
                f"seq {seq} (line {line})",
                "an earlier line already holds this seq with different content",
            )
        return expected

    def _fill_gap(self, seq: int, line: int) -> None:
        i = bisect.bisect_right(self.gap_lo, seq) - 1
        lo, hi, noticed = self.gaps[i]
        self.out.add(
            "reordered",
            f"seq {seq} (line {line})",
            f"out of order: it belongs before line {noticed}, where seq {hi} came early",
        )
        pieces = [p for p in ([lo, seq, noticed], [seq + 1, hi, noticed]) if p[1] > p[0]]
        self.gaps[i : i + 1] = pieces
        self.gap_lo[i : i + 1] = [p[0] for p in pieces]

    def finish(self) -> None:
        for lo, hi, noticed in self.gaps:
            self.out.add(
                "missing",
                _seq_range(lo, hi),
                f"{hi - lo} events absent (the jump is at line {noticed})",
            )
