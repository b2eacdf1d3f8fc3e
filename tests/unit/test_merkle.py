"""RFC 6962 / 9162 Merkle tree: known answers, store-backed proofs and verifier mutations."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vault.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_hash,
    root_at,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "rfc6962.json"
SOME_HASH = hashlib.sha256(b"some other data").digest()


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return loaded


def make_leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"event {i}".encode()) for i in range(n)]


class Store:
    """Perfect-subtree hashes exactly as a log store would persist them from ``append``."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        cr = CompactRange()
        for leaf in leaves:
            for level, index, h in cr.append(leaf):
                assert (level, index) not in self.nodes
                self.nodes[(level, index)] = h
        self.calls = 0

    def getter(self, size: int) -> Callable[[int, int], bytes]:
        """A get_perfect that refuses nodes reaching past ``size`` (not yet in that tree)."""

        def get(level: int, index: int) -> bytes:
            assert (index + 1) << level <= size, (level, index, size)
            self.calls += 1
            return self.nodes[(level, index)]

        return get


def split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) straight from the RFC 9162 definition."""
    n = len(leaves)
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), root_from_leaf_hashes(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), root_from_leaf_hashes(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) straight from the RFC 9162 definition."""
    n = len(leaves)
    if m == n:
        return [] if complete else [root_from_leaf_hashes(leaves)]
    k = split(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), root_from_leaf_hashes(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), root_from_leaf_hashes(leaves[:k])]


# -- known answers ---------------------------------------------------------------------------


def test_empty_root() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT
    assert root_at(0, Store([]).getter(0)) == EMPTY_ROOT


def test_node_hash_prefix() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()


def test_vector_leaves_and_roots(vectors: dict[str, Any]) -> None:
    data = [bytes.fromhex(x) for x in vectors["leaf_data_hex"]]
    leaves = [leaf_hash(d) for d in data]
    assert [h.hex() for h in leaves] == vectors["leaf_hashes_hex"]
    store = Store(leaves)
    cr = CompactRange()
    assert cr.root().hex() == vectors["roots_hex"]["0"]
    for size_s, root_hex in vectors["roots_hex"].items():
        size = int(size_s)
        assert root_from_leaf_hashes(leaves[:size]).hex() == root_hex
        assert root_at(size, store.getter(size)).hex() == root_hex
    for size, leaf in enumerate(leaves, start=1):
        cr.append(leaf)
        assert cr.root().hex() == vectors["roots_hex"][str(size)]


def test_vector_inclusion(vectors: dict[str, Any]) -> None:
    leaves = [bytes.fromhex(x) for x in vectors["leaf_hashes_hex"]]
    store = Store(leaves)
    assert vectors["inclusion"]
    for case in vectors["inclusion"]:
        index, size = case["index"], case["size"]
        path = [bytes.fromhex(x) for x in case["path_hex"]]
        assert inclusion_proof(index, size, store.getter(size)) == path
        root = bytes.fromhex(vectors["roots_hex"][str(size)])
        verify_inclusion(leaves[index], index, size, path, root)


def test_vector_consistency(vectors: dict[str, Any]) -> None:
    leaves = [bytes.fromhex(x) for x in vectors["leaf_hashes_hex"]]
    store = Store(leaves)
    assert vectors["consistency"]
    for case in vectors["consistency"]:
        old, new = case["old"], case["new"]
        proof = [bytes.fromhex(x) for x in case["proof_hex"]]
        assert consistency_proof(old, new, store.getter(new)) == proof
        verify_consistency(
            old,
            new,
            bytes.fromhex(vectors["roots_hex"][str(old)]),
            bytes.fromhex(vectors["roots_hex"][str(new)]),
            proof,
        )


# -- cross-checks against the reference definitions -------------------------------------------


def test_compact_range_root_every_size() -> None:
    leaves = make_leaves(300)
    cr = CompactRange()
    for size in range(301):
        assert cr.size == size
        assert cr.root() == root_from_leaf_hashes(leaves[:size]), size
        if size < 300:
            cr.append(leaves[size])


def test_compact_range_reports_completed_nodes() -> None:
    leaves = make_leaves(64)
    cr = CompactRange()
    for i, leaf in enumerate(leaves):
        done = cr.append(leaf)
        assert done[0] == (0, i, leaf)
        # Appending leaf i completes one node per trailing one bit of i.
        assert len(done) == 1 + ((i ^ (i + 1)).bit_length() - 1)
        for level, index, h in done:
            lo, hi = index << level, (index + 1) << level
            assert hi == i + 1
            assert h == root_from_leaf_hashes(leaves[lo:hi])


def test_compact_range_push_matches_append() -> None:
    leaves = make_leaves(77)
    a, b = CompactRange(), CompactRange()
    for leaf in leaves:
        a.append(leaf)
        b.push(leaf)
        assert a.root() == b.root()
        assert a.frontier() == b.frontier()


