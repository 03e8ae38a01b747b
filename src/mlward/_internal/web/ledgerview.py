"""What the ledger page shows: entries, and for one entry the inclusion proof checked against
the signed checkpoint step by step (so a reader sees how it verifies, or where it breaks).

The ledger is opened read-only per request: the dashboard never signs, appends or repairs.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from mlward._internal.ledger import LedgerError, open_ledger
from mlward._internal.ledger.ledger import Ledger
from mlward._internal.ledger.merkle import leaf_hash, verify_inclusion
from mlward._internal.ledger.note import Checkpoint


class LedgerSource:
    """Where the served ledger is: a ``db`` setting and/or a project folder."""

    def __init__(self, db: str | None, project: Path | None) -> None:
        self.db = db
        self.project = project

    def open(self) -> Ledger:
        return open_ledger(self.db, project=self.project, read_only=True)


def _entry(ledger: Ledger, index: int) -> dict[str, Any]:
    e = ledger.entry(index)
    return {"index": e.index, **{k: getattr(e.event, k) for k in (
        "time", "actor", "host", "action", "resource", "outcome")},
        "digests": dict(e.event.digests), "details": dict(e.event.details)}


def overview(source: LedgerSource, *, page: int, per_page: int = 50,
             verify: bool = True) -> dict[str, Any]:
    """The newest entries (a page of them), the checkpoints and, with ``verify``, a full
    verification (it reads every entry: the ledger page runs it, the overview does not)."""
    with source.open() as ledger:
        size = ledger.size()
        start = max(0, size - page * per_page)
        end = max(0, size - (page - 1) * per_page)
        entries = [_entry(ledger, i) for i in reversed(range(start, end))]
        result = ledger.verify() if verify else None
        with ledger.store.snapshot() as snap:
            checkpoints = [{"size": s, "created": created} for s, created, _ in
                           snap.checkpoints()]
        head = _latest_checkpoint(ledger)
    return {"size": size, "origin": ledger.origin, "entries": entries, "page": page,
            "pages": max(1, -(-size // per_page)), "checkpoints": checkpoints,
            "head": {"size": head.size, "root": head.root.hex()} if head else None,
            "verify": None if result is None else {
                "ok": result.ok, "problems": [p.to_dict() for p in result.problems[:20]],
                "checkpoints": result.checkpoints}}


def alerts(source: LedgerSource, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest alert deliveries the gate recorded (``gate.alert`` entries), newest first;
    channel targets with any credential masked."""
    from mlward._internal.ledger.store import Filters
    from mlward._internal.policy.record import ALERT
    from mlward._internal.redact import redact_credentials

    with source.open() as ledger:
        found = ledger.log(Filters(action=ALERT))[-limit:]
    return [{"time": e.event.time, "target": redact_credentials(e.event.resource),
             "outcome": e.event.outcome,
             **{k: e.event.details.get(k) for k in ("channel", "kind", "alert", "items",
                                                     "attempts", "error")}}
            for e in reversed(found)]


def _latest_checkpoint(ledger: Ledger) -> Checkpoint | None:
    """The newest signed checkpoint that opens with the ledger's key (the project's file
    first, then the store's)."""
    notes = []
    if ledger.checkpoint_file is not None and ledger.checkpoint_file.is_file():
        notes.append(ledger.checkpoint_file.read_text(encoding="utf-8"))
    with ledger.store.snapshot() as snap:
        notes += [note for _, _, note in reversed(snap.checkpoints())]
    if ledger.verifier is None:
        return None
    for note in notes:
        try:
            return Checkpoint.open(note, ledger.verifier, ledger.origin)
        except LedgerError:
            continue
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def prove(source: LedgerSource, index: int) -> dict[str, Any]:
    """Entry ``index``'s inclusion in the latest signed checkpoint, checked step by step:
    the checkpoint's signature, the entry's leaf hash from its stored bytes, the proof hashes
    from the stored tree, and whether they fold to the signed root."""
    with source.open() as ledger:
        checkpoint = _latest_checkpoint(ledger)
        body = ledger.store.entry(index)
        if body is None:
            raise LedgerError(f"the ledger has no entry {index}")
        try:
            entry = _entry(ledger, index)
        except LedgerError as exc:
            entry = {"index": index, "error": str(exc)}
        out: dict[str, Any] = {"entry": entry, "verifier": str(ledger.verifier or ""),
                               "leaf_hash": _b64(leaf_hash(body))}
        if checkpoint is None:
            return {**out, "ok": False,
                    "reason": "no signed checkpoint opens with the ledger's verifier key"}
        out["checkpoint"] = {"origin": checkpoint.origin, "size": checkpoint.size,
                             "root": _b64(checkpoint.root)}
        if index >= checkpoint.size:
            return {**out, "ok": False, "reason": f"entry {index} is newer than the latest "
                    f"signed checkpoint (size {checkpoint.size})"}
        try:
            proof = ledger.inclusion_proof(index, checkpoint.size)
        except LedgerError as exc:
            return {**out, "ok": False, "reason": str(exc)}
        out["proof"] = [_b64(p) for p in proof]
        ok = verify_inclusion(leaf_hash(body), index, checkpoint.size, proof, checkpoint.root)
        return {**out, "ok": ok, "reason": (
            "the entry's leaf hash and the proof hashes fold to the root the checkpoint signs"
            if ok else "the entry's bytes and the stored tree do not fold to the signed root: "
            "the entry or the tree was changed after the checkpoint was signed")}


def consistency(source: LedgerSource, old: int, new: int) -> dict[str, Any]:
    """Whether the stored checkpoint of size ``new`` extends the one of size ``old``."""
    with source.open() as ledger:
        with ledger.store.snapshot() as snap:
            notes = {s: note for s, _, note in snap.checkpoints()}
        if old not in notes or new not in notes:
            return {"ok": False, "reason": "pick two stored checkpoints"}
        try:
            ledger.consistency(notes[old], notes[new]).verify(
                ledger.verifier, ledger.origin)  # type: ignore[arg-type]
        except LedgerError as exc:
            return {"ok": False, "old": old, "new": new, "reason": str(exc)}
    return {"ok": True, "old": old, "new": new,
            "reason": f"the log of {new} entries only appended to the log of {old} entries"}
