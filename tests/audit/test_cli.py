"""The audit commands as users run them: exit codes, text and JSON, --since, --schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlward.cli.main import main

from .conftest import write

INLINE = ["--executor", "inline"]


def test_audit_diff_list_and_since(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", *INLINE, "-q"]) == 0
    capsys.readouterr()
    assert main(["audit", "diff"]) == 2  # one snapshot is not enough
    write(project, {"data/extra.csv": "a\n"})
    assert main(["audit", ".", *INLINE]) == 0  # MW781 is medium: below --fail-on high
    out = capsys.readouterr().out
    assert "since snapshot" in out and "added     data   data/extra.csv" in out
    assert main(["audit", "diff", "-f", "json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert [(c["status"], c["path"]) for c in d["files"]] == [("added", "data/extra.csv")]
    assert main(["audit", "diff", "--since", "2000-01-01"]) == 1  # from the first snapshot
    capsys.readouterr()
    assert main(["audit", "list", "-f", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 2
    first, second = listed[0]["snapshot"], listed[1]["snapshot"]
    assert main(["audit", "diff", first[:6], second[:6]]) == 1
    assert main(["audit", "diff", second[:6], second[:6]]) == 0  # no change
    assert main(["audit", "diff", "zz"]) == 2


def test_audit_json_report_carries_the_snapshot(project: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", *INLINE, "-f", "json", "--fail-on", "low"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "repository"
    stats = report["stats"]["audit"]
    assert len(stats["snapshot"]) == 64 and stats["complete"] is True
    assert (project / ".mlward" / "snapshots" / f"{stats['snapshot']}.json").is_file()


def test_audit_needs_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["audit", *INLINE]) == 2
    assert "mlward init" in capsys.readouterr().err


@pytest.mark.parametrize("when", ["hourly", "daily", "weekly"])
def test_schedule_prints_the_shipped_examples(when: str, project: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--schedule", when]) == 0
    out = capsys.readouterr().out
    for name in ("mlward-audit.service", "mlward-audit.timer", "crontab",
                 "github-actions.yml"):
        assert f"==> {name} <==" in out
    assert f"WorkingDirectory={project}" in out and "OnCalendar=" in out
    assert "{" not in out.split("github-actions.yml")[0]  # every placeholder filled
    import yaml

    workflow = yaml.safe_load(out.split("==> github-actions.yml <==\n", 1)[1])
    assert workflow["jobs"]["audit"]["steps"]
    assert not (project / ".mlward" / "snapshots").exists()  # printing is all it does
