"""Audit export bundles and the offline verifier.

A bundle is a directory an auditor can check with nothing but the bundle and the log's
verifier key (no database, no network); the layout is documented in docs/audit-bundle.md:

    events.jsonl              one canonical event per line (the exact leaf bytes, then "\\n")
    checkpoints/<size>.note   every signed checkpoint, the size zero-padded to 20 digits
    verifier.key              the verifier key, one line
    manifest.json             {"format", "origin", "first_seq", "event_count", "exported_at"}
    prefix.json               only when first_seq > 0: the frontier of the first first_seq leaves

The package is split by role: ``format`` (names, the checkpoint event, report types),
``export`` (``write_bundle``) and ``verify`` (``verify_bundle``).  Callers import from here.
"""

from vault.audit.bundle.export import write_bundle
from vault.audit.bundle.format import (
    BUNDLE_FORMAT,
    CHECKPOINT_ACTION,
    FINDING_KINDS,
    BundleError,
    Finding,
    Problem,
    Report,
    checkpoint_filename,
    checkpoint_reason,
    parse_checkpoint_reason,
)
from vault.audit.bundle.verify import MAX_FINDINGS_PER_KIND, verify_bundle

__all__ = [
    "BUNDLE_FORMAT",
    "CHECKPOINT_ACTION",
    "FINDING_KINDS",
    "MAX_FINDINGS_PER_KIND",
    "BundleError",
    "Finding",
    "Problem",
    "Report",
    "checkpoint_filename",
    "checkpoint_reason",
    "parse_checkpoint_reason",
    "verify_bundle",
    "write_bundle",
]
