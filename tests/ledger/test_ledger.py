"""The ledger over both stores: appends, proofs, checkpoints, concurrency, tampering."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from mlward._internal.ledger import Event, Ledger, LedgerError
from mlward._internal.ledger.merkle import (
    MemoryTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from mlward._internal.ledger.note import Checkpoint, NoteSigner
from mlward._internal.ledger.store import STORED_LEVEL, Filters, open_store

from .conftest import execute_sql

ORIGIN = "test.local/ledger"


def make_ledger(url: str, tmp_path: Path, *, create: bool = True) -> Ledger:
    key = tmp_path / "ledger.key"
    if not key.exists():
        key.write_text(str(NoteSigner.generate(ORIGIN)))
    signer = NoteSigner.parse(key.read_text())
    return Ledger(open_store(url, create=create), ORIGIN, signer=signer,
                  checkpoint_file=tmp_path / "checkpoint")


def event(i: int, **kw: str) -> Event:
    fields = {"action": "model.push" if i % 2 else "scan", "resource": f"models/m{i}.pt",
              "outcome": "pass", "actor": "alice" if i % 3 else "bob", "host": "ws1",
              "time": f"2026-01-{1 + i % 28:02d}T10:00:00.000000Z"}
    fields.update(kw)
    return Event(digests={"sha256": f"{i:064x}"}, details={"n": i}, **fields)


@pytest.fixture
def ledger(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    with make_ledger(db_url, tmp_path) as led:
        led.append([event(i) for i in range(12)])
        yield led


def test_append_assigns_indexes_and_chains_entries(ledger: Ledger) -> None:
    (entry,) = ledger.append([event(12)])
    assert entry.index == 12
    assert ledger.entry(12) == entry
    assert entry.prev == ledger.entry(11).leaf_hash().hex()
    assert ledger.entry(0).prev == "0" * 64
    assert ledger.size() == 13


def test_stored_tree_matches_an_in_memory_recomputation(ledger: Ledger) -> None:
    """Roots and proofs at every size, from stored nodes (subtrees of 16 entries and more)
    and subtrees folded from the entries' leaf hashes alike."""
    ledger.append([event(i) for i in range(12, 40)])
    tree = MemoryTree(ledger.entry(i).leaf_hash() for i in range(40))
    for n in range(1, 41):
        assert ledger.root(n) == tree.root(n)
        for m in sorted({*range(0, n, 5), n - 1}):
            proof = ledger.inclusion_proof(m, n)
            assert proof == tree.inclusion_proof(m, n)
            assert verify_inclusion(tree.levels[0][m], m, n, proof, tree.root(n))
        for m in range(n + 1):
            proof = ledger.consistency_proof(m, n)
            assert verify_consistency(m, n, tree.root(m), tree.root(n), proof)


def test_proofs_read_a_logarithmic_number_of_nodes(ledger: Ledger) -> None:
    ledger.append([event(i) for i in range(12, 300)])
    reads: list[int] = []
    real = ledger.store._nodes

    def counting(cur, wanted):  # type: ignore[no-untyped-def]
        wanted = list(wanted)
        reads.append(len(wanted))
        return real(cur, wanted)

    ledger.store._nodes = counting  # type: ignore[method-assign]
    for index in (0, 150, 299):
        ledger.inclusion_proof(index, 300)
    assert max(reads) <= 2 * 9  # log2(300) < 9
    assert len(reads) == 3  # one query per proof


def test_log_filters(ledger: Ledger) -> None:
    assert [e.index for e in ledger.log(Filters(actor="bob"))] == [0, 3, 6, 9]
    assert all(e.event.action == "model.push" for e in ledger.log(Filters(action="model")))
    assert [e.index for e in ledger.log(Filters(resource="m1"))] == [1, 10, 11]
    window = Filters(since="2026-01-03T00:00:00.000000Z", until="2026-01-05T00:00:00.000000Z")
    assert [e.index for e in ledger.log(window)] == [2, 3]
    assert [e.index for e in ledger.log(Filters(resource="100%_"))] == []
    assert len(ledger.log(Filters(), limit=5)) == 5


