"""Every provenance command leaves an event in the project's ledger, failures included."""

from __future__ import annotations

from pathlib import Path

from mlward._internal.ledger import init_project, open_ledger

from .conftest import Run


def test_commands_and_failed_verifications_are_recorded(run: Run, tmp_path: Path,
                                                        dataset: Path, model: Path) -> None:
    init_project(tmp_path).close()
    run("manifest", "create", dataset, "-o", "m.json")
    run("lineage", "record", "--model", model, "--data", "m.json")
    run("keygen", "-o", "k", "--trust")
    run("sign", f"{model}.lineage.json", "-k", "k.key")
    (dataset / "labels.txt").write_text("changed")
    assert run("verify", model)[0] == 1
    assert run("manifest", "verify", "m.json")[0] == 1
    with open_ledger(project=tmp_path) as ledger:
        events = [ledger.entry(i).event for i in range(ledger.size())]
    assert [(e.action, e.outcome) for e in events] == [
        ("manifest.create", "pass"), ("lineage.record", "pass"), ("keygen", "pass"),
        ("sign", "pass"), ("verify", "fail"), ("manifest.verify", "fail")]
    assert len(events[0].digests["sha256"]) == 64
