"""``mlward deps --python PATH``: another environment's distributions, read from its files and
never by running its interpreter (issue 13, item 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlward._internal.scanners.deps.environment import find_environment
from mlward.cli.main import main

from .conftest import OSV


def _dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


@pytest.fixture
def venv(tmp_path: Path, marker: Path) -> Path:
    """A virtual environment whose interpreter would create ``marker`` if it were run."""
    root = tmp_path / "other-venv"
    (root / "bin").mkdir(parents=True)
    (root / "pyvenv.cfg").write_text("home = /nonexistent/bin\n"
                                     "include-system-site-packages = false\nversion = 3.11.4\n")
    python = root / "bin" / "python"
    python.write_text(f"#!/bin/sh\ntouch {marker}\n")
    python.chmod(0o755)
    site = root / "lib" / "python3.11" / "site-packages"
    _dist(site, "mlflow", "2.9.1")
    _dist(site, "requests", "2.31.0")
    _dist(root / "lib" / "python3.9" / "site-packages", "ray", "2.0.0")  # another version's
    return root


def _deps(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["deps", "-q", "-f", "json", "--vuln-db", str(OSV), *args])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("given", ["bin/python", ".", "lib/python3.11/site-packages"])
def test_another_environment_is_checked_without_running_it(
        venv: Path, marker: Path, capsys: pytest.CaptureFixture[str], given: str) -> None:
    code, report = _deps(["--python", str(venv / given)], capsys)
    assert code == 1
    found = {(f["rule_id"], f["details"]["package"]) for f in report["findings"]}
    assert ("MW501", "mlflow") in found
    installed = {e["location"]["uri"] for e in report["examined"]}
    assert installed == {"pkg:pypi/mlflow@2.9.1", "pkg:pypi/requests@2.31.0"}
    assert report["kind"] == "environment"
    (fact,) = [f for f in report["facts"] if f["kind"] == "python-environment"]
    assert fact["data"]["site_packages"] == [str(venv / "lib/python3.11/site-packages")]
    assert not marker.exists()  # the environment's interpreter never ran


def test_system_site_packages_of_the_base_are_included_when_the_venv_says_so(
        venv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base"
    _dist(base / "lib" / "python3.11" / "site-packages", "torch", "2.0.0")
    (venv / "pyvenv.cfg").write_text(f"home = {base / 'bin'}\n"
                                     "include-system-site-packages = true\nversion = 3.11.4\n")
    env = find_environment(venv / "bin" / "python")
    assert env.site_packages == (venv / "lib/python3.11/site-packages",
                                 base / "lib/python3.11/site-packages")
    assert "include-system-site-packages" in env.how


def test_an_interpreter_named_by_version_picks_that_version(tmp_path: Path) -> None:
    prefix = tmp_path / "conda-env"
    _dist(prefix / "lib" / "python3.10" / "site-packages", "numpy", "1.0")
    _dist(prefix / "lib" / "python3.12" / "site-packages", "numpy", "2.0")
    (prefix / "bin").mkdir()
    (prefix / "bin" / "python3.12").write_text("")
    assert find_environment(prefix / "bin" / "python3.12").site_packages == (
        prefix / "lib/python3.12/site-packages",)


def test_a_path_that_is_no_environment_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deps", "--python", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["deps", "--python", str(tmp_path)]) == 2
    assert "no site-packages folder found" in capsys.readouterr().err