def test_checkpoint_is_signed_and_matches_the_tree(ledger: Ledger, tmp_path: Path) -> None:
    note = ledger.checkpoint()
    assert ledger.verifier is not None
    checkpoint = Checkpoint.open(note, ledger.verifier, ORIGIN)
    assert (checkpoint.size, checkpoint.root) == (12, ledger.root())
    assert (tmp_path / "checkpoint").read_text() == note
    result = ledger.verify()
    assert result.ok, result.problems
    assert result.checkpoints == 2  # the stored one and the checkpoint file


def test_receipt_verifies_offline(ledger: Ledger) -> None:
    receipt = ledger.receipt(7)
    assert ledger.verifier is not None
    assert receipt.verify(ledger.verifier).size == 12
    assert json.loads(receipt.entry)["index"] == 7


def test_export_verifies_offline_and_detects_an_edit(ledger: Ledger, tmp_path: Path) -> None:
    from mlward._internal.ledger import verify_export

    out = tmp_path / "export.jsonl"
    assert ledger.export(out) == 12
    assert verify_export(out, ledger.verifier).ok
    lines = out.read_text().splitlines()
    lines[5] = lines[5].replace('"outcome":"pass"', '"outcome":"fail"')
    out.write_text("\n".join(lines) + "\n")
    result = verify_export(out, ledger.verifier)
    assert result.first is not None and result.first.index == 4  # line 5 is entry 4
    other = NoteSigner.generate(ORIGIN).verifier
    assert any(p.kind == "checkpoint" for p in verify_export(out, other).problems)


def test_bad_events_are_refused_and_append_nothing(ledger: Ledger) -> None:
    with pytest.raises(LedgerError):
        ledger.append([event(12), Event("scan", "x", "pass", details={"f": float("nan")})])
    with pytest.raises(LedgerError):
        Event("", "x", "pass")
    assert ledger.size() == 12
    assert ledger.verify().ok


def _append_many(url: str, key: str, worker: int, count: int) -> None:
    led = Ledger(open_store(url), ORIGIN, signer=NoteSigner.parse(key))
    for i in range(count):
        led.append([event(i, actor=f"worker{worker}", resource=f"w{worker}/{i}")])
    led.close()


