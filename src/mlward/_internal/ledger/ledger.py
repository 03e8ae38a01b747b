"""The ledger: a store, the Merkle tree over it, signed checkpoints, proofs and verification."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlward._internal.io import atomic_write_text
from mlward._internal.ledger.entry import GENESIS, VERSION, Entry, Event, utc_now
from mlward._internal.ledger.errors import LedgerError, LedgerTampered
from mlward._internal.ledger.merkle import (
    MemoryTree,
    consistency_ranges,
    hash_ranges,
    inclusion_ranges,
    leaf_hash,
    verify_consistency,
)
from mlward._internal.ledger.note import (
    Checkpoint,
    ConsistencyProof,
    NoteSigner,
    NoteVerifier,
    Receipt,
)
from mlward._internal.ledger.refs import Ref
from mlward._internal.ledger.store import Filters, Store, StoredEntry
from mlward._internal.ledger.witness import (
    WitnessSigner,
    WitnessState,
    WitnessVerifier,
    check_cosignatures,
    split_note,
    witness,
)

EXPORT_FORMAT = "mlward-ledger-export/1"
_DECODER = json.JSONDecoder()
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One thing verification found wrong; ``index`` is the first entry it concerns."""

    index: int | None
    kind: str  # edited, deleted, moved, inserted, truncated, rolled-back, tree, checkpoint
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "message": self.message}


