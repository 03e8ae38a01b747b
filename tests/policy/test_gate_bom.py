"""The gate's ``bom`` check: ``bom verify`` of the project's BOM, its drift judged by the
policy (in CEL and in Rego), and a clear error when a BOM was asked for and is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlward.cli.main import main

from .conftest import Run

POLICY = """
version: 1
rules:
  - id: bom-matches
    title: Models and datasets are what the BOM lists
    severity: high
    for: bom
    cel: drift.kind == "changed" || drift.kind == "missing"
    rego: drift.kind in {"changed", "missing"}
    remediation: Review the change, then make a new BOM.
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "p"
    (root / ".mlward").mkdir(parents=True)
    (root / "data" / "train").mkdir(parents=True)
    (root / "data" / "train" / "train.csv").write_text("text,label\ngood,1\nbad,0\n")
    (root / "policy.yaml").write_text(POLICY)
    monkeypatch.chdir(root)
    # A manifested folder is a dataset of the BOM.
    assert main(["manifest", "create", "data/train", "-o", "data/train.manifest.json"]) == 0
    return root


def gate(run: Run, *argv: str) -> tuple[int, dict]:
    code, out, _ = run("gate", "--executor", "inline", "--policy", "policy.yaml",
                       "--check", "bom", "-f", "json", *argv)
    return code, json.loads(out)


@pytest.mark.parametrize("engine", ["cel", "rego"])
def test_drift_from_the_bom_violates(project: Path, run: Run, engine: str) -> None:
    assert run("bom", "-o", "bom.cdx.json")[0] == 0
    code, clean = gate(run, "--engine", engine)
    assert code == 0 and clean["violations"] == []
    (project / "data" / "train" / "train.csv").write_text("text,label\ngood,0\nbad,0\n")
    code, doc = gate(run, "--engine", engine)
    assert code == 1
    (violation,) = doc["violations"]
    assert violation["rule"] == "bom-matches" and violation["counts"]
    assert "data/train/train.csv" in json.dumps(violation)


def test_the_bom_collection_in_the_input_document(project: Path, run: Run) -> None:
    assert run("bom", "-o", "bom.cdx.json")[0] == 0
    (project / "data" / "train" / "train.csv").unlink()
    assert gate(run, "--write-input", "input.json")[0] == 1
    drift = json.loads((project / "input.json").read_text())["bom"]
    assert [(d["kind"], d["path"], d["rule"]) for d in drift] == [
        ("missing", "data/train/train.csv", "MW752")]


def test_a_bom_asked_for_and_missing_is_an_error(project: Path, run: Run) -> None:
    code, _, err = run("gate", "--executor", "inline", "--policy", "policy.yaml",
                       "--check", "bom")
    assert code == 2 and "no BOM to verify" in err


def test_without_a_bom_the_default_checks_leave_it_out(project: Path, run: Run) -> None:
    code, out, _ = run("gate", "--executor", "inline", "--policy", "policy.yaml", "-f", "json")
    assert code == 0
    assert "bom" not in json.loads(out)["checks"]