def test_frontier_round_trip() -> None:
    leaves = make_leaves(45)
    cr = CompactRange()
    for leaf in leaves[:37]:
        cr.append(leaf)
    frontier = cr.frontier()
    assert [(lvl, idx) for lvl, idx, _ in frontier] == [(5, 0), (2, 8), (0, 36)]
    resumed = CompactRange.from_frontier(37, frontier)
    for leaf in leaves[37:]:
        resumed.append(leaf)
    assert resumed.root() == root_from_leaf_hashes(leaves)
    with pytest.raises(ValueError, match="decomposition"):
        CompactRange.from_frontier(38, frontier)
    with pytest.raises(ValueError, match="decomposition"):
        CompactRange.from_frontier(37, frontier[:2])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange.from_frontier(37, [(5, 0, b"x"), *frontier[1:]])
    assert CompactRange.from_frontier(0, []).root() == EMPTY_ROOT


def test_root_at_every_size_to_70() -> None:
    leaves = make_leaves(70)
    store = Store(leaves)
    for size in range(71):
        store.calls = 0
        assert root_at(size, store.getter(size)) == root_from_leaf_hashes(leaves[:size])
        # One look-up per perfect subtree of the binary decomposition.
        assert store.calls == bin(size).count("1")


def test_range_hash_every_range() -> None:
    leaves = make_leaves(40)
    store = Store(leaves)
    get = store.getter(40)
    for start in range(40):
        for end in range(start + 1, 41):
            assert range_hash(start, end, get) == root_from_leaf_hashes(leaves[start:end])
    with pytest.raises(ValueError, match="empty"):
        range_hash(5, 5, get)
    with pytest.raises(ValueError, match="empty"):
        range_hash(6, 5, get)


def test_range_hash_is_logarithmic() -> None:
    leaves = make_leaves(1 << 12)
    store = Store(leaves)
    size = len(leaves)
    for start, end in [(0, 4095), (2048, 4095), (1024, 2047), (0, 3000), (3072, 4001)]:
        store.calls = 0
        assert range_hash(start, end, store.getter(size)) == root_from_leaf_hashes(
            leaves[start:end]
        )
        assert store.calls <= (end - start).bit_length()


def test_inclusion_every_pair_to_40() -> None:
    leaves = make_leaves(40)
    store = Store(leaves)
    for size in range(1, 41):
        root = root_from_leaf_hashes(leaves[:size])
        for index in range(size):
            proof = inclusion_proof(index, size, store.getter(size))
            assert proof == ref_path(index, leaves[:size])
            verify_inclusion(leaves[index], index, size, proof, root)
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(3, 3, store.getter(3))
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(0, 0, store.getter(0))


def test_consistency_every_pair_to_40() -> None:
    leaves = make_leaves(40)
    store = Store(leaves)
    for new in range(41):
        new_root = root_from_leaf_hashes(leaves[:new])
        for old in range(new + 1):
            proof = consistency_proof(old, new, store.getter(new))
            if old in (0, new):
                assert proof == []
            else:
                assert proof == ref_subproof(old, leaves[:new], True)
            old_root = root_from_leaf_hashes(leaves[:old])
            verify_consistency(old, new, old_root, new_root, proof)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(5, 4, store.getter(5))


# -- mutations the transparency-dev/merkle verifier tests reject ------------------------------


def flip(h: bytes, bit: int) -> bytes:
    return bytes([h[0] ^ bit]) + h[1:]


# These are the probes of transparency-dev/merkle's verifier tests plus a few more malformed
# inputs.  Size + 1 is deliberately absent: an RFC 9162 proof does not always pin the tree
# size (the proof for leaf 0 of 3 leaves also "verifies" leaf 0 of 4 against the same root),
# which is why proofs are only ever checked against the size of a signed checkpoint.


