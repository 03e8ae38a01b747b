"""Waivers, inline waivers and baselines, for every rule; waived findings stay in the report."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

import mlward
from mlward.cli.main import main
from mlward.settings import Settings, Waiver

EVIL = b"cos\nsystem\n(S'true'\ntR."  # never loaded
LOADER = "import pickle\nm = pickle.load(open('m.pkl', 'rb'))\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".mlward").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "old.pkl").write_bytes(EVIL)
    (tmp_path / "train.py").write_text(LOADER)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_a_baseline_made_before_a_payload_reports_exactly_that_payload(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["baseline", "create", "."]) == 0
    assert "2 finding(s) accepted" in capsys.readouterr().out
    assert (project / ".mlward" / "baseline.json").is_file()
    assert main(["scan", "-q", "."]) == 0  # everything known: nothing fails the run
    capsys.readouterr()
    (project / "models" / "new.pkl").write_bytes(EVIL)
    assert main(["scan", "-q", "-f", "json", "."]) == 1
    data = _json(capsys)
    new = [(f["rule_id"], f["location"]["uri"]) for f in data["findings"]
           if f["baseline"] == "new"]
    assert new == [("MW101", "models/new.pkl")]
    assert {f["baseline"] for f in data["findings"]} == {"new", "unchanged"}
    # text hides unchanged findings unless --all; SARIF marks them
    main(["scan", "-q", "."])
    text = capsys.readouterr().out
    assert "new.pkl" in text and "old.pkl" not in text and "2 unchanged" in text
    main(["scan", "-q", "--all", "."])
    assert "old.pkl" in capsys.readouterr().out
    main(["scan", "-q", "-f", "sarif", "."])
    states = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]:
              r["baselineState"] for r in _json(capsys)["runs"][0]["results"]}
    assert states["models/new.pkl"] == "new" and states["models/old.pkl"] == "unchanged"


def test_waivers_by_fingerprint_and_by_rule_and_path(project: Path) -> None:
    first = mlward.scan([project])
    fp = next(f.fingerprint for f in first.findings if f.rule_id == "MW301")
    settings = Settings(waivers=(
        Waiver("reviewed: loads our own file", fingerprint=fp, owner="ana"),
        Waiver("legacy models, replaced in Q1", rule="MW101", path="models/*",
               expires="2099-01-01")))
    report = mlward.scan([project], settings=settings)
    assert report.exit_code(mlward.Severity.LOW) == 0
    waived = {f.rule_id: f.suppression for f in report.findings}
    assert waived["MW301"].reason == "reviewed: loads our own file"
    assert waived["MW301"].owner == "ana"
    assert waived["MW101"].expires == "2099-01-01"
    assert len(report.findings) == 2  # waived findings never vanish


def test_an_expired_waiver_stops_waiving_and_is_reported(project: Path) -> None:
    yesterday = date.fromordinal(date.today().toordinal() - 1).isoformat()
    settings = Settings(waivers=(Waiver("temporary", rule="MW101", expires=yesterday,
                                        source=".mlward/mlward.toml"),))
    report = mlward.scan([project], settings=settings)
    rules = {f.rule_id: f for f in report.findings}
    assert rules["MW101"].suppression is None
    assert rules["MW002"].location.uri == ".mlward/mlward.toml"
    assert report.exit_code(mlward.Severity.HIGH) == 1


def test_waivers_from_the_settings_file_reach_json_and_sarif(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".mlward" / "mlward.toml").write_text(
        '[[waivers]]\nrule = "MW101"\npath = "models/"\nreason = "quarantined"\n'
        'owner = "sec-team"\n')
    assert main(["scan", "-q", "-f", "json", "."]) == 0  # MW301 is medium: below high
    data = _json(capsys)
    (f,) = [f for f in data["findings"] if f["rule_id"] == "MW101"]
    assert f["suppression"] == {"kind": "waiver", "reason": "quarantined", "owner": "sec-team",
                                "source": str(project / ".mlward" / "mlward.toml")}
    main(["scan", "-q", "-f", "sarif", "."])
    (r,) = [r for r in _json(capsys)["runs"][0]["results"] if r["ruleId"] == "MW101"]
    assert r["suppressions"][0]["kind"] == "external"
    assert r["suppressions"][0]["justification"] == "quarantined"


def test_inline_waivers_in_code_and_notebooks(project: Path) -> None:
    (project / "models" / "old.pkl").unlink()
    (project / "train.py").write_text(
        "import pickle\n"
        "m = pickle.load(open('a', 'rb'))  # mlward: ignore[MW301] our own artifact\n"
        "# mlward: ignore[MW999] a different rule waives nothing here\n"
        "n = pickle.load(open('b', 'rb'))\n")
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": ["# mlward: ignore[MW301] fixture data\n",
                       "m = pickle.load(open('c', 'rb'))\n"]}
    (project / "eda.ipynb").write_text(json.dumps({
        "cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    report = mlward.scan([project])
    found = {(f.location.uri, f.location.line): f.suppression for f in report.findings
             if f.rule_id == "MW301"}
    assert found[("train.py", 2)].kind == "inline"
    assert found[("train.py", 2)].reason == "our own artifact"
    assert found[("train.py", 4)] is None
    assert found[("eda.ipynb", 2)].reason == "fixture data"
