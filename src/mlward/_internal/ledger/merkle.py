"""The Merkle tree of RFC 9162 (Certificate Transparency v2), section 2.1.

Hashes: a leaf is ``SHA-256(0x00 || entry)``, an interior node ``SHA-256(0x01 || left || right)``,
the empty tree ``SHA-256("")``.

A *complete* subtree is a node ``(level, index)``: level 0 holds the leaf hashes, the node
``(level, index)`` covers the leaves from ``index * 2**level`` (inclusive) to
``(index + 1) * 2**level`` (exclusive).
Any range the RFC's algorithms ask for is a handful of such nodes (:func:`range_nodes`), so a root
or a proof needs O(log n) node hashes (the store keeps the large ones and folds the small ones
from leaf hashes). The proof *shapes* come from the RFC's recursive
definitions (:func:`inclusion_ranges`, :func:`consistency_ranges`); verification follows the
RFC's iterative algorithms (sections 2.1.3.2 and 2.1.4.2) and needs nothing but hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from mlward._internal.ledger.errors import LedgerError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # leaves [start, end)


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[Node]:
    """The complete subtrees whose hashes make up MTH(D[start:end]), left to right.

    The ranges the RFC's recursion produces start at a multiple of their largest power-of-two
    part, so they decompose into the binary digits of their size.
    """
    out: list[Node] = []
    while start < end:
        size = end - start
        level = size.bit_length() - 1
        while start % (1 << level):
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its :func:`range_nodes` hashes: right to left, as the RFC nests them."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes form PATH(index, D[0:size]) (RFC 9162 2.1.3.1), leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    out: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    return out[::-1]


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The ranges whose hashes form PROOF(first, D[0:second]) (RFC 9162 2.1.4.1)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first in (0, second):
        return []
    out: list[Range] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        out.append((start, end))
    return out[::-1]


NodeReader = Callable[[Iterable[Node]], Mapping[Node, bytes]]


def hash_ranges(ranges: Sequence[Range], read: NodeReader) -> list[bytes]:
    """The MTH of each range, reading every stored node needed in one call to ``read``."""
    plans = [range_nodes(start, end) for start, end in ranges]
    wanted = {node for plan in plans for node in plan}
    got = read(wanted)
    missing = wanted - set(got)
    if missing:
        raise LedgerError(f"tree nodes {sorted(missing)[:3]} are missing from the store "
                          "(run `mlward ledger verify`)")
    return [fold([got[node] for node in plan]) for plan in plans]


def frontier_nodes(size: int) -> list[Node]:
    """The complete subtrees along the right edge of a tree of ``size`` leaves, largest first."""
    return range_nodes(0, size)


def append_nodes(frontier: list[tuple[Node, bytes]], index: int,
                 leaf: bytes) -> list[tuple[Node, bytes]]:
    """Add leaf ``index`` to a tree whose :func:`frontier_nodes` hashes are ``frontier``.

    Updates ``frontier`` in place and returns every node completed by the leaf (the leaf itself
    first, then each parent it completes).
    """
    made = [((0, index), leaf)]
    node, h = (0, index), leaf
    while frontier and frontier[-1][0] == (node[0], node[1] - 1) and node[1] % 2:
        (_, _), left = frontier.pop()
        node, h = (node[0] + 1, node[1] // 2), node_hash(left, h)
        made.append((node, h))
    frontier.append((node, h))
    return made


class MemoryTree:
    """Every level of a tree built from leaf hashes in memory: the reference the store is checked
    against, and the tree of an exported ledger."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        self._build()

    def _build(self) -> None:
        level = 0
        while len(self.levels[level]) > 1:
            below = self.levels[level]
            self.levels.append([node_hash(below[i], below[i + 1])
                                for i in range(0, len(below) - 1, 2)])
            level += 1

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def nodes(self, wanted: Iterable[Node]) -> dict[Node, bytes]:
        out: dict[Node, bytes] = {}
        for level, index in wanted:
            if level < len(self.levels) and index < len(self.levels[level]):
                out[(level, index)] = self.levels[level][index]
        return out

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        return hash_ranges([(0, size)], self.nodes)[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        return hash_ranges(inclusion_ranges(index, size), self.nodes)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        second = self.size if second is None else second
        return hash_ranges(consistency_ranges(first, second), self.nodes)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` show the leaf hash ``leaf`` at ``index`` under ``root``?"""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
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
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: is the tree of size ``second`` an append-only extension of ``first``?"""
    if not 0 <= first <= second or any(len(p) != HASH_SIZE for p in proof):
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
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
    return sn == 0 and fr == first_root and sr == second_root
