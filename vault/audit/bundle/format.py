"""The bundle format (``kinko-audit-bundle/v1``): file names, the checkpoint event, report types.

Everything both sides of a bundle agree on lives here, so the writer (``export``), the
verifier (``verify``) and the server (which names its checkpoints in ``audit.checkpoint``
events) share one definition; docs/audit-bundle.md describes the same format in prose.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUNDLE_FORMAT",
    "CHECKPOINT_ACTION",
    "CHECKPOINT_DIR",
    "EVENTS_FILE",
    "FAILING_KINDS",
    "FINDING_KINDS",
    "KEY_FILE",
    "MANIFEST_FILE",
    "PREFIX_FILE",
    "BundleError",
    "Finding",
    "Problem",
    "Report",
    "checkpoint_filename",
    "checkpoint_reason",
    "parse_checkpoint_reason",
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
        "empty",
        "unverified_tail",
    }
)
# The unverified tail is expected in every export of a live log (events keep arriving after the
# newest checkpoint), so it is reported without failing verification; every other kind fails.
FAILING_KINDS = FINDING_KINDS - {"unverified_tail"}

CHECKPOINT_FILE = re.compile(r"([0-9]{20})\.note")
_CHECKPOINT_REASON = re.compile(r"size=(0|[1-9][0-9]*) root=([A-Za-z0-9+/]{43}=)")


class BundleError(Exception):
    """A bundle cannot be written (bad arguments or the target already exists)."""


@dataclass
class Finding:
    kind: str
    where: str
    detail: str


@dataclass
class Problem:
    """Findings of one kind that say the same thing, folded into one line of the report.

    One tampered event breaks the root of every later checkpoint; listing each of them would
    bury the one finding that says where the change is.  ``detail`` is the first finding's
    (the most telling: it narrows the place down), ``first`` and ``last`` where the first and
    the last of them were found, ``count`` how many there were in all.
    """

    kind: str
    count: int
    first: str
    last: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "detail": self.detail,
        }


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
    # One plain sentence on how far the bundle is proven complete and what it cannot show: a
    # bundle cut short together with its newest checkpoints still verifies, so a reader of an
    # "OK" must be told where the proof ends.
    coverage: str = ""
    # The findings folded by kind and wording, every one counted (also past the listing cap).
    problems: list[Problem] = field(default_factory=list)

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
            "coverage": self.coverage,
            "seconds": round(self.seconds, 3),
            "counts": dict(self.counts),
            "findings": [
                {"kind": f.kind, "where": f.where, "detail": f.detail} for f in self.findings
            ],
            "problems": [p.to_dict() for p in self.problems],
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