def inclusion_mutations(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]]:
    out = [
        ("index - 1", (leaf, index - 1, size, proof, root)),
        ("index + 1", (leaf, index + 1, size, proof, root)),
        ("index ^ 2", (leaf, index ^ 2, size, proof, root)),
        ("index = size", (leaf, size, size, proof, root)),
        ("size * 2", (leaf, index, size * 2, proof, root)),
        ("size // 2", (leaf, index, size // 2, proof, root)),
        ("wrong leaf", (leaf_hash(b"WrongLeaf"), index, size, proof, root)),
        ("leaf not 32 bytes", (leaf + b"\x00", index, size, proof, root)),
        ("empty root", (leaf, index, size, proof, EMPTY_ROOT)),
        ("random root", (leaf, index, size, proof, SOME_HASH)),
        ("root not 32 bytes", (leaf, index, size, proof, root[:31])),
        ("trailing garbage", (leaf, index, size, [*proof, b""], root)),
        ("trailing root", (leaf, index, size, [*proof, root], root)),
        ("preceding garbage", (leaf, index, size, [b"", *proof], root)),
        ("preceding root", (leaf, index, size, [root, *proof], root)),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i], 8)
        out.append((f"proof[{i}] bit flipped", (leaf, index, size, bad, root)))
        longer = list(proof)
        longer[i] = proof[i] + b"\x00"
        out.append((f"proof[{i}] extra byte", (leaf, index, size, longer, root)))
    if proof:
        out.append(("removed component", (leaf, index, size, proof[:-1], root)))
        out.append(("removed first component", (leaf, index, size, proof[1:], root)))
    if len(proof) > 1:
        inserted = [proof[0], SOME_HASH, *proof[1:]]
        out.append(("inserted component", (leaf, index, size, inserted, root)))
    return out


def test_inclusion_mutations_rejected() -> None:
    leaves = make_leaves(24)
    store = Store(leaves)
    checked = 0
    accepted: list[str] = []
    for size in range(1, 25):
        root = root_from_leaf_hashes(leaves[:size])
        for index in range(size):
            proof = inclusion_proof(index, size, store.getter(size))
            for name, args in inclusion_mutations(index, size, proof, root, leaves[index]):
                try:
                    verify_inclusion(*args)
                except ProofError:
                    checked += 1
                else:
                    accepted.append(f"({index}, {size}): {name}")
    assert accepted == []
    assert checked > 4000


def consistency_mutations(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> list[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]]:
    out = [
        ("old - 1", (old - 1, new, old_root, new_root, proof)),
        ("old + 1", (old + 1, new, old_root, new_root, proof)),
        ("old ^ 2", (old ^ 2, new, old_root, new_root, proof)),
        ("new * 2", (old, new * 2, old_root, new_root, proof)),
        ("new // 2", (old, new // 2, old_root, new_root, proof)),
        ("old > new", (new + 1, new, old_root, new_root, proof)),
        ("wrong old root", (old, new, b"WrongRoot", new_root, proof)),
        ("wrong new root", (old, new, old_root, b"WrongRoot", proof)),
        ("random old root", (old, new, SOME_HASH, new_root, proof)),
        ("random new root", (old, new, old_root, SOME_HASH, proof)),
        ("swapped roots", (old, new, new_root, old_root, proof)),
        ("empty proof", (old, new, old_root, new_root, [])),
        ("trailing garbage", (old, new, old_root, new_root, [*proof, b""])),
        ("trailing old root", (old, new, old_root, new_root, [*proof, old_root])),
        ("trailing new root", (old, new, old_root, new_root, [*proof, new_root])),
        ("preceding garbage", (old, new, old_root, new_root, [b"", *proof])),
        ("preceding old root", (old, new, old_root, new_root, [old_root, *proof])),
        ("preceding new root", (old, new, old_root, new_root, [new_root, *proof])),
        ("preceding proof[0]", (old, new, old_root, new_root, [proof[0], *proof])),
        ("removed last", (old, new, old_root, new_root, proof[:-1])),
        ("removed first", (old, new, old_root, new_root, proof[1:])),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i], 16)
        out.append((f"proof[{i}] bit flipped", (old, new, old_root, new_root, bad)))
        longer = list(proof)
        longer[i] = proof[i] + b"\x00"
        out.append((f"proof[{i}] extra byte", (old, new, old_root, new_root, longer)))
    return out


def test_consistency_mutations_rejected() -> None:
    leaves = make_leaves(24)
    store = Store(leaves)
    checked = 0
    accepted: list[str] = []
    for new in range(2, 25):
        new_root = root_from_leaf_hashes(leaves[:new])
        for old in range(1, new):
            old_root = root_from_leaf_hashes(leaves[:old])
            proof = consistency_proof(old, new, store.getter(new))
            assert proof
            for name, args in consistency_mutations(old, new, old_root, new_root, proof):
                try:
                    verify_consistency(*args)
                except ProofError:
                    checked += 1
                else:
                    accepted.append(f"({old}, {new}): {name}")
    assert accepted == []
    assert checked > 6000


def test_consistency_degenerate_cases() -> None:
    leaves = make_leaves(5)
    root5 = root_from_leaf_hashes(leaves)
    root3 = root_from_leaf_hashes(leaves[:3])
    verify_consistency(5, 5, root5, root5, [])
    verify_consistency(0, 5, EMPTY_ROOT, root5, [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    bad_cases: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (5, 5, root5, root5, [root5]),  # Equal sizes allow no proof at all.
        (5, 5, root3, root5, []),  # Equal sizes need equal roots.
        (0, 5, EMPTY_ROOT, root5, [root5]),  # From the empty tree the proof is empty.
        (0, 5, root3, root5, []),  # Nothing but the empty hash is an empty tree's root.
        (6, 5, root5, root5, []),  # old > new.
        (-1, 5, root5, root5, []),
        (3, 5, root3, root5, []),  # A real step needs a proof.
    ]
    for args in bad_cases:
        with pytest.raises(ProofError):
            verify_consistency(*args)


def test_inclusion_single_leaf_tree() -> None:
    leaf = leaf_hash(b"only")
    verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, 0, 1, [leaf], node_hash(leaf, leaf))
    with pytest.raises(ProofError):
        verify_inclusion(leaf, 0, 0, [], leaf)
