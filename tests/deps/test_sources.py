"""Dependency sources: requirements files, manifests, lock files, conda, notebooks, --env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlward._internal.scanners.deps.check import read_dependencies
from mlward._internal.scanners.deps.manifests import installed_distributions, poetry_constraint
from mlward._internal.scanners.deps.model import DependencyError
from mlward._internal.scanners.deps.requirements import split_pip_install


def by_name(deps: list) -> dict:  # type: ignore[type-arg]
    return {d.key: d for d in deps}


def test_requirements_includes_constraints_markers_hashes(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("numpy==1.26.4\n")
    (tmp_path / "constraints.txt").write_text("ray==2.6.3\n")
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# tools\n"
        "-r base.txt\n"
        "-c constraints.txt\n"
        "mlflow==2.9.1 \\\n"
        "    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\n"
        "ray>=2.0  # pinned by the constraints file\n"
        'torch>=2.0 ; python_version >= "3.9"\n'
        "-e ./local-pkg\n"
        "git+https://github.com/example/pkg.git#egg=pkg\n"
        "transformers @ https://example.com/transformers-4.35.0-py3-none-any.whl\n"
        "--index-url https://pypi.org/simple\n")
    kind, deps = read_dependencies(req)
    assert kind == "requirements"
    d = by_name(deps)
    assert d["numpy"].version == "1.26.4" and d["numpy"].location.uri.endswith("base.txt")
    assert d["mlflow"].version == "2.9.1" and d["mlflow"].location.line == 4
    assert d["ray"].version == "2.6.3"  # the constraint pins the range
    assert d["torch"].version is None and d["torch"].specifier == ">=2.0"
    assert d["torch"].marker == 'python_version >= "3.9"'
    unresolvable = [x for x in deps if x.unresolvable]
    assert len(unresolvable) == 3  # editable, VCS, direct URL: reported, not dropped
    assert {x.location.line for x in unresolvable} == {8, 9, 10}


def test_requirements_include_cycle_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "a-requirements.txt").write_text("-r b-requirements.txt\nmlflow==2.0.0\n")
    (tmp_path / "b-requirements.txt").write_text("-r a-requirements.txt\nray==2.6.3\n")
    _, deps = read_dependencies(tmp_path / "a-requirements.txt")
    assert sorted(d.key for d in deps) == ["mlflow", "ray"]
    (tmp_path / "requirements.txt").write_text("-r missing.txt\n")
    with pytest.raises(DependencyError, match="not found"):
        read_dependencies(tmp_path / "requirements.txt")


def test_requirements_garbage_line_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("this is ((( not a requirement\n")
    with pytest.raises(DependencyError, match="line 1"):
        read_dependencies(tmp_path / "requirements.txt")


def test_pyproject_pep621_and_poetry(tmp_path: Path) -> None:
    p = tmp_path / "pyproject.toml"
    p.write_text(
        '[project]\nname = "x"\ndependencies = [\n  "mlflow==2.9.1",\n  "gradio>=3,<4",\n]\n'
        '[project.optional-dependencies]\nserve = ["ray[default]==2.6.3"]\n'
        '[tool.poetry.dependencies]\npython = "^3.10"\ntransformers = "^4.30.2"\n'
        'torch = { version = "~1.13.0" }\nlocal = { path = "../local" }\n')
    _, deps = read_dependencies(p)
    d = by_name(deps)
    assert d["mlflow"].version == "2.9.1" and d["mlflow"].location.line == 4
    assert d["gradio"].specifier == "<4,>=3"
    assert d["ray"].version == "2.6.3"
    assert d["transformers"].specifier == ">=4.30.2,<5"
    assert d["torch"].specifier == ">=1.13.0,<1.14"
    assert d["local"].unresolvable
    assert "python" not in d


@pytest.mark.parametrize(("poetry", "pep440"), [
    ("^1.2.3", ">=1.2.3,<2"), ("^0.2.3", ">=0.2.3,<0.3"), ("~1.2.3", ">=1.2.3,<1.3"),
    ("~1", ">=1,<2"), ("1.2.3", "==1.2.3"), ("*", ""), (">=1,<2", ">=1,<2"),
])
def test_poetry_constraints(poetry: str, pep440: str) -> None:
    assert poetry_constraint(poetry) == pep440


def test_lock_files(tmp_path: Path) -> None:
    (tmp_path / "poetry.lock").write_text(
        '[[package]]\nname = "mlflow"\nversion = "2.9.1"\n\n[[package]]\nname = "ray"\n'
        'version = "2.6.3"\n')
    (tmp_path / "uv.lock").write_text(
        'version = 1\n[[package]]\nname = "myproj"\nversion = "0.1.0"\n'
        'source = { editable = "." }\n\n[[package]]\nname = "torch"\nversion = "1.13.0"\n')
    (tmp_path / "pylock.toml").write_text(
        'lock-version = "1.0"\n[[packages]]\nname = "gradio"\nversion = "3.33.0"\n')
    (tmp_path / "Pipfile.lock").write_text(json.dumps(
        {"_meta": {}, "default": {"transformers": {"version": "==4.35.0"}},
         "develop": {"tool": {"git": "https://example.com/tool.git"}}}, indent=4))
    assert [(d.key, d.version, d.location.line) for d in
            read_dependencies(tmp_path / "poetry.lock")[1]] == [("mlflow", "2.9.1", 2),
                                                                ("ray", "2.6.3", 6)]
    assert [(d.key, d.version) for d in read_dependencies(tmp_path / "uv.lock")[1]] == [
        ("torch", "1.13.0")]
    assert [(d.key, d.version) for d in read_dependencies(tmp_path / "pylock.toml")[1]] == [
        ("gradio", "3.33.0")]
    pip = by_name(read_dependencies(tmp_path / "Pipfile.lock")[1])
    assert pip["transformers"].version == "4.35.0" and pip["tool"].unresolvable


def test_conda_environment(tmp_path: Path) -> None:
    env = tmp_path / "environment.yml"
    env.write_text("name: ml\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n"
                   "  - pytorch=1.13.0\n  - conda-forge::numpy=1.24\n  - pip\n  - pip:\n"
                   "    - mlflow==2.9.1\n    - -e ./pkg\n")
    kind, deps = read_dependencies(env)
    d = by_name(deps)
    assert kind == "conda"
    assert "python" not in d and "pip" not in d
    assert d["torch"].version == "1.13.0"  # conda's pytorch is PyPI's torch
    assert d["numpy"].specifier == "==1.24.*" and d["numpy"].version is None
    assert d["mlflow"].version == "2.9.1" and d["mlflow"].location.line == 9
    assert any(x.unresolvable for x in deps)


def test_notebook_pip_lines(tmp_path: Path) -> None:
    nb = tmp_path / "train.ipynb"
    nb.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["%pip install fake==1.0"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": ["import os\n", "%pip install -q mlflow==2.9.1 'ray>=2'\n",
                    "!pip install -U -e ./local\n"]},
    ]}))
    kind, deps = read_dependencies(nb)
    assert kind == "notebook"
    assert [(d.key, d.specifier, d.location.cell, d.location.line) for d in deps
            if not d.unresolvable] == [("mlflow", "==2.9.1", 1, 2), ("ray", ">=2", 1, 2)]
    assert [d.location.line for d in deps if d.unresolvable] == [3]


@pytest.mark.parametrize(("line", "args"), [
    ("pip install a==1 b", ["a==1", "b"]),
    ("python -m pip install --upgrade -r req.txt c>=2 && echo done", ["c>=2"]),
    ("%pip install -e .", ["-e ."]),
    ("/usr/bin/pip3 install --index-url https://x/simple d", ["d"]),
    ("conda install x", None),
])
def test_split_pip_install(line: str, args: list[str] | None) -> None:
    assert split_pip_install(line) == args


def test_installed_distributions_lists_this_environment() -> None:
    deps = by_name(installed_distributions())
    assert deps["packaging"].version  # mlward depends on it
    assert deps["mlward"].origin == "environment"


def test_unknown_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mlflow==1.0\n")
    with pytest.raises(DependencyError, match="not a dependency file"):
        read_dependencies(tmp_path / "notes.txt")
