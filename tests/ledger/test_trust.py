"""The ledger records every command, never pretends (issue 13, item 12): actions and resource
URIs per command, nothing (and one note) outside a project, a deleted or emptied ledger is
tampering and is not recreated, a read-only ledger verifies, consistency proofs between two
checkpoints, and proofs/exports reuse the latest checkpoint."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import sys
from pathlib import Path

import pytest

from mlward._internal.ledger import open_ledger
from mlward._internal.ledger.merkle import MemoryTree, leaf_hash, verify_consistency
from mlward.cli.main import main
from unprivileged import run_cli


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLWARD_DB", raising=False)
    monkeypatch.delenv("MLWARD_VULN_DB", raising=False)
    monkeypatch.delenv("MLWARD_TRUST", raising=False)
    assert main(["init"]) == 0
    return tmp_path


def _entries(project: Path) -> list[dict]:  # type: ignore[type-arg]
    with open_ledger(project=project) as ledger:
        return [e.to_json() for e in ledger.log(_no_filter())]


def _no_filter():  # type: ignore[no-untyped-def]
    from mlward._internal.ledger.store import Filters

    return Filters()


def _free_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_every_command_records_its_own_action_and_a_uri(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "data").mkdir()
    (project / "data" / "a.csv").write_text("x\n1\n")
    (project / "model").mkdir()
    (project / "model" / "w.bin").write_bytes(b"\x00" * 64)
    (project / "requirements.txt").write_text("numpy==1.26.4\n")
    url = _free_url()
    commands = [
        (["scan", "-q", "--executor", "inline", "data"], "scan"),
        (["deps", "-q", "requirements.txt"], "deps"),
        (["deps", "-q", "--env"], "deps"),
        (["probe", "-q", "--timeout", "1", url], "probe"),
        (["baseline", "create", "--executor", "inline", "data"], "baseline.create"),
        (["manifest", "create", "data", "-o", "data.manifest.json"], "manifest.create"),
        (["manifest", "verify", "data.manifest.json"], "manifest.verify"),
        (["lineage", "record", "--model", "model", "--data", "data.manifest.json"],
         "lineage.record"),
        (["lineage", "verify", "model"], "lineage.verify"),
        (["keygen", "-o", "k", "--trust"], "keygen"),
        (["sign", "data.manifest.json", "-k", "k.key"], "sign"),
        (["verify", "data.manifest.json"], "verify"),
        (["verify", "nothing-here.json"], "verify"),  # a failure is recorded too
    ]
    for argv, _ in commands:
        main(argv)
    capsys.readouterr()
    entries = _entries(project)
    assert [e["action"] for e in entries] == [action for _, action in commands]
    by_action = {e["action"]: e["resource"] for e in entries}
    assert by_action["scan"] == (project / "data").as_uri()
    assert by_action["probe"] == url
    assert by_action["manifest.create"] == (project / "data.manifest.json").as_uri()
    assert entries[2]["resource"] == Path(sys.executable).absolute().as_uri()  # deps --env
    assert all(e["resource"].startswith(("file:///", "http://")) for e in entries)
    assert entries[-1]["outcome"] == "error"


def test_outside_a_project_nothing_is_recorded_and_it_is_said_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLWARD_DB", raising=False)
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / ".mlward").mkdir()  # a folder (say, a baseline's) is not an initialised project
    assert main(["scan", "--executor", "inline", "a.txt"]) == 0
    assert main(["probe", "--timeout", "1", _free_url(), _free_url()]) == 2
    err = capsys.readouterr().err
    assert err.count("not recorded in an audit ledger") == 2  # once per command run
    assert not (tmp_path / ".mlward" / "ledger.db").exists()


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_lost_ledger_is_tampering_and_is_not_recreated(
        project: Path, capsys: pytest.CaptureFixture[str], how: str) -> None:
    for i in range(3):
        main(["ledger", "append", "--action", "deploy", "--resource", f"m{i}"])
    db = project / ".mlward" / "ledger.db"
    for extra in (db.with_name("ledger.db-wal"), db.with_name("ledger.db-shm")):
        extra.unlink(missing_ok=True)
    if how == "deleted":
        db.unlink()
    else:
        db.write_bytes(b"")
    (project / "a.txt").write_text("hello")
    capsys.readouterr()
    assert main(["scan", "--executor", "inline", "a.txt"]) == 0  # the scan's verdict stands
    assert "TAMPERING" in capsys.readouterr().err
    assert main(["ledger", "verify"]) == 1
    out = capsys.readouterr().out
    assert "TAMPERING DETECTED" in out and "signed over 3 entries" in out
    assert main(["ledger", "append", "--action", "x", "--resource", "y"]) == 1
    assert db.exists() == (how == "emptied") and (not db.exists() or db.stat().st_size == 0)


def test_a_read_only_ledger_can_be_verified(project: Path) -> None:
    for i in range(3):
        assert main(["ledger", "append", "--action", "deploy", "--resource", f"m{i}"]) == 0
    folder = project / ".mlward"
    for f in folder.glob("ledger.db*"):
        f.chmod(0o444)
    folder.chmod(0o555)
    try:
        run = run_cli(["ledger", "verify"], cwd=project)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "ledger ok: 3 entries" in run.stdout
        run = run_cli(["ledger", "log", "--format", "json"], cwd=project)
        assert run.returncode == 0 and len(json.loads(run.stdout)) == 3
        assert not (folder / "ledger.db-wal").exists()  # nothing was written
    finally:
        folder.chmod(0o755)


def test_consistency_proof_between_two_checkpoints(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        main(["ledger", "append", "--action", "deploy", "--resource", f"m{i}"])
    kept = tmp_path / "kept.checkpoint"
    shutil.copy(project / ".mlward" / "checkpoint", kept)
    for i in range(3, 10):
        main(["ledger", "append", "--action", "deploy", "--resource", f"m{i}"])
    proof = tmp_path / "3-10.proof"
    capsys.readouterr()
    assert main(["ledger", "consistency", str(kept), "-o", str(proof)]) == 0
    key = (project / ".mlward" / "keys" / "ledger.pub").read_text().strip()
    assert main(["ledger", "verify", "--consistency", str(proof), "--key", key]) == 0
    assert "log of 10 entries extends the log of 3 entries" in capsys.readouterr().out
    # A proof whose hashes were altered does not verify.
    lines = proof.read_text().split("\n")
    lines[1] = lines[1][:-4] + ("AAA=" if not lines[1].endswith("AAA=") else "BBB=")
    bad = tmp_path / "bad.proof"
    bad.write_text("\n".join(lines))
    assert main(["ledger", "verify", "--consistency", str(bad), "--key", key]) == 1
    # An entry the old checkpoint covers, rewritten with its tree: no longer consistent.
    db = sqlite3.connect(project / ".mlward" / "ledger.db")
    db.execute("UPDATE ledger_entries SET body = replace(body, 'm1', 'm7') WHERE idx = 1")
    db.commit()
    db.close()
    _rebuild_tree(project)
    capsys.readouterr()
    assert main(["ledger", "consistency", str(kept)]) == 1
    assert "TAMPERING DETECTED" in capsys.readouterr().out
    # ...and the checkpoint kept beside the ledger is not replaced by one over the rewrite.
    kept_now = (project / ".mlward" / "checkpoint").read_text()
    assert main(["ledger", "append", "--action", "deploy", "--resource", "after"]) == 1
    assert main(["ledger", "checkpoint"]) == 1
    assert (project / ".mlward" / "checkpoint").read_text() == kept_now
    assert kept_now.split("\n")[1] == "10"


def _rebuild_tree(project: Path) -> None:
    """What a careful attacker does after an edit: recompute every stored leaf and node."""
    db = sqlite3.connect(project / ".mlward" / "ledger.db")
    bodies = [bytes(r[0]) if not isinstance(r[0], str) else r[0].encode()
              for r in db.execute("SELECT body FROM ledger_entries ORDER BY idx")]
    tree = MemoryTree(leaf_hash(b) for b in bodies)
    for idx, leaf in enumerate(tree.levels[0]):
        db.execute("UPDATE ledger_entries SET leaf = ? WHERE idx = ?", (leaf, idx))
    for level, row in enumerate(tree.levels):
        for idx, h in enumerate(row):
            db.execute("UPDATE ledger_nodes SET hash = ? WHERE level = ? AND idx = ?",
                       (h, level, idx))
    db.commit()
    db.close()


def test_verify_consistency_rejects_every_altered_proof() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(33)]
    tree = MemoryTree(leaves)
    for n in range(1, 34):
        for m in range(1, n):
            proof = tree.consistency_proof(m, n)
            assert verify_consistency(m, n, tree.root(m), tree.root(n), proof)
            assert not verify_consistency(m, n, tree.root(m), tree.root(n - 1) if n > m + 1
                                          else leaf_hash(b"x"), proof)
            assert not verify_consistency(m - 1 or 1, n, tree.root(m), tree.root(n), proof) \
                or m == 1
            for k in range(len(proof)):
                altered = list(proof)
                altered[k] = bytes(32)
                assert not verify_consistency(m, n, tree.root(m), tree.root(n), altered)
            assert not verify_consistency(m, n, tree.root(m), tree.root(n), [*proof, bytes(32)])


def test_prove_and_export_reuse_the_latest_checkpoint(project: Path, tmp_path: Path) -> None:
    for i in range(4):
        main(["ledger", "append", "--action", "deploy", "--resource", f"m{i}"])

    def stored() -> int:
        db = sqlite3.connect(project / ".mlward" / "ledger.db")
        try:
            return int(db.execute("SELECT count(*) FROM ledger_checkpoints").fetchone()[0])
        finally:
            db.close()

    before = stored()
    assert main(["ledger", "prove", "1", "-o", str(tmp_path / "r1")]) == 0
    assert main(["ledger", "prove", "2", "-o", str(tmp_path / "r2")]) == 0
    assert main(["ledger", "export", "-o", str(tmp_path / "x.jsonl")]) == 0
    assert stored() == before  # nothing new was signed or stored
    note = (project / ".mlward" / "checkpoint").read_text()
    assert (tmp_path / "r1").read_text().endswith(note)
    assert json.loads((tmp_path / "x.jsonl").read_text().split("\n")[0])["checkpoint"] == note
