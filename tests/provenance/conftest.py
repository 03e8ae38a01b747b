"""Helpers for the provenance tests: run the CLI, build small datasets and models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlward.cli.main import main


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own folder, with no ledger or trust file from elsewhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLWARD_TRUST", raising=False)
    monkeypatch.delenv("MLWARD_DB", raising=False)


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("manifest", "create", ...)`` -> (exit code, stdout, stderr)."""

    def _run(*argv: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def run_json(run: Run, *argv: str | Path) -> tuple[int, Any]:
    code, out, err = run(*argv, "--format", "json")
    assert "Traceback" not in err
    return code, json.loads(out)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "train" / "a.csv").write_text("x,y\n1,2\n")
    (root / "train" / "b.csv").write_text("x,y\n3,4\n")
    (root / "labels.txt").write_text("cat\ndog\n")
    return root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (root / "config.json").write_text('{"layers": 2}')
    return root
