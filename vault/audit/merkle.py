"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification (pure, no I/O).

The audit log is an append-only Merkle tree: leaf = SHA-256(0x00 ‖ data) and
node = SHA-256(0x01 ‖ left ‖ right).  A tree of n leaves hashes as

    MTH({})      = SHA-256()
    MTH({d0})    = leaf_hash(d0)
    MTH(D[0:n])  = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k = largest power of two < n

Every subtree that appears in that recursion is either *perfect* (2^L leaves starting at a
multiple of 2^L) or is itself a left-perfect part followed by a smaller right part.  A store
therefore only ever has to persist the hashes of perfect subtrees (``CompactRange.append``
reports them as they are completed) and can answer any root, inclusion proof or consistency
proof with O(log n) look-ups through a ``GetPerfect`` callback.

Perfect subtree (level L, index i) covers leaves [i * 2^L, (i + 1) * 2^L); level 0 is a leaf.

The verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 step by step and raise ``ProofError`` for
every failure, including malformed input such as hashes that are not 32 bytes long.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "GetPerfect",
    "ProofError",
    "consistency_proof",
    "decomposition",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_hash",
    "root_at",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256

GetPerfect = Callable[[int, int], bytes]
"""(level, index) -> hash of the perfect subtree covering [index * 2^level, (index+1) * 2^level)."""


class ProofError(Exception):
    """A Merkle proof (or the sizes and roots it is checked against) does not verify."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2), the RFC 6962 split point."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_perfect(start: int, n: int) -> bool:
    """Whether [start, start + n) is one aligned perfect subtree."""
    return n & (n - 1) == 0 and start & (n - 1) == 0


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Reference MTH over all leaf hashes, O(n) time.

    Hashing level by level and promoting an odd last node unchanged to the next level gives
    exactly the RFC 6962 recursion: the unpaired node is always the right-most, smaller part
    of a split, and it is combined with its left neighbour only at the level where the split
    happens.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class CompactRange:
    """Streaming MTH over leaves [0, size) in O(log size) memory.

    The state is the *frontier*: one perfect-subtree hash for every set bit of ``size``,
    largest (left-most) first.  Appending a leaf merges equal-sized subtrees exactly like a
    binary counter carries, so each append costs one node hash on average.
    """

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[tuple[int, int, bytes]]) -> CompactRange:
        """Resume from the frontier of ``size`` leaves, as produced by ``frontier()``.

        Raises ValueError unless the entries are exactly the binary decomposition of size.
        """
        if size < 0:
            raise ValueError("size must not be negative")
        expected = decomposition(size)
        got = [(level, index) for level, index, _ in frontier]
        if got != expected:
            raise ValueError(f"frontier {got} is not the decomposition {expected} of size {size}")
        cr = cls()
        for _, _, h in frontier:
            if len(h) != HASH_SIZE:
                raise ValueError("frontier hashes must be 32 bytes")
        cr._stack = [h for _, _, h in frontier]
        cr.size = size
        return cr

    def copy(self) -> CompactRange:
        """An independent copy: appending to it leaves this range as it is."""
        cr = CompactRange()
        cr._stack = list(self._stack)
        cr.size = self.size
        return cr

    def frontier(self) -> list[tuple[int, int, bytes]]:
        """The perfect subtrees (level, index, hash) whose concatenation is leaves [0, size)."""
        return [
            (level, index, h)
            for (level, index), h in zip(decomposition(self.size), self._stack, strict=True)
        ]

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return every perfect node (level, index, hash) it completed."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError("leaf hashes must be 32 bytes")
        index = self.size
        level = 0
        h = leaf_hash
        completed = [(0, index, h)]
        stack = self._stack
        n = index
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
            index >>= 1
            level += 1
            completed.append((level, index, h))
        stack.append(h)
        self.size += 1
        return completed

    def push(self, leaf_hash: bytes) -> None:
        """``append`` without reporting completed nodes; the verifier's hot loop uses this."""
        stack = self._stack
        h = leaf_hash
        n = self.size
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self.size += 1

    def root(self) -> bytes:
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        # The right-most subtree is the deepest part of the RFC recursion, so the frontier is
        # folded from the right: each larger subtree to the left becomes a left child.
        h = stack[-1]
        for left in reversed(stack[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h


def decomposition(size: int) -> list[tuple[int, int]]:
    """(level, index) of the perfect subtrees that make up leaves [0, size), left to right.

    Public because a store needs the same decomposition to hand out a frontier (prefix.json).
    """
    out: list[tuple[int, int]] = []
    covered = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, covered >> level))
            covered += 1 << level
    return out


