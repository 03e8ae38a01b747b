"""RFC 9162 Merkle tree: the published test vectors and an independent recomputation."""

from __future__ import annotations

import hashlib

import pytest

from mlward._internal.ledger.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    append_nodes,
    frontier_nodes,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

# The eight leaves of the RFC 6962 / certificate-transparency test data and the published root
# of the tree over the first n of them (n = 0..8).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {  # (index, size) -> proof
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
CT_CONSISTENCY = {  # (first, second) -> proof
    (2, 8): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}


# --- an independent recomputation: the RFC's recursive definitions, written naively -------

def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    if not d:
        return _h(b"")
    if len(d) == 1:
        return _h(b"\x00" + d[0])
    k = _k(len(d))
    return _h(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
    if m == len(d):
        return [] if whole else [mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*subproof(m, d[:k], whole), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


DATA = [f"entry {i}".encode() * (i % 3 + 1) for i in range(70)]
TREE = MemoryTree(leaf_hash(x) for x in DATA)


def test_published_roots() -> None:
    tree = MemoryTree(leaf_hash(x) for x in CT_LEAVES)
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    for n in range(9):
        assert tree.root(n).hex() == CT_ROOTS[n], f"size {n}"


@pytest.mark.parametrize(("index", "size"), sorted(CT_INCLUSION))
def test_published_inclusion_proofs(index: int, size: int) -> None:
    tree = MemoryTree(leaf_hash(x) for x in CT_LEAVES)
    proof = tree.inclusion_proof(index, size)
    assert [p.hex() for p in proof] == CT_INCLUSION[(index, size)]
    assert verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, proof,
                            bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("first", "second"), sorted(CT_CONSISTENCY))
def test_published_consistency_proofs(first: int, second: int) -> None:
    tree = MemoryTree(leaf_hash(x) for x in CT_LEAVES)
    proof = tree.consistency_proof(first, second)
    assert [p.hex() for p in proof] == CT_CONSISTENCY[(first, second)]
    assert verify_consistency(first, second, bytes.fromhex(CT_ROOTS[first]),
                              bytes.fromhex(CT_ROOTS[second]), proof)


def test_roots_and_inclusion_match_recomputation_for_every_size() -> None:
    for n in range(71):
        root = TREE.root(n)
        assert root == mth(DATA[:n]), f"root of size {n}"
        for m in range(n):
            proof = TREE.inclusion_proof(m, n)
            assert proof == path(m, DATA[:n]), f"inclusion {m} of {n}"
            assert verify_inclusion(leaf_hash(DATA[m]), m, n, proof, root)


def test_consistency_matches_recomputation_for_every_pair() -> None:
    for n in range(1, 71):
        for m in range(1, n + 1):
            proof = TREE.consistency_proof(m, n)
            assert proof == subproof(m, DATA[:n], True), f"consistency {m} -> {n}"
            assert verify_consistency(m, n, TREE.root(m), TREE.root(n), proof)


def test_altered_inclusion_proofs_fail() -> None:
    for n in range(2, 40):
        root = TREE.root(n)
        for m in range(n):
            proof = TREE.inclusion_proof(m, n)
            leaf = leaf_hash(DATA[m])
            flipped = [*proof[:-1], bytes([proof[-1][0] ^ 1]) + proof[-1][1:]]
            assert not verify_inclusion(leaf, m, n, flipped, root)
            assert not verify_inclusion(leaf, m, n, proof[:-1], root)
            assert not verify_inclusion(leaf, m, n, [*proof, b"\xab" * 32], root)
            assert not verify_inclusion(leaf, (m + 1) % n, n, proof, root) or \
                TREE.inclusion_proof((m + 1) % n, n) == proof
            assert not verify_inclusion(leaf_hash(b"other"), m, n, proof, root)
    assert not verify_inclusion(leaf_hash(DATA[0]), 8, 8, [], TREE.root(8))


def test_altered_consistency_proofs_fail() -> None:
    for n in range(2, 40):
        for m in range(1, n):
            proof = TREE.consistency_proof(m, n)
            first, second = TREE.root(m), TREE.root(n)
            flipped = [bytes([proof[0][0] ^ 0x80]) + proof[0][1:], *proof[1:]]
            assert not verify_consistency(m, n, first, second, flipped)
            assert not verify_consistency(m, n, first, second, proof[:-1])
            assert not verify_consistency(m, n, first, second, [*proof, b"\xcd" * 32])
            assert not verify_consistency(m, n, TREE.root(m - 1) if m > 1 else second,
                                          second, proof)
    assert verify_consistency(0, 5, EMPTY_ROOT, TREE.root(5), [])
    assert verify_consistency(5, 5, TREE.root(5), TREE.root(5), [])
    assert not verify_consistency(5, 5, TREE.root(5), TREE.root(6), [])
    assert not verify_consistency(6, 5, TREE.root(6), TREE.root(5), [])


def test_incremental_append_builds_every_complete_subtree() -> None:
    frontier: list = []
    stored: dict = {}
    for i, x in enumerate(DATA):
        for node, h in append_nodes(frontier, i, leaf_hash(x)):
            stored[node] = h
        assert [node for node, _ in frontier] == frontier_nodes(i + 1)
    for level, hashes in enumerate(TREE.levels):
        for idx, h in enumerate(hashes):
            assert stored[(level, idx)] == h
    assert len(stored) == sum(len(level) for level in TREE.levels)
