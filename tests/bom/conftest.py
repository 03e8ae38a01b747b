"""BOM test fixtures: a project built in code, settings that scan it in this process, the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlward.cli.main import main
from mlward.settings import Settings

from .project import build

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
OSV = FIXTURES / "osv"

pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in its own folder, with no ledger, trust file or OSV data from elsewhere."""
    monkeypatch.chdir(tmp_path)
    for name in ("MLWARD_TRUST", "MLWARD_DB", "MLWARD_VULN_DB", "MLWARD_FORMAT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / ".git").mkdir()  # the project root for every command run inside it
    return build(root)


@pytest.fixture
def settings(project: Path) -> Settings:
    return Settings(root=str(project), executor="inline", vuln_db=(str(OSV),))


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("bom", ...)`` -> (exit code, stdout, stderr); never a traceback."""

    def _run(*argv: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    return _run
