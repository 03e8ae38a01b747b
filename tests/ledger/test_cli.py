"""``mlward init`` and ``mlward ledger ...`` end to end, and the ledger entries other commands
leave behind (``record_event``)."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from mlward._internal.ledger import LedgerError, open_ledger, record_event
from mlward.cli.main import main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLWARD_DB", raising=False)
    assert main(["init"]) == 0
    return tmp_path


def _log(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(["ledger", "log", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_init_creates_folder_key_and_ledger(project: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder = project / ".mlward"
    key = folder / "keys" / "ledger.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (folder / "ledger.db").is_file() and (folder / "mlward.toml").is_file()
    verifier = (folder / "keys" / "ledger.pub").read_text().strip()
    assert verifier in (folder / "mlward.toml").read_text()
    assert main(["init"]) == 2  # already initialised: refused, nothing overwritten
    assert (folder / "keys" / "ledger.pub").read_text().strip() == verifier


def test_append_log_filters_and_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "append", "--action", "deploy", "--resource", "models/a.pt",
                 "--digest", "sha256:ab12", "--details", '{"ticket": 7}']) == 0
    assert main(["ledger", "append", "--action", "model.push", "--resource", "models/b.pt",
                 "--actor", "ci-bot", "--outcome", "fail"]) == 0
    entries = _log(capsys)
    assert [e["action"] for e in entries] == ["deploy", "model.push"]
    assert entries[0]["digests"] == {"sha256": "ab12"} and entries[0]["details"] == {"ticket": 7}
    assert [e["index"] for e in _log(capsys, "--actor", "ci-bot")] == [1]
    assert [e["index"] for e in _log(capsys, "--action", "model")] == [1]
    assert [e["index"] for e in _log(capsys, "--resource", "a.pt")] == [0]
    assert _log(capsys, "--since", "2999-01-01") == []
    assert len(_log(capsys, "--until", "2999-01-01T00:00:00+00:00")) == 2
    assert main(["ledger", "log"]) == 0
    assert "model.push" in capsys.readouterr().out
    assert main(["ledger", "append", "--action", "x", "--resource", "y",
                 "--details", "[1]"]) == 2


def test_verify_exit_codes_and_named_entry(project: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(6):
        main(["ledger", "append", "--action", "deploy", "--resource", f"m{i}"])
    capsys.readouterr()
    assert main(["ledger", "verify"]) == 0
    assert "ledger ok: 6 entries" in capsys.readouterr().out
    db = sqlite3.connect(project / ".mlward" / "ledger.db")
    db.execute("UPDATE ledger_entries SET body = replace(body, 'm3', 'm9') WHERE idx = 3")
    db.commit()
    db.close()
    assert main(["ledger", "verify"]) == 1
    assert "TAMPERING DETECTED at entry 3" in capsys.readouterr().out
    assert main(["ledger", "verify", "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["first_problem"]["index"] == 3


def test_prove_and_verify_receipt_offline(project: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(5):
        main(["ledger", "append", "--action", "sign", "--resource", f"m{i}"])
    receipt = tmp_path / "entry2.tlog-proof"
    assert main(["ledger", "prove", "2", "-o", str(receipt)]) == 0
    key = (project / ".mlward" / "keys" / "ledger.pub").read_text().strip()
    capsys.readouterr()
    assert main(["ledger", "verify", "--receipt", str(receipt), "--key", key]) == 0
    assert "entry 2 is in" in capsys.readouterr().out
    receipt.write_text(receipt.read_text().replace("index 2", "index 3"))
    assert main(["ledger", "verify", "--receipt", str(receipt), "--key", key]) == 1
    assert main(["ledger", "prove", "99"]) == 2


def test_checkpoint_export_and_offline_verify(project: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(4):
        main(["ledger", "append", "--action", "scan", "--resource", f"m{i}"])
    capsys.readouterr()
    assert main(["ledger", "checkpoint"]) == 0
    note = capsys.readouterr().out
    assert note.splitlines()[1] == "4"
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(note)
    export = tmp_path / "ledger.jsonl"
    assert main(["ledger", "export", "-o", str(export)]) == 0
    key = (project / ".mlward" / "keys" / "ledger.pub").read_text().strip()
    assert main(["ledger", "verify", "--file", str(export), "--key", key]) == 0
    # A third party's copy of the checkpoint reveals a rollback of the whole project folder.
    db = sqlite3.connect(project / ".mlward" / "ledger.db")
    for sql in ("DELETE FROM ledger_entries WHERE idx >= 2",
                "DELETE FROM ledger_nodes WHERE (idx + 1) * (1 << level) > 2",
                "UPDATE ledger_meta SET value = '2' WHERE key = 'size'",
                "DELETE FROM ledger_checkpoints"):
        db.execute(sql)
    db.commit()
    db.close()
    (project / ".mlward" / "checkpoint").unlink()
    capsys.readouterr()
    assert main(["ledger", "verify"]) == 0  # nothing inside the project shows it...
    assert main(["ledger", "verify", "--checkpoint", str(kept)]) == 1  # ...the kept copy does
    assert "TAMPERING DETECTED at entry 2" in capsys.readouterr().out


def test_scan_appends_its_summary(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "notes.txt").write_text("hello")
    assert main(["scan", "-q", "notes.txt"]) == 0
    (entry,) = _log(capsys, "--action", "scan")
    assert entry["resource"] == (project / "notes.txt").as_uri()
    assert entry["outcome"] == "pass"
    assert entry["details"]["exit_code"] == 0 and entry["details"]["inputs"] == ["notes.txt"]


def test_record_event_without_a_ledger_does_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLWARD_DB", raising=False)
    record_event("sign", "model.bin", outcome="pass")
    assert not (tmp_path / ".mlward").exists()


def test_record_event_finds_the_project_from_a_subfolder(project: Path) -> None:
    sub = project / "models" / "v1"
    sub.mkdir(parents=True)
    record_event("manifest.verify", "models/v1", outcome="fail",
                 digests={"sha256": "00" * 32}, details={"mismatched": ["a.bin"]}, project=sub)
    with open_ledger(project=sub) as ledger:
        entry = ledger.entry(0)
    assert (entry.event.action, entry.event.outcome) == ("manifest.verify", "fail")
    details = dict(entry.event.details)
    assert details.pop("where")["cwd"] == str(Path.cwd())  # where it was recorded
    assert details == {"mismatched": ["a.bin"]}


def test_record_event_with_a_broken_configured_ledger_raises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LedgerError):
        record_event("sign", "model.bin", outcome="pass",
                     db=str(tmp_path / "missing" / "ledger.db"))


def test_scan_warns_but_keeps_its_exit_code_when_the_ledger_is_broken(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".mlward" / "ledger.db").write_bytes(b"this is not a database" * 100)
    (project / "notes.txt").write_text("hello")
    assert main(["scan", "-q", "notes.txt"]) == 0
    assert "not recorded in the ledger" in capsys.readouterr().err


def test_init_with_db_and_record_event_on_either_store(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.delenv("MLWARD_DB", raising=False)
    assert main(["init", "--db", db_url]) == 0
    assert db_url in (project / ".mlward" / "mlward.toml").read_text()
    record_event("sign", "model.bin", outcome="pass", digests={"sha256": "ab"})
    record_event("verify", "model.bin", outcome="fail", details={"reason": "digest mismatch"})
    assert [e["outcome"] for e in _log(capsys)] == ["pass", "fail"]
    assert main(["ledger", "prove", "1", "-o", str(tmp_path / "r")]) == 0
    assert main(["ledger", "verify"]) == 0
    # Another member of the team, with only MLWARD_DB, appends to the same ledger.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLWARD_DB", db_url)
    assert main(["ledger", "append", "--action", "scan", "--resource", "other.pt"]) == 0
    with open_ledger(db_url) as ledger:
        assert ledger.size() == 3 and ledger.verify().ok
