"""Commands that produce a report also write it to the project's inventory; an inventory
that cannot take it is a warning, never a different exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlward._internal.demo import build_demo_project
from mlward._internal.inventory import open_store
from mlward.cli.main import main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLWARD_DB", raising=False)
    build_demo_project(tmp_path)
    assert main(["init", "-q"]) == 0
    return tmp_path


def _scan() -> int:
    return main(["scan", ".", "--executor", "inline", "-q", "-f", "json", "-o", "out.json"])


def test_scan_writes_the_inventory(project: Path) -> None:
    assert _scan() == 1
    with open_store(str(project / ".mlward" / "inventory.db")) as store:
        [p] = store.projects()
        assert p["name"] == project.name and p["report"]["verdict"] == "fail"
        assert store.findings().total > 0
    assert _scan() == 1  # the same scan again is one more document (its times differ)


def test_recording_can_be_turned_off(project: Path) -> None:
    config = project / ".mlward" / "mlward.toml"
    config.write_text(config.read_text() + "\n[inventory]\nrecord = false\n")
    assert _scan() == 1
    assert not (project / ".mlward" / "inventory.db").exists()


def test_project_name_setting(project: Path) -> None:
    config = project / ".mlward" / "mlward.toml"
    config.write_text(config.read_text() + '\n[inventory]\nproject = "fraud-model"\n')
    assert _scan() == 1
    with open_store(str(project / ".mlward" / "inventory.db")) as store:
        assert [p["name"] for p in store.projects()] == ["fraud-model"]


def test_a_broken_inventory_is_a_warning(project: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = project / ".mlward" / "mlward.toml"
    config.write_text(config.read_text() + '\n[inventory]\ndb = "mysql://nowhere/x"\n')
    assert _scan() == 1  # the scan's own exit code
    err = capsys.readouterr().err
    assert "warning: the scan was not written to the inventory" in err


def test_bom_gate_and_audit_results_are_kept(project: Path) -> None:
    """`mlward bom`, `mlward gate` and `mlward audit` file their documents too."""
    assert main(["bom", ".", "--executor", "inline", "-q", "-o", "bom.json"]) in (0, 2)
    assert main(["gate", ".", "--policy", "baseline", "--executor", "inline", "-q",
                 "--no-alerts", "-o", "gate.txt"]) == 1
    assert main(["audit", ".", "-q", "-o", "audit.txt"]) == 1
    with open_store(str(project / ".mlward" / "inventory.db")) as store:
        [p] = store.projects()
        assert p["bom"] is not None
        assert p["gate"]["verdict"] == "fail"
        assert p["audit"]["verdict"] in ("complete", "incomplete")
        assert {d["kind"] for d in store.documents().items} == {"report", "bom", "gate",
                                                                 "audit"}
