"""The audit log's RFC 6962 tree, kept as stored perfect-subtree hashes.

Leaf hashes are the ``leaf_hash`` column of ``audit_events`` (level 0); every perfect subtree
above them is a row of ``audit_tree`` (level >= 1), written in the same transaction as the
event that completes it.  An append therefore writes O(1) rows on average and O(log n) at
most, and a root or proof reads O(log n) rows: nothing is ever recomputed from the leaves.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, tuple_

from vault.audit.merkle import (
    CompactRange,
    consistency_proof,
    decomposition,
    inclusion_proof,
    root_at,
)
from vault.audit.models import AuditEvent, AuditTreeNode


class TreeReader:
    """Answers (level, index) -> hash for one connection, i.e. for one consistent snapshot."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cache: dict[tuple[int, int], bytes] = {}

    def get(self, level: int, index: int) -> bytes:
        key = (level, index)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if level == 0:
            value = self._conn.execute(
                select(AuditEvent.leaf_hash).where(AuditEvent.seq == index)
            ).scalar()
        else:
            value = self._conn.execute(
                select(AuditTreeNode.hash).where(
                    AuditTreeNode.level == level, AuditTreeNode.idx == index
                )
            ).scalar()
        if value is None:
            raise LookupError(f"tree node ({level}, {index}) is missing")
        self._cache[key] = value
        return bytes(value)

    def frontier(self, size: int) -> list[tuple[int, int, bytes]]:
        """The perfect subtrees whose concatenation is leaves [0, size), left to right.

        Read in one statement for the tree rows (and one for a leaf, if the decomposition
        ends in one): an append whose remembered frontier another node made stale reads it
        here while it holds the log's counter row, so round trips count.
        """
        parts = decomposition(size)
        wanted = [(lvl, idx) for lvl, idx in parts if lvl > 0 and (lvl, idx) not in self._cache]
        if wanted:
            rows = self._conn.execute(
                select(AuditTreeNode.level, AuditTreeNode.idx, AuditTreeNode.hash).where(
                    tuple_(AuditTreeNode.level, AuditTreeNode.idx).in_(wanted)
                )
            )
            for lvl, idx, value in rows:
                self._cache[(int(lvl), int(idx))] = bytes(value)
        return [(level, index, self.get(level, index)) for level, index in parts]

    def compact_range(self, size: int) -> CompactRange:
        """A compact range positioned at ``size``, ready to append the next leaves."""
        return CompactRange.from_frontier(size, self.frontier(size))

    def root(self, size: int) -> bytes:
        return root_at(size, self.get)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(index, size, self.get)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return consistency_proof(old, new, self.get)