def test_concurrent_appenders_never_lose_duplicate_or_fork(ledger: Ledger,
                                                           db_url: str) -> None:
    assert ledger.signer is not None
    ctx = multiprocessing.get_context("fork")  # children open their own connections
    procs = [ctx.Process(target=_append_many, args=(db_url, str(ledger.signer), w, 25))
             for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert ledger.size() == 12 + 100
    result = ledger.verify()
    assert result.ok, result.problems
    seen = {(e.event.actor, e.event.resource) for e in ledger.log(Filters())[12:]}
    assert seen == {(f"worker{w}", f"w{w}/{i}") for w in range(4) for i in range(25)}


# --- tampering: each case is detected and the entry index is named ----------------------

def _first(ledger: Ledger) -> tuple[int | None, str]:
    result = ledger.verify()
    assert not result.ok
    assert result.first is not None
    return result.first.index, result.first.kind


def _body(ledger: Ledger, index: int) -> bytes:
    body = ledger.store.entry(index)
    assert body is not None
    return body


def test_tamper_edit_a_row(ledger: Ledger, db_url: str) -> None:
    body = _body(ledger, 5).replace(b'"outcome":"pass"', b'"outcome":"fail"')
    execute_sql(db_url, "UPDATE ledger_entries SET body = ?, outcome = 'fail' WHERE idx = 5",
                (body,))
    assert _first(ledger) == (5, "edited")


def test_tamper_edit_only_an_indexed_column(ledger: Ledger, db_url: str) -> None:
    execute_sql(db_url, "UPDATE ledger_entries SET actor = 'mallory' WHERE idx = 8")
    assert _first(ledger) == (8, "edited")


def test_tamper_delete_a_row(ledger: Ledger, db_url: str) -> None:
    execute_sql(db_url, "DELETE FROM ledger_entries WHERE idx = 4")
    assert _first(ledger) == (4, "deleted")


def test_tamper_swap_two_rows(ledger: Ledger, db_url: str) -> None:
    b3, b9 = _body(ledger, 3), _body(ledger, 9)
    execute_sql(db_url, "UPDATE ledger_entries SET body = ? WHERE idx = 3", (b9,))
    execute_sql(db_url, "UPDATE ledger_entries SET body = ? WHERE idx = 9", (b3,))
    assert _first(ledger) == (3, "moved")


def test_tamper_truncate_the_tail(ledger: Ledger, db_url: str) -> None:
    execute_sql(db_url, "DELETE FROM ledger_entries WHERE idx >= 9")
    assert _first(ledger) == (9, "truncated")


def test_tamper_truncate_entries_and_tree_after_a_checkpoint(ledger: Ledger,
                                                             db_url: str) -> None:
    ledger.checkpoint()
    execute_sql(db_url, "DELETE FROM ledger_entries WHERE idx >= 9")
    execute_sql(db_url, "DELETE FROM ledger_nodes WHERE (idx + 1) * (1 << level) > 9")
    execute_sql(db_url, "UPDATE ledger_meta SET value = '9' WHERE key = 'size'")
    assert _first(ledger) == (9, "rolled-back")


def test_tamper_edit_then_rebuild_the_tree(ledger: Ledger, db_url: str) -> None:
    ledger.append([event(i) for i in range(12, 40)])
    ledger.checkpoint()
    body = _body(ledger, 6).replace(b'"actor":"bob"', b'"actor":"eve"')
    execute_sql(db_url, "UPDATE ledger_entries SET body = ?, actor = 'eve', leaf = ? "
                "WHERE idx = 6", (body, leaf_hash(body)))
    bodies = [_body(ledger, i) for i in range(40)]
    rebuilt = MemoryTree(leaf_hash(b) for b in bodies)
    execute_sql(db_url, "DELETE FROM ledger_nodes")
    for level, hashes in enumerate(rebuilt.levels):
        for idx, h in enumerate(hashes if level >= STORED_LEVEL else []):
            execute_sql(db_url, "INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)",
                        (level, idx, h))
    result = ledger.verify()
    assert result.first is not None
    assert (result.first.index, result.first.kind) == (6, "edited")
    assert any(p.kind == "checkpoint" and p.index == 6 for p in result.problems)


def test_tamper_roll_back_to_an_old_checkpoint(ledger: Ledger, db_url: str) -> None:
    ledger.checkpoint()  # size 12, also written to the project's checkpoint file
    ledger.append([event(i) for i in range(12, 20)])
    ledger.checkpoint()  # size 20
    # Restore the database as it was at the first checkpoint.
    execute_sql(db_url, "DELETE FROM ledger_entries WHERE idx >= 12")
    execute_sql(db_url, "DELETE FROM ledger_nodes WHERE (idx + 1) * (1 << level) > 12")
    execute_sql(db_url, "UPDATE ledger_meta SET value = '12' WHERE key = 'size'")
    execute_sql(db_url, "DELETE FROM ledger_checkpoints WHERE size > 12")
    assert _first(ledger) == (12, "rolled-back")


def test_tamper_forged_checkpoint_row(ledger: Ledger, db_url: str) -> None:
    note = ledger.checkpoint().replace("\n12\n", "\n11\n")
    execute_sql(db_url, "INSERT INTO ledger_checkpoints (size, created, note) VALUES (?, ?, ?)",
                (11, "x", note))
    result = ledger.verify()
    assert any(p.kind == "checkpoint" and "does not verify" in p.message
               for p in result.problems)


def test_tamper_tree_nodes_only(ledger: Ledger, db_url: str) -> None:
    """A forged stored node (proofs would lie) is named by the entries it covers; a missing
    one makes proofs refuse rather than crash."""
    ledger.append([event(i) for i in range(12, 40)])  # stored: (4, 0), (4, 1), (5, 0)
    execute_sql(db_url, "UPDATE ledger_nodes SET hash = ? WHERE level = 4 AND idx = 1",
                (b"\x00" * 32,))
    assert _first(ledger) == (16, "tree")
    execute_sql(db_url, "DELETE FROM ledger_nodes WHERE level = 4 AND idx = 1")
    with pytest.raises(LedgerError, match="missing"):
        ledger.inclusion_proof(0, 40)


def test_tamper_leaf_hash_only(ledger: Ledger, db_url: str) -> None:
    """Leaf hashes live beside the entries (small subtrees are folded from them): a forged
    one is named at its entry."""
    execute_sql(db_url, "UPDATE ledger_entries SET leaf = ? WHERE idx = 5", (b"\x00" * 32,))
    assert _first(ledger) == (5, "edited")