def range_hash(start: int, end: int, get_perfect: GetPerfect) -> bytes:
    """MTH of leaves [start, end), as defined by the RFC 6962 split of that range.

    For every range the RFC recursion produces, ``start`` is aligned to a power of two at
    least as large as the range, so each left part of a split is an aligned perfect subtree
    and only the right spine needs descending: O(log n) ``get_perfect`` calls.  Other ranges
    are still hashed correctly; their left parts are then split further by the same rule.
    """
    if start < 0 or end <= start:
        raise ValueError(f"empty or invalid leaf range [{start}, {end})")
    parts: list[bytes] = []
    s = start
    while True:
        n = end - s
        if _is_perfect(s, n):
            parts.append(get_perfect(n.bit_length() - 1, s >> (n.bit_length() - 1)))
            break
        k = _split(n)
        if s & (k - 1) == 0:
            parts.append(get_perfect(k.bit_length() - 1, s >> (k.bit_length() - 1)))
        else:
            parts.append(range_hash(s, s + k, get_perfect))
        s += k
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


def root_at(size: int, get_perfect: GetPerfect) -> bytes:
    if size < 0:
        raise ValueError("size must not be negative")
    if size == 0:
        return EMPTY_ROOT
    return range_hash(0, size, get_perfect)


def inclusion_proof(index: int, size: int, get_perfect: GetPerfect) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, ordered from the leaf up to the root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    siblings: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            siblings.append(range_hash(lo + k, hi, get_perfect))
            hi = lo + k
        else:
            siblings.append(range_hash(lo, lo + k, get_perfect))
            lo += k
    # The walk collected siblings from the root down; the RFC path starts next to the leaf.
    siblings.reverse()
    return siblings


def consistency_proof(old: int, new: int, get_perfect: GetPerfect) -> list[bytes]:
    """PROOF(old, D[0:new]) of RFC 9162 §2.1.4.1; empty when old is 0 or equals new."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    out: list[bytes] = []
    lo, hi = 0, new
    m = old
    complete = True  # The RFC's flag b: the old tree is a complete subtree of this range.
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append(range_hash(lo + k, hi, get_perfect))
            hi = lo + k
        else:
            out.append(range_hash(lo, lo + k, get_perfect))
            lo += k
            m -= k
            complete = False
    if not complete:
        out.append(range_hash(lo, hi, get_perfect))
    out.reverse()
    return out


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: raise ProofError unless ``leaf`` (a leaf hash) is at ``index``."""
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    if index < 0 or size < 0 or index >= size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("the recomputed root does not match")


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise ProofError unless the tree of size old is a prefix of new.

    Beyond the RFC steps, the degenerate cases are pinned down as transparency-dev/merkle
    does: old == new needs an empty proof and equal roots, and old == 0 needs an empty proof.
    For old == 0 the old root must also be the empty-tree hash, since nothing else can be
    the root of an empty tree.
    """
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    if old < 0 or new < 0:
        raise ProofError("tree sizes must not be negative")
    if old > new:
        raise ProofError(f"old size {old} is larger than new size {new}")
    if old == new:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if old_root != new_root:
            raise ProofError("equal sizes with different roots")
        return
    if old == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        if old_root != EMPTY_ROOT:
            raise ProofError("the root of an empty tree must be the empty hash")
        return
    if not proof:
        raise ProofError("an empty proof cannot show consistency of different sizes")
    path = list(proof)
    if old & (old - 1) == 0:
        # A power-of-two old tree is itself a node of the new tree, so the proof omits it.
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than needed")
    if fr != old_root:
        raise ProofError("the recomputed old root does not match")
    if sr != new_root:
        raise ProofError("the recomputed new root does not match")
