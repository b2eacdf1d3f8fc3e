"""Helpers for tests that play an insider forging an exported audit bundle."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from vault.audit.bundle import checkpoint_reason, parse_checkpoint_reason
from vault.audit.merkle import CompactRange, leaf_hash
from vault.audit.note import NoteSigner, format_checkpoint, parse_checkpoint


def canonical(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rewrite_history(
    bundle: Path, signer: NoteSigner, mutate: Callable[[list[dict[str, Any]]], None]
) -> dict[int, bytes]:
    """Change events, then make the bundle self-consistent again with the real signing key.

    Every checkpoint root is recomputed from the changed events and re-signed, and the
    audit.checkpoint events (which come after the size they name) are fixed to match, as a
    forger holding the server's key would.  Returns the new root for every checkpoint size.
    """
    path = bundle / "events.jsonl"
    events = [json.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]
    mutate(events)
    files = sorted((bundle / "checkpoints").iterdir())
    cps = [(f, parse_checkpoint(signer.verifier().verify(f.read_text()))) for f in files]
    sizes = {cp.size for _, cp in cps}
    compact = CompactRange()
    roots: dict[int, bytes] = {}
    lines = []
    for ev in events:
        if ev["action"] == "audit.checkpoint":
            named = parse_checkpoint_reason(ev["reason"])
            assert named is not None
            ev["reason"] = checkpoint_reason(named[0], roots[named[0]])
        line = canonical(ev)
        lines.append(line)
        compact.push(leaf_hash(line))
        if compact.size in sizes:
            roots[compact.size] = compact.root()
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["event_count"] = len(lines)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for f, cp in cps:
        f.write_text(signer.sign(format_checkpoint(replace(cp, root=roots[cp.size]))))
    return roots
