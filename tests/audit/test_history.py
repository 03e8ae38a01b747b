"""``ledger history``: every entry that touched a file, through renames, with proofs; the
forensic index on SQLite and PostgreSQL, built on open for a ledger made before it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ledger.conftest import db_url  # noqa: F401 (the SQLite + PostgreSQL fixture)
from mlward._internal.audit.history import file_history
from mlward._internal.ledger import Event, init_project, open_ledger, record_event
from mlward._internal.ledger.merkle import leaf_hash, verify_inclusion
from mlward._internal.ledger.note import Checkpoint
from mlward._internal.ledger.refs import Ref, local_path, refs_of
from mlward.cli.main import main

from .conftest import SETTINGS, audit, write


def test_history_follows_a_renamed_dataset(project: Path, capsys: pytest.CaptureFixture[str]) \
        -> None:
    assert main(["manifest", "create", "data", "-o", "data.manifest.json"]) == 0
    first = audit(project)
    (project / "data/train.csv").rename(project / "data/train-v2.csv")
    second = audit(project)
    (project / "data/train-v2.csv").write_text("text,label\ngood,0\n")
    record_event("data.relabel", "data/train-v2.csv", outcome="ok")
    third = audit(project)
    capsys.readouterr()
    assert main(["ledger", "history", "data/train-v2.csv", "-f", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    actions = [(e["index"], e["action"]) for e in out["entries"]]
    assert actions == [(0, "manifest.create"), (first.entry, "audit.snapshot"),
                       (second.entry, "audit.snapshot"), (second.entry + 1, "data.relabel"),
                       (third.entry, "audit.snapshot")]
    roles = {e["index"]: sorted(m["role"] for m in e["matched"]) for e in out["entries"]}
    assert roles[0] == ["root"]  # the manifest of the folder holding it
    assert roles[first.entry] == ["added"]  # under its old name
    assert roles[second.entry] == ["renamed", "renamed-from"]
    assert roles[third.entry] == ["modified"]
    assert str(project / "data/train.csv") in out["paths"]  # the old name was followed
    # Every proof checks against the signed checkpoint it names.
    with open_ledger(None, project) as ledger:
        assert ledger.verifier is not None
        checkpoint = Checkpoint.open(out["tree"]["checkpoint"], ledger.verifier)
    import base64

    for e in out["entries"]:
        body = json.dumps({k: v for k, v in e.items() if k not in (
            "leaf_hash", "matched", "inclusion_proof")}, sort_keys=True,
            separators=(",", ":"), ensure_ascii=False).encode()
        proof = [base64.b64decode(p) for p in e["inclusion_proof"]]
        assert verify_inclusion(leaf_hash(body), e["index"], checkpoint.size, proof,
                                checkpoint.root)
    # The text view names the change and the rename.
    assert main(["ledger", "history", "data/train-v2.csv"]) == 0
    text = capsys.readouterr().out
    assert "data.relabel" in text and "renamed-from data/train.csv sha256:" in text


def test_history_by_digest_and_without_following(project: Path) -> None:
    audit(project)
    (project / "data/test.csv").rename(project / "data/moved.csv")
    audit(project)
    with open_ledger(None, project) as ledger:
        followed = file_history(ledger, [str(project / "data/moved.csv")])
        alone = file_history(ledger, [str(project / "data/moved.csv")], follow=False)
        digest = followed.items[-1].refs[0].digest
        assert digest is not None
        by_digest = file_history(ledger, [], [digest])
    assert len(followed.items) == 2 and len(alone.items) == 1
    assert [i.entry.index for i in by_digest.items] == [i.entry.index for i in followed.items]


def test_refs_of_an_entry() -> None:
    details = {"where": {"cwd": "/p"}, "roots": ["file:///p/data"], "from": "old.csv",
               "inputs": ["s3://b/k", "/abs/in"]}  # as recorded in /p
    assert refs_of("data/x.csv", {"sha256": "ab"}, details) == [
        Ref("/p/data/x.csv", "sha256:ab", "resource"), Ref("/p/old.csv", "sha256:ab", "from"),
        Ref("/p/data", None, "root"), Ref("/abs/in", None, "input")]
    assert local_path("pkg:pypi/torch@2") is None and local_path("s3://b/k") is None
    assert local_path("a/../b", "/w") == "/w/b"
    assert local_path("file:///x/y%20z") == "/x/y z"
    assert local_path("/a//b/./c/") == "/a/b/c"
    assert refs_of("s3://bucket/key", {}, {}) == []


def test_the_index_on_both_databases(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    root = tmp_path / "p"
    root.mkdir()
    with init_project(root, db=None if db_url.endswith(".db") else db_url) as ledger:
        events = [Event("manifest.create", "file:///d/m.json", "pass", {"sha256": "11"},
                        {"roots": ["file:///d/data"]}),
                  Event("sign", "/d/data/a.csv", "pass", {"sha256": "22"}),
                  Event("scan", "/elsewhere", "pass")]
        ledger.append(events, [[], [Ref("/d/data/b.csv", "sha256:33", "added")], []])
        found = ledger.store.find_refs(["/d/data/a.csv", "/d/data/b.csv"], ["sha256:11"],
                                       ["/d/data", "/d"])
    assert found == [(0, Ref("/d/m.json", "sha256:11", "resource")),
                     (0, Ref("/d/data", None, "root")),
                     (1, Ref("/d/data/b.csv", "sha256:33", "added")),
                     (1, Ref("/d/data/a.csv", "sha256:22", "resource"))]


def test_a_ledger_made_before_the_index_is_indexed_on_open(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    with init_project(root) as ledger:
        ledger.append([Event("sign", "/d/a.csv", "pass", {"sha256": "22"})])
    db = root / ".mlward" / "ledger.db"
    with sqlite3.connect(db) as conn:  # as an earlier mlward left it
        conn.execute("DROP TABLE ledger_refs")
        conn.execute("DELETE FROM ledger_meta WHERE key = 'refs'")
    with open_ledger(None, root) as ledger:
        assert ledger.store.find_refs(["/d/a.csv"]) == [
            (0, Ref("/d/a.csv", "sha256:22", "resource"))]
        assert ledger.verify().ok


def test_history_needs_a_path_or_digest(project: Path) -> None:
    assert main(["ledger", "history"]) == 2
    write(project, {})
    assert SETTINGS.executor == "inline"


def test_audit_and_history_on_both_databases(db_url: str, tmp_path: Path,  # noqa: F811
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "p"
    write(root, {"data/a.csv": "x\n", "models/m.npy": "not really\n"})
    init_project(root, db=None if db_url.endswith(".db") else db_url).close()
    monkeypatch.chdir(root)
    first = audit(root)
    (root / "data/a.csv").rename(root / "data/b.csv")
    second = audit(root)
    assert second.changes is not None and second.snapshot.previous == first.id
    assert [(c.status, c.path) for c in second.changes.files] == [("renamed", "data/b.csv")]
    with open_ledger(None, root) as ledger:
        history = file_history(ledger, [str(root / "data/b.csv")])
        assert ledger.verify().ok
    assert [i.entry.index for i in history.items] == [first.entry, second.entry]
