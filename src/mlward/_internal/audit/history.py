"""Forensics: every ledger entry that touched a file, following it through renames.

Starting from a path (and the digest of the file there now, when it exists) or a digest, the
search asks the ledger's forensic index for entries naming the path (or, for a dataset, a
manifest root holding it) or the digest. The rows pair paths with digests: each digest the file
had leads to other paths that held the same content (a rename, a copy), and each such path to
its own digests, until nothing new turns up (bounded). Each entry found comes with its RFC 9162
inclusion proof in a signed checkpoint, checked here before it is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlward._internal.ledger.refs import EMPTY_SHA256, Ref, ancestors

if TYPE_CHECKING:
    from mlward._internal.ledger import Entry, Ledger

MAX_ROUNDS = 8
MAX_FOLLOWED = 64
"""Paths and digests followed at most: the same content in many places stops the search."""
FOLLOW_ROLES = frozenset({"resource", "added", "modified", "renamed", "renamed-from", "from",
                          "removed", "watch"})
"""Rows whose pairing of a path and a digest says the file had that content there."""


@dataclass(frozen=True)
class Item:
    entry: Entry
    refs: tuple[Ref, ...]
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class History:
    paths: tuple[str, ...]
    digests: tuple[str, ...]
    items: tuple[Item, ...]
    size: int
    """The tree size the proofs are for."""
    root: bytes
    checkpoint: str | None
    """The signed checkpoint of that tree (None: the ledger has no key to sign one)."""
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        import base64

        return {"paths": list(self.paths), "digests": list(self.digests),
                "truncated": self.truncated,
                "tree": {"size": self.size, "root": self.root.hex(),
                         "checkpoint": self.checkpoint},
                "entries": [{**i.entry.to_json(), "leaf_hash": i.entry.leaf_hash().hex(),
                             "matched": [r._asdict() for r in i.refs],
                             "inclusion_proof": [base64.b64encode(p).decode()
                                                 for p in i.proof]} for i in self.items]}


def search(ledger: Ledger, paths: Sequence[str], digests: Sequence[str],
           *, follow: bool = True) -> tuple[dict[int, list[Ref]], set[str], set[str], bool]:
    """Entry index -> the rows that matched; every path and digest followed; whether the
    search stopped at its bound."""
    paths_seen: set[str] = set()
    digests_seen: set[str] = set()
    todo_paths, todo_digests = set(paths), set(digests) - {EMPTY_SHA256}
    found: dict[int, list[Ref]] = {}
    truncated = False
    for _ in range(MAX_ROUNDS):
        if not todo_paths and not todo_digests:
            break
        paths_seen |= todo_paths
        digests_seen |= todo_digests
        folders = [a for p in todo_paths for a in ancestors(p)[1:]]
        rows = ledger.store.find_refs(sorted(todo_paths), sorted(todo_digests), folders)
        todo_paths, todo_digests = set(), set()
        for index, ref in rows:
            found.setdefault(index, [])
            if ref not in found[index]:
                found[index].append(ref)
            if not follow or ref.role not in FOLLOW_ROLES:
                continue
            if ref.path is not None and ref.path not in paths_seen:
                todo_paths.add(ref.path)
            if ref.digest is not None and ref.digest != EMPTY_SHA256 and \
                    ref.digest not in digests_seen:
                todo_digests.add(ref.digest)
        if len(paths_seen) + len(digests_seen) + len(todo_paths) + len(todo_digests) \
                > MAX_FOLLOWED:
            truncated = bool(todo_paths or todo_digests)
            break
    else:
        truncated = bool(todo_paths or todo_digests)
    return found, paths_seen, digests_seen, truncated


def file_history(ledger: Ledger, paths: Sequence[str], digests: Sequence[str] = (), *,
                 follow: bool = True) -> History:
    """The entries that touched ``paths`` (absolute) or ``digests`` (``alg:hex``), oldest
    first, each with a checked inclusion proof (see the module docstring)."""
    from mlward._internal.audit.errors import AuditError
    from mlward._internal.ledger import Entry
    from mlward._internal.ledger.merkle import verify_inclusion

    found, paths_seen, digests_seen, truncated = search(ledger, paths, digests, follow=follow)
    size, root, note = proof_tree(ledger, max(found, default=-1))
    bodies = ledger.store.bodies(sorted(found))
    items = []
    for index in sorted(found):
        entry = Entry.from_bytes(bodies[index])
        proof = ledger.inclusion_proof(index, size)
        if not verify_inclusion(entry.leaf_hash(), index, size, proof, root):
            raise AuditError(f"entry {index} is not included in the ledger's tree as stored: "
                             "run `mlward ledger verify`")
        items.append(Item(entry, tuple(found[index]), tuple(proof)))
    return History(tuple(sorted(paths_seen)), tuple(sorted(digests_seen)), tuple(items),
                   size, root, note, truncated)


def proof_tree(ledger: Ledger, last: int) -> tuple[int, bytes, str | None]:
    """The tree to prove entries up to ``last`` in: the latest stored checkpoint covering it
    (its signature checked), else a fresh one when the ledger can sign, else the current tree
    unsigned."""
    from mlward._internal.ledger.note import Checkpoint

    if ledger.verifier is not None:
        with ledger.store.snapshot() as snap:
            stored = snap.checkpoints()
        for size, _, note in reversed(stored):
            if size > last:
                checkpoint = Checkpoint.open(note, ledger.verifier, ledger.origin)
                return checkpoint.size, checkpoint.root, note
    if ledger.signer is not None:
        note = ledger.checkpoint()
        assert ledger.verifier is not None
        checkpoint = Checkpoint.open(note, ledger.verifier, ledger.origin)
        return checkpoint.size, checkpoint.root, note
    size = ledger.size()
    return size, ledger.root(size), None
