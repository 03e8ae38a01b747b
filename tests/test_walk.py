"""What a scan covers: virtual environments, tool folders, ignore files and excludes are left
out by default, counted and listed, and `scan` and `deps` agree on it."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

import mlward
from mlward.cli.main import main
from mlward.settings import Settings

EVIL = b"cos\nsystem\n(S'true'\ntR."  # never loaded


def _project(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "models" / "clf.pkl").write_bytes(pickle.dumps({"w": [1.0]}))
    (root / "requirements.txt").write_text("numpy==1.26.4\n")
    venv = root / ".venv"
    (venv / "lib" / "site-packages" / "pkg").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for i in range(30):  # what a populated environment holds: code, pickles, requirements
        (venv / "lib" / "site-packages" / "pkg" / f"m{i}.py").write_text(
            "import pickle\npickle.loads(data)\n")
    (venv / "lib" / "site-packages" / "pkg" / "evil.pkl").write_bytes(EVIL)
    (venv / "lib" / "site-packages" / "requirements.txt").write_text("flask==0.1\n")
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "node_modules" / "x" / "evil.pkl").write_bytes(EVIL)
    (root / "build").mkdir()
    (root / "build" / "evil.pkl").write_bytes(EVIL)
    (root / "scratch.pkl").write_bytes(EVIL)
    (root / ".gitignore").write_text("build/\nscratch.pkl\n")
    return root


def test_default_scan_covers_the_project_and_lists_what_it_left_out(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    report = mlward.scan([root])
    examined = {e.location.uri for e in report.examined}
    assert {"models/clf.pkl", "requirements.txt"} <= examined <= {
        "models/clf.pkl", "requirements.txt", ".gitignore"}
    assert report.stats["files"] == 3  # clf.pkl, requirements.txt, .gitignore: nothing else
    left_out = {s.location.uri: s.reason for s in report.skipped if "default" in s.reason
                or "ignore file" in s.reason}
    assert set(left_out) == {".venv", "node_modules", "build", "scratch.pkl"}
    assert "virtual environment" in left_out[".venv"]
    assert sum(report.stats["excluded"].values()) == 4
    assert report.findings == ()
    # requirements.txt without vulnerability data is not examined fully: never called clean
    assert [s.location.uri for s in report.inconclusive] == ["requirements.txt"]


def test_no_ignore_scans_everything(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    report = mlward.scan([root], settings=Settings(ignore_files=False))
    dangerous = {f.location.uri for f in report.findings if f.rule_id == "MW101"}
    assert dangerous == {".venv/lib/site-packages/pkg/evil.pkl", "node_modules/x/evil.pkl",
                         "build/evil.pkl", "scratch.pkl"}


def test_exclude_patterns_apply_even_with_no_ignore(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    report = mlward.scan([root], settings=Settings(ignore_files=False,
                                                   exclude=(".venv/", "node_modules/", "*.pkl")))
    assert not any(f.rule_id == "MW101" for f in report.findings)
    assert report.stats["excluded"] == {"excluded by the exclude settings": 5}


def test_negation_and_nested_ignore_files(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.pkl").write_bytes(EVIL)
    (root / "data" / "keep.pkl").write_bytes(EVIL)
    (root / ".gitignore").write_text("*.pkl\n")
    (root / "data" / ".mlwardignore").write_text("!keep.pkl\n")
    report = mlward.scan([root])
    assert {f.location.uri for f in report.findings if f.rule_id == "MW101"} == \
        {"data/keep.pkl"}


def test_an_explicitly_named_file_is_always_scanned(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    report = mlward.scan([root / "scratch.pkl"])
    assert [f.rule_id for f in report.findings] == ["MW101"]


def test_scan_and_deps_agree_on_what_the_project_holds(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path / "p")
    monkeypatch.chdir(root)
    main(["deps", "-q", "-f", "json", "."])
    deps = json.loads(capsys.readouterr().out)
    assert [e["location"]["uri"] for e in deps["examined"]] == ["requirements.txt"]
    assert sum(deps["stats"]["excluded"].values()) == 4
    main(["scan", "-q", "-f", "json", "."])
    scan = json.loads(capsys.readouterr().out)
    assert {s["location"]["uri"] for s in scan["skipped"] if "default" in s["reason"] or
            "ignore file" in s["reason"]} == \
        {s["location"]["uri"] for s in deps["skipped"] if "default" in s["reason"] or
         "ignore file" in s["reason"]}


def test_a_named_folder_that_the_project_ignores_is_still_scanned(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "bench" / "out").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    (root / ".gitignore").write_text("bench/out/\n")
    (root / "bench" / "out" / "evil.pkl").write_bytes(EVIL)
    (root / "bench" / "out" / "skip.pkl").write_bytes(EVIL)
    (root / "bench" / "out" / ".gitignore").write_text("skip.pkl\n")
    report = mlward.scan([root / "bench" / "out"])
    assert report.root == str(root)
    assert [f.location.uri for f in report.findings] == ["bench/out/evil.pkl"]
    assert mlward.scan([root]).findings == ()  # walked from the project: left out