@dataclass
class VerifyResult:
    size: int = 0
    root: bytes = b""
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    witnessed: int | None = None
    """With witnesses configured: the largest tree size a quorum of them cosigned."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    @property
    def first(self) -> Problem | None:
        """The problem at the lowest entry index (problems without an index come last)."""
        return min(self.problems, default=None,
                   key=lambda p: (p.index is None, p.index or 0))

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "root": self.root.hex(),
                "checkpoints_checked": self.checkpoints, "witnessed_size": self.witnessed,
                "first_problem": None if self.first is None else self.first.to_dict(),
                "problems": [p.to_dict() for p in self.problems]}


class Ledger:
    """An open ledger. ``signer`` is needed to sign checkpoints; ``verifier`` to check them."""

    def __init__(self, store: Store, origin: str, *, signer: NoteSigner | None = None,
                 verifier: NoteVerifier | None = None,
                 checkpoint_file: Path | None = None,
                 witnesses: Sequence[WitnessVerifier] = (),
                 witness_quorum: int | None = None) -> None:
        self.store = store
        self.origin = origin
        self.signer = signer
        self.verifier = verifier or (signer.verifier if signer else None)
        self.checkpoint_file = checkpoint_file
        self.witnesses = tuple(witnesses)
        self.witness_quorum = witness_quorum or len(self.witnesses)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ------------------------------------------------------------------------

    def append(self, events: Sequence[Event],
               refs: Sequence[Iterable[Ref]] = ()) -> list[Entry]:
        """Append ``events`` (with the resources each names, for the forensic index); then
        renew the signed checkpoint kept beside the project's
        ledger, so that losing the database (or entries) can be proved."""
        entries = self.store.append(events, refs)
        self.keep_checkpoint()
        return entries

    def keep_checkpoint(self) -> None:
        """Write a signed checkpoint of the current tree to the project's checkpoint file
        (not to the store: one per append would grow it without end). Nothing without the
        key or outside a project."""
        if self.signer is not None and self.checkpoint_file is not None:
            atomic_write_text(self.checkpoint_file, self._sign()[1])

    def _sign(self) -> tuple[int, str]:
        """(size, signed note) of a new checkpoint of the current tree, which must extend the
        checkpoint kept beside the ledger: signing over a rewritten tree would bless the
        rewrite and replace the one checkpoint that proves it."""
        if self.signer is None:
            raise LedgerError("signing a checkpoint needs the ledger's private key "
                              "(.mlward/keys/ledger.key)")
        kept = self._kept_checkpoint()
        with self.store.snapshot() as snap:
            size = snap.size()
            root = hash_ranges([(0, size)], snap.nodes)[0]
            proof = (hash_ranges(consistency_ranges(kept.size, size), snap.nodes)
                     if kept is not None and kept.size <= size else [])
        if kept is not None and not verify_consistency(kept.size, size, kept.root, root, proof):
            raise LedgerTampered(
                f"the ledger ({size} entries) does not extend its last signed checkpoint "
                f"({kept.size} entries, {self.checkpoint_file}): entries it covers were "
                "changed or removed; no new checkpoint is signed over them (run `mlward "
                "ledger verify`)")
        return size, self.signer.sign(Checkpoint(self.origin, size, root).text())

    def _kept_checkpoint(self) -> Checkpoint | None:
        """The checkpoint kept beside the ledger, when there is a valid one."""
        if self.checkpoint_file is None or self.verifier is None:
            return None
        try:
            note = self.checkpoint_file.read_text(encoding="utf-8")
            return Checkpoint.open(note, self.verifier, self.origin)
        except (OSError, UnicodeDecodeError, LedgerError):
            return None  # none, or not one of ours: nothing it could prove is lost

    def checkpoint(self) -> str:
        """Sign a checkpoint of the current tree, keep it in the store (and the checkpoint
        file next to the project's configuration) and return the signed note."""
        size, note = self._sign()
        self.store.add_checkpoint(size, utc_now(), note)
        if self.checkpoint_file is not None:
            atomic_write_text(self.checkpoint_file, note)
        return note

    def latest_checkpoint(self) -> str:
        """A signed checkpoint of the current tree: the newest one already signed (in the
        store or the checkpoint file) when it covers every entry and verifies, else a new
        one (:meth:`checkpoint`). Proofs and exports reuse it rather than sign again."""
        size = self.size()
        with self.store.snapshot() as snap:
            notes = [note for s, _, note in reversed(snap.checkpoints()) if s == size]
        if self.checkpoint_file is not None and self.checkpoint_file.is_file():
            notes.append(self.checkpoint_file.read_text(encoding="utf-8"))
        if self.verifier is not None:
            root = self.root(size)
            for note in notes:
                try:
                    found = Checkpoint.open(note, self.verifier, self.origin)
                except LedgerError:
                    continue
                if found.size == size and found.root == root:
                    return note
        return self.checkpoint()

    # --- reading ------------------------------------------------------------------------

    def size(self) -> int:
        return self.store.size()

    def root(self, size: int | None = None) -> bytes:
        size = self.size() if size is None else size
        return hash_ranges([(0, size)], self.store.nodes)[0]

    def entry(self, index: int) -> Entry:
        body = self.store.entry(index)
        if body is None:
            raise LedgerError(f"the ledger has no entry {index}")
        return Entry.from_bytes(body)

    def log(self, filters: Filters, limit: int | None = None) -> list[Entry]:
        return [Entry.from_bytes(body) for body in self.store.search(filters, limit)]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries, from
        O(log n) stored nodes read in one query."""
        with self.store.snapshot() as snap:
            if not 0 <= index < size <= snap.size():
                raise LedgerError(f"entry {index} is not in a tree of size {size}")
            return hash_ranges(inclusion_ranges(index, size), snap.nodes)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 consistency proof from the tree of ``first`` entries to ``second``."""
        with self.store.snapshot() as snap:
            if not 0 <= first <= second <= snap.size():
                raise LedgerError(f"no consistency proof from size {first} to size {second}")
            return hash_ranges(consistency_ranges(first, second), snap.nodes)

    def receipt(self, index: int) -> Receipt:
        """A tlog-proof receipt for entry ``index`` under the latest signed checkpoint."""
        body = self.store.entry(index)
        if body is None:
            raise LedgerError(f"the ledger has no entry {index}")
        note = self.latest_checkpoint()
        assert self.verifier is not None  # checkpoint() needs the signer
        checkpoint = Checkpoint.open(note, self.verifier)
        proof = self.inclusion_proof(index, checkpoint.size)
        return Receipt(body, index, tuple(proof), note)

    # --- verification -------------------------------------------------------------------

    def verify(self, extra_checkpoints: Iterable[str] = ()) -> VerifyResult:
        """Recompute the tree from the entries; compare with the stored tree, every stored
        checkpoint, the project's latest checkpoint file and ``extra_checkpoints``."""
        result = VerifyResult()
        with self.store.snapshot() as snap:
            tree_size = snap.size()
            leaves, end = check_entries(snap.entries(), result)
            _compare_sizes(tree_size, end, result)
            tree = MemoryTree(leaves)
            _compare_nodes(snap.stored_nodes(), tree, result)
            stored = snap.checkpoints()
        result.size, result.root = tree.size, tree.root()
        notes = [(f"stored checkpoint of size {s} ({created})", note)
                 for s, created, note in stored]
        if self.checkpoint_file is not None and self.checkpoint_file.is_file():
            notes.append((f"latest checkpoint {self.checkpoint_file}",
                          self.checkpoint_file.read_text(encoding="utf-8")))
        notes += [("given checkpoint", note) for note in extra_checkpoints]
        for label, note in notes:
            self._check_checkpoint(label, note, tree, result)
        if self.witnesses:
            self._check_witnesses(notes, result)
        return result

    def _check_witnesses(self, notes: Sequence[tuple[str, str]], result: VerifyResult) -> None:
        """Every cosignature by a configured witness must verify, and some checkpoint must
        carry a quorum of them (entries after it are not yet witnessed: not a problem)."""
        names = ", ".join(w.name for w in self.witnesses)
        for label, note in notes:
            try:
                cosigned = check_cosignatures(note, self.witnesses)
                size = Checkpoint.parse_text(split_note(note)[0]).size
            except LedgerError as exc:
                result.add(Problem(None, "cosignature", f"{label}: {exc}"))
                continue
            for problem in cosigned.problems:
                result.add(Problem(None, "cosignature", f"{label}: {problem}"))
            if len(cosigned.valid) >= self.witness_quorum and not cosigned.problems:
                result.witnessed = max(result.witnessed or 0, size)
        if result.witnessed is None:
            result.add(Problem(None, "cosignature", f"no checkpoint carries valid "
                               f"cosignatures by {self.witness_quorum} of the configured "
                               f"witnesses ({names}): run `mlward ledger witness cosign` "
                               "where the witness key is"))

    def cosign(self, signer: WitnessSigner, state_file: Path) -> str:
        """Witness the latest stored checkpoint: check its log signature and that the tree
        only grew since the checkpoint this witness last cosigned (``state_file``), then add
        the cosignature, store the cosigned note and move the state on."""
        if self.verifier is None:
            raise LedgerError("cosigning needs the ledger's verifier key")
        with self.store.snapshot() as snap:
            stored = snap.checkpoints()
        if not stored:
            raise LedgerError("the ledger has no checkpoint to cosign (run `mlward ledger "
                              "checkpoint`)")
        note = stored[-1][2]
        checkpoint = Checkpoint.open(note, self.verifier, self.origin)
        if self.root(checkpoint.size) != checkpoint.root:
            raise LedgerError(f"refusing to cosign: the checkpoint of size {checkpoint.size} "
                              "does not match the ledger's tree (run `mlward ledger verify`)")
        state = WitnessState.load(state_file)
        proof = [] if state is None or state.size > checkpoint.size else \
            self.consistency_proof(state.size, checkpoint.size)
        cosigned, new_state = witness(signer, checkpoint, note, state, proof)
        self.store.add_checkpoint(checkpoint.size, utc_now(), cosigned)
        if self.checkpoint_file is not None and self.checkpoint_file.is_file() and \
                split_note(self.checkpoint_file.read_text(encoding="utf-8"))[0] == \
                split_note(note)[0]:
            atomic_write_text(self.checkpoint_file, cosigned)
        new_state.save(state_file)
        return cosigned

    def _check_checkpoint(self, label: str, note: str, tree: MemoryTree,
                          result: VerifyResult) -> None:
        if self.verifier is None:
            result.add(Problem(None, "checkpoint", f"{label}: no verifier key to check it"))
            return
        try:
            checkpoint = Checkpoint.open(note, self.verifier, self.origin)
        except LedgerError as exc:
            result.add(Problem(None, "checkpoint", f"{label}: {exc}"))
            return
        result.checkpoints += 1
        check_against_checkpoint(checkpoint, tree, result, label)

    # --- export -------------------------------------------------------------------------

    def consistency(self, old_note: str, new_note: str | None = None) -> ConsistencyProof:
        """An RFC 9162 consistency proof from the checkpoint ``old_note`` to ``new_note``
        (default: the latest checkpoint), from the stored tree. Both notes are checked first;
        whether the proof holds is for :meth:`ConsistencyProof.verify` to say (it does not
        when the entries the old checkpoint covers were rewritten)."""
        if self.verifier is None:
            raise LedgerError("checking checkpoints needs the ledger's verifier key")
        new_note = new_note or self.latest_checkpoint()
        old = Checkpoint.open(old_note, self.verifier, self.origin)
        new = Checkpoint.open(new_note, self.verifier, self.origin)
        if old.size > new.size:
            raise LedgerError(f"the first checkpoint covers {old.size} entries, more than "
                              f"the second ({new.size}): give them oldest first")
        if new.size > self.size():
            raise LedgerError(f"the ledger has {self.size()} entries, fewer than the "
                              f"checkpoint's {new.size}: it was truncated or rolled back")
        return ConsistencyProof(old_note, new_note,
                                tuple(self.consistency_proof(old.size, new.size)))

    def export(self, path: Path) -> int:
        """Write the entries as JSONL behind a header line holding the latest signed
        checkpoint; return the number of entries. Verifiable offline with
        :func:`verify_export`."""
        note = self.latest_checkpoint()
        assert self.verifier is not None
        size = Checkpoint.open(note, self.verifier).size
        header = {"format": EXPORT_FORMAT, "origin": self.origin, "checkpoint": note,
                  "verifier": str(self.verifier)}
        lines = [json.dumps(header, sort_keys=True)]
        with self.store.snapshot() as snap:
            for stored in snap.entries():
                if stored.idx >= size:
                    break
                lines.append(stored.body.decode("utf-8"))
        atomic_write_text(path, "\n".join(lines) + "\n")
        return len(lines) - 1


def check_entries(entries: Iterable[StoredEntry],
                  result: VerifyResult) -> tuple[list[bytes], int]:
    """Check each entry's place, chain link, stored leaf hash and indexed columns; return the
    recomputed leaf hashes in order and the index after the last entry."""
    leaves: list[bytes] = []
    prev: str | None = GENESIS
    expected = 0
    for stored in entries:
        if stored.idx != expected:
            result.add(Problem(expected, "deleted", f"entries {expected}..{stored.idx - 1} "
                               "are missing: they were deleted"))
            prev = None  # the chain link across the gap is broken by the deletion itself
        leaf = leaf_hash(stored.body)
        problem = _entry_problem(stored, stored.idx, prev, leaf)
        if problem is not None:
            result.add(problem)
        leaves.append(leaf)
        prev = leaf.hex()
        expected = stored.idx + 1
    return leaves, expected


def _entry_problem(stored: StoredEntry, position: int, prev: str | None,
                   leaf: bytes) -> Problem | None:
    # Only what tampering changes is checked here (a million entries must verify quickly):
    # place, chain link, leaf hash and the copied columns; the fields' shapes were checked
    # when the entry was appended, and the leaf hash pins them since.
    try:
        obj = _DECODER.decode(stored.body.decode("utf-8"))
    except (ValueError, RecursionError):
        obj = None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        return Problem(position, "edited", f"entry {position} is not a valid entry")
    if obj.get("index") != position:
        return Problem(position, "moved", f"the entry at position {position} was written as "
                       f"entry {obj.get('index')}: entries were reordered, inserted or deleted")
    if prev is not None and obj.get("prev") != prev:
        return Problem(position - 1, "edited", f"entry {position - 1} is not the entry that "
                       f"entry {position} was chained to: it was changed after being written")
    if stored.leaf is not None and stored.leaf != leaf:
        return Problem(position, "edited", f"entry {position} does not match its leaf hash "
                       "in the tree: it was edited after it was appended")
    if stored.leaf is None and stored.columns:
        return Problem(position, "tree", f"entry {position} has no leaf in the tree")
    get = obj.get  # the columns in ENTRY_COLUMNS order
    if stored.columns and stored.columns != (get("time"), get("actor"), get("host"),
                                             get("action"), get("resource"), get("outcome")):
        return Problem(position, "edited", f"the indexed columns of entry {position} differ "
                       "from its content: they were edited")
    return None


def _compare_sizes(tree_size: int, end: int, result: VerifyResult) -> None:
    if tree_size > end:
        result.add(Problem(end, "truncated", f"the tree has {tree_size} leaves but the entries "
                           f"end at {end}: entries {end}..{tree_size - 1} were deleted"))
    elif tree_size < end:
        result.add(Problem(tree_size, "inserted", f"entries {tree_size}..{end - 1} are not in "
                           "the tree: they were added outside mlward"))


def _compare_nodes(stored: Iterator[tuple[int, int, bytes]], tree: MemoryTree,
                   result: VerifyResult) -> None:
    explained = sorted(p.index for p in result.problems if p.index is not None)
    for level, idx, h in stored:
        ours = tree.levels[level][idx] if level < len(tree.levels) and \
            idx < len(tree.levels[level]) else None
        if ours == h:
            continue
        first, last = idx << level, ((idx + 1) << level) - 1
        if any(first <= i <= last for i in explained):
            continue  # the node covers an entry already found changed
        result.add(Problem(first, "tree", f"stored tree node (level {level}, index {idx}) "
                           f"over entries {first}..{last} differs from the recomputed tree"))
        return


def check_against_checkpoint(checkpoint: Checkpoint, tree: MemoryTree, result: VerifyResult,
                             label: str) -> None:
    n = tree.size
    if checkpoint.size > n:
        result.add(Problem(n, "rolled-back", f"{label} covers {checkpoint.size} entries but "
                           f"the ledger has {n}: entries {n}..{checkpoint.size - 1} are gone "
                           "(truncated or rolled back)"))
    elif tree.root(checkpoint.size) != checkpoint.root:
        named = [p.index for p in result.problems
                 if p.index is not None and p.index < checkpoint.size]
        where = (f"entry {min(named)}" if named else
                 f"an entry before index {checkpoint.size}")
        result.add(Problem(min(named) if named else None, "checkpoint",
                           f"{label} (root {checkpoint.root.hex()[:16]}...) does not match the "
                           f"recomputed tree: {where} was changed"))


def verify_export(path: Path, verifier: NoteVerifier | None = None) -> VerifyResult:
    """Verify an export offline: every entry, the tree, and the signed checkpoint, with
    ``verifier`` (or, lacking one, the key the export names, which proves only consistency)."""
    result = VerifyResult()
    try:
        with path.open("rb") as f:
            header = json.loads(f.readline())
            rows = [line.rstrip(b"\n") for line in f if line.strip()]
    except (OSError, ValueError, RecursionError) as exc:
        raise LedgerError(f"cannot read the export {path}: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise LedgerError(f"{path} is not an mlward ledger export ({EXPORT_FORMAT})")
    if verifier is None:
        verifier = NoteVerifier.parse(str(header.get("verifier", "")))
    stored = (StoredEntry(i, (), body, None) for i, body in enumerate(rows))
    tree = MemoryTree(check_entries(stored, result)[0])
    result.size, result.root = tree.size, tree.root()
    try:
        checkpoint = Checkpoint.open(str(header.get("checkpoint", "")), verifier,
                                     str(header.get("origin", "")))
    except LedgerError as exc:
        result.add(Problem(None, "checkpoint", f"export checkpoint: {exc}"))
        return result
    result.checkpoints = 1
    if checkpoint.size != tree.size:
        result.add(Problem(min(checkpoint.size, tree.size), "truncated",
                           f"the export's checkpoint covers {checkpoint.size} entries, the "
                           f"export holds {tree.size}"))
    else:
        check_against_checkpoint(checkpoint, tree, result, "export checkpoint")
    return result


def proof_text(proof: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(p).decode() for p in proof]
