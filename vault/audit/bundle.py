"""Audit export bundles and the offline verifier.

A bundle is a directory an auditor can check with nothing but the bundle and the log's
verifier key (no database, no network); the layout is documented in docs/audit-bundle.md:

    events.jsonl              one canonical event per line (the exact leaf bytes, then "\\n")
    checkpoints/<size>.note   every signed checkpoint, the size zero-padded to 20 digits
    verifier.key              the verifier key, one line
    manifest.json             {"format", "origin", "first_seq", "event_count", "exported_at"}
    prefix.json               only when first_seq > 0: the frontier of the first first_seq leaves

``verify_bundle`` streams events.jsonl once.  Each line is parsed and re-serialized to prove it
is in canonical form, its seq is checked against its position, and its leaf hash is pushed into
a ``CompactRange``; the root is snapshotted whenever the tree reaches the size of a checkpoint
(or of the auditor's trusted checkpoint), so every signed root is recomputed from the events.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import json.encoder
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vault.audit.merkle import EMPTY_ROOT, CompactRange
from vault.audit.note import Checkpoint, NoteError, NoteVerifier, parse_checkpoint

__all__ = [
    "BUNDLE_FORMAT",
    "CHECKPOINT_ACTION",
    "FINDING_KINDS",
    "BundleError",
    "Finding",
    "Report",
    "checkpoint_filename",
    "checkpoint_reason",
    "parse_checkpoint_reason",
    "verify_bundle",
    "write_bundle",
]

BUNDLE_FORMAT = "kinko-audit-bundle/v1"
CHECKPOINT_ACTION = "audit.checkpoint"
EVENTS_FILE = "events.jsonl"
CHECKPOINT_DIR = "checkpoints"
KEY_FILE = "verifier.key"
MANIFEST_FILE = "manifest.json"
PREFIX_FILE = "prefix.json"

FINDING_KINDS = frozenset(
    {
        "modified",
        "missing",
        "reordered",
        "inserted",
        "duplicate",
        "truncated",
        "bad_checkpoint_size",
        "bad_checkpoint_root",
        "bad_signature",
        "deleted_checkpoint",
        "inconsistent_with_trusted",
        "time_not_increasing",
        "malformed",
        "unverified_tail",
    }
)

# A wholesale shuffled or rewritten file would otherwise produce one finding per line; past
# this many findings of one kind only a count is kept, which is what a reader can act on.
MAX_FINDINGS_PER_KIND = 100

_CHECKPOINT_FILE = re.compile(r"([0-9]{20})\.note")
_CHECKPOINT_REASON = re.compile(r"size=(0|[1-9][0-9]*) root=([A-Za-z0-9+/]{43}=)")
_DIGEST = 8  # bytes of each leaf hash kept per seq, only to tell duplicates from insertions
_ZERO = bytes(_DIGEST)


class BundleError(Exception):
    """A bundle cannot be written (bad arguments or the target already exists)."""


@dataclass
class Finding:
    kind: str
    where: str
    detail: str


@dataclass
class Report:
    ok: bool
    event_count: int
    verified_size: int
    checkpoints: int
    unverified_tail: int
    findings: list[Finding]
    origin: str = ""
    first_seq: int = 0
    tree_size: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "origin": self.origin,
            "first_seq": self.first_seq,
            "event_count": self.event_count,
            "tree_size": self.tree_size,
            "verified_size": self.verified_size,
            "checkpoints": self.checkpoints,
            "unverified_tail": self.unverified_tail,
            "seconds": round(self.seconds, 3),
            "counts": dict(self.counts),
            "findings": [
                {"kind": f.kind, "where": f.where, "detail": f.detail} for f in self.findings
            ],
        }


def checkpoint_filename(size: int) -> str:
    return f"{size:020d}.note"


def checkpoint_reason(size: int, root: bytes) -> str:
    """The ``reason`` of the audit.checkpoint event the server appends when it cuts one."""
    return f"size={size} root={base64.b64encode(root).decode()}"


def parse_checkpoint_reason(reason: object) -> tuple[int, bytes] | None:
    if not isinstance(reason, str):
        return None
    m = _CHECKPOINT_REASON.fullmatch(reason)
    if m is None:
        return None
    try:
        root = base64.b64decode(m.group(2), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(root) != 32 or base64.b64encode(root).decode() != m.group(2):
        return None
    return int(m.group(1)), root


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _note_body(note: str) -> str:
    """The text of a signed note without checking its signature (used only to name files)."""
    split = note.rfind("\n\n")
    if split < 0:
        raise BundleError("not a signed note")
    return note[: split + 1]


# -- writing -------------------------------------------------------------------------------------


def write_bundle(
    path: Path,
    events: Iterable[bytes],
    checkpoints: Iterable[str],
    verifier_key: str,
    origin: str,
    first_seq: int,
    prefix_frontier: list[tuple[int, int, bytes]] | None,
    *,
    exported_at: datetime | None = None,
) -> int:
    """Write a bundle directory atomically and return the number of events written.

    Everything goes into a fresh sibling directory ``<path>.tmp-<random>`` that is renamed to
    ``path`` only once every file is complete and synced, so a crash or error never leaves a
    half-written bundle under the final name.
    """
    path = Path(path)
    if path.exists():
        raise BundleError(f"{path} already exists")
    if first_seq < 0:
        raise BundleError("first_seq must not be negative")
    if first_seq > 0:
        if prefix_frontier is None:
            raise BundleError("a bundle starting after seq 0 needs the prefix frontier")
        try:
            CompactRange.from_frontier(first_seq, prefix_frontier)
        except ValueError as exc:
            raise BundleError(f"invalid prefix frontier: {exc}") from None
    elif prefix_frontier:
        raise BundleError("a bundle starting at seq 0 has no prefix")
    key_line = verifier_key.strip()
    if not key_line or "\n" in key_line:
        raise BundleError("the verifier key must be one line")

    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}")
    tmp.mkdir(parents=False)
    try:
        count = 0
        with open(tmp / EVENTS_FILE, "wb", buffering=1 << 20) as f:
            for ev in events:
                if b"\n" in ev:
                    raise BundleError(f"event {first_seq + count} contains a newline")
                f.write(ev)
                f.write(b"\n")
                count += 1
            f.flush()
            os.fsync(f.fileno())
        cp_dir = tmp / CHECKPOINT_DIR
        cp_dir.mkdir()
        for note in checkpoints:
            try:
                size = parse_checkpoint(_note_body(note)).size
            except NoteError as exc:
                raise BundleError(f"not a checkpoint note: {exc}") from None
            target = cp_dir / checkpoint_filename(size)
            if target.exists():
                raise BundleError(f"two checkpoints of size {size}")
            _write_text(target, note)
        _write_text(tmp / KEY_FILE, key_line + "\n")
        if first_seq > 0 and prefix_frontier is not None:
            prefix = {
                "size": first_seq,
                "frontier": [[lvl, idx, _b64(h)] for lvl, idx, h in prefix_frontier],
            }
            _write_text(tmp / PREFIX_FILE, json.dumps(prefix, indent=1) + "\n")
        when = (exported_at or datetime.now(UTC)).astimezone(UTC)
        manifest = {
            "format": BUNDLE_FORMAT,
            "origin": origin,
            "first_seq": first_seq,
            "event_count": count,
            "exported_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        _write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
        _fsync_dir(cp_dir)
        _fsync_dir(tmp)
        tmp.rename(path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count


def _write_text(target: Path, text: str) -> None:
    with open(target, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    # Directory entries (the new files and the final rename) are only durable once the
    # directory itself is synced; platforms that cannot open directories skip this.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- verifying -----------------------------------------------------------------------------------


class _Findings:
    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.counts: dict[str, int] = {}

    def add(self, kind: str, where: str, detail: str) -> None:
        assert kind in FINDING_KINDS, kind
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n <= MAX_FINDINGS_PER_KIND:
            self.items.append(Finding(kind, where, detail))

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


def _seq_range(lo: int, hi: int) -> str:
    """Human form of the seq range [lo, hi)."""
    return f"seq {lo}" if hi - lo == 1 else f"seq {lo}–{hi - 1}"


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
    root: Path, verifier: NoteVerifier, origin: str, out: _Findings, rejected: set[int]
) -> list[_Cp]:
    """The checkpoints that verify, by size; ``rejected`` collects file sizes that did not."""
    cp_dir = root / CHECKPOINT_DIR
    if not cp_dir.is_dir():
        out.add("malformed", CHECKPOINT_DIR, "the checkpoints directory is missing")
        return []
    good: list[_Cp] = []
    for entry in sorted(cp_dir.iterdir()):
        where = f"{CHECKPOINT_DIR}/{entry.name}"
        m = _CHECKPOINT_FILE.fullmatch(entry.name)
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
    return kept


def verify_bundle(
    path: Path, verifier_key: str, trusted_note: str | Sequence[str] | None = None
) -> Report:
    """Verify a bundle directory offline; see docs/audit-bundle.md for every rule.

    Raises NoteError only when ``verifier_key`` itself is unusable; everything wrong with the
    bundle is reported as findings.  ``ok`` is true when the only finding is the unverified
    tail.
    """
    started = time.perf_counter()
    root = Path(path)
    verifier = NoteVerifier.from_verifier_key(verifier_key)
    out = _Findings()

    def finish(**values: Any) -> Report:
        out.close()
        failing = [f for f in out.items if f.kind != "unverified_tail"]
        values.setdefault("event_count", 0)
        values.setdefault("verified_size", 0)
        values.setdefault("checkpoints", 0)
        values.setdefault("unverified_tail", 0)
        return Report(
            ok=not failing,
            findings=out.items,
            seconds=time.perf_counter() - started,
            counts=dict(out.counts),
            **values,
        )

    manifest = _read_manifest(root, out)
    if manifest is None:
        return finish()
    origin: str = manifest["origin"]
    first_seq: int = manifest["first_seq"]
    cr = _read_prefix(root, first_seq, out)
    if cr is None:
        return finish(origin=origin, first_seq=first_seq)

    rejected: set[int] = set()
    cps = _read_checkpoints(root, verifier, origin, out, rejected)

    # One trusted checkpoint (--trusted) or a set of them (the WORM-anchored checkpoints).
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

    wanted = {c.cp.size for c in cps if c.cp.size >= first_seq}
    wanted.update(t.size for t in trusted_set if t.size >= first_seq)
    roots: dict[int, bytes] = {}
    if first_seq in wanted:
        roots[first_seq] = cr.root()

    try:
        stream = _stream_events(root / EVENTS_FILE, first_seq, cr, sorted(wanted), roots, out)
    except OSError as exc:
        out.add("malformed", EVENTS_FILE, f"cannot read the events: {exc}")
        return finish(origin=origin, first_seq=first_seq, checkpoints=len(cps))
    lines, cp_events = stream
    tree_size = first_seq + lines

    if lines < manifest["event_count"]:
        out.add(
            "truncated",
            EVENTS_FILE,
            f"the manifest lists {manifest['event_count']} events, the file holds {lines}",
        )
    elif lines > manifest["event_count"]:
        out.add(
            "inserted",
            EVENTS_FILE,
            f"the manifest lists {manifest['event_count']} events, the file holds {lines}",
        )

    named: dict[bytes, _CpEvent] = {}
    for ce in cp_events:
        named.setdefault(ce.root, ce)

    # Checkpoint roots against the events, smallest first, so a mismatch can be narrowed to
    # the events between the last checkpoint that matched and the one that does not.
    verified_size = 0
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
            verified_size = size
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

    # A checkpoint the server cut is announced by an audit.checkpoint event; if the note is
    # gone from the bundle it was deleted (unless it predates a since-seq bundle).
    by_size = {c.cp.size: c for c in cps}
    cp_roots = {c.cp.root for c in cps}
    for ce in cp_events:
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
        elif roots.get(ce.size) == present.cp.root:
            out.add(
                "bad_checkpoint_root",
                f"seq {ce.seq}",
                f"the audit.checkpoint event names root {_b64(ce.root)} for size {ce.size}, "
                f"but the events and {present.file} give {_b64(present.cp.root)}",
            )

    for trusted in trusted_set:
        _check_trusted(trusted, cps, roots, first_seq, tree_size, out)

    tail = tree_size - newest
    if tail > 0:
        out.add(
            "unverified_tail",
            _seq_range(newest, tree_size),
            f"{tail} events after the newest checkpoint are not covered by a signed root",
        )
    return finish(
        origin=origin,
        first_seq=first_seq,
        tree_size=tree_size,
        event_count=lines,
        verified_size=verified_size,
        checkpoints=len(cps),
        unverified_tail=max(tail, 0),
    )


def _check_trusted(
    trusted: Checkpoint,
    cps: list[_Cp],
    roots: dict[int, bytes],
    first_seq: int,
    tree_size: int,
    out: _Findings,
) -> None:
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
        return
    if size > tree_size:
        out.add(
            "inconsistent_with_trusted",
            where,
            f"the bundle ends at tree size {tree_size}, before the trusted checkpoint",
        )
    elif size < first_seq:
        out.add(
            "inconsistent_with_trusted",
            where,
            f"cannot be checked: the bundle starts at seq {first_seq} and holds no "
            f"checkpoint of size {size}",
        )
    elif size == 0:
        if trusted.root != EMPTY_ROOT:
            out.add("inconsistent_with_trusted", where, "not the empty-tree root")
    elif roots.get(size) != trusted.root:
        out.add(
            "inconsistent_with_trusted",
            where,
            "the root recomputed from the events differs: history was rewritten",
        )


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
