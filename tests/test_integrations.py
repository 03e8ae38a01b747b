"""Where users run mlward: the pre-commit hooks (through ``pre-commit try-repo``, as a user's
``.pre-commit-config.yaml`` would) and the composite GitHub Action (its steps' commands run
in order, the way the runner runs them).

Both install this repository into a fresh environment, offline: pip may not use an index, and
the dependencies come from the environment running the tests (``PYTHONPATH``), so what is
tested is the hook and action definitions and the package built from this tree.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SARIF_SCHEMA = json.loads((REPO / "tests" / "fixtures" / "schemas" /
                           "sarif-schema-2.1.0.json").read_text())
pytestmark = pytest.mark.slow


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLWARD_", "GITHUB_"))}
    env.update(PYTHONPATH=sysconfig.get_paths()["purelib"], PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
               MLWARD_CACHE=str(tmp_path / "cache"))
    return env


def git(root: Path, *argv: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *argv],
                   cwd=root, check=True, capture_output=True)


@pytest.fixture
def user_repo(tmp_path: Path, marker: Path) -> Path:
    """A user's repository: a planted pickle, a clean file, a gate policy in its settings."""
    root = tmp_path / "user"
    (root / ".mlward").mkdir(parents=True)
    (root / ".mlward" / "mlward.toml").write_text('[gate]\npolicy = "baseline"\n'
                                                  'checks = ["scan"]\n')
    (root / "evil.pkl").write_bytes(pickle.dumps(Evil(marker)))
    (root / "notes.txt").write_text("nothing to see\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    return root


def try_repo(user_repo: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(REPO), *argv],
                          cwd=user_repo, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


def test_pre_commit_hooks_scan_staged_models_and_enforce_the_gate(
        user_repo: Path, tmp_path: Path, marker: Path) -> None:
    env = offline_env(tmp_path)
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["mlward-scan", "mlward-gate"]

    found = try_repo(user_repo, env, "mlward-scan", "--files", "evil.pkl", "notes.txt")
    assert found.returncode == 1, found.stdout + found.stderr
    assert "MW101" in found.stdout and "notes.txt" not in found.stdout  # models only

    git(user_repo, "rm", "-q", "--cached", "evil.pkl")
    (user_repo / "evil.pkl").unlink()
    clean = try_repo(user_repo, env, "mlward-scan", "--all-files")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    (user_repo / "again.pkl").write_bytes(pickle.dumps(Evil(marker)))
    git(user_repo, "add", "again.pkl")
    gated = try_repo(user_repo, env, "mlward-gate", "--all-files")
    assert gated.returncode == 1, gated.stdout + gated.stderr
    assert "FAIL no-critical-findings [critical]" in gated.stdout
    assert not marker.exists()


_EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def test_the_github_action_runs_its_steps_in_order(user_repo: Path, tmp_path: Path,
                                                   marker: Path) -> None:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    inputs = {k: v.get("default", "") for k, v in action["inputs"].items()}
    inputs["policy"] = "strict"
    steps = action["runs"]["steps"]
    assert action["runs"]["using"] == "composite"

    env = offline_env(tmp_path)
    # What actions/setup-python provides: a fresh Python first on PATH.
    assert steps[0]["uses"].startswith("actions/setup-python@")
    venv = tmp_path / "runner-python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    output, summary = tmp_path / "github_output", tmp_path / "step_summary"
    env.update(GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary))
    outputs: dict[str, str] = {}

    def expand(text: str) -> str:
        def value(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.startswith("inputs."):
                return str(inputs[expr.removeprefix("inputs.")])
            if expr == "github.action_path":
                return str(REPO)
            if expr == "steps.gate.outputs.exit-code":
                return outputs["exit-code"]
            raise AssertionError(f"expression the test does not know: {expr}")
        return _EXPR.sub(value, text)

    codes = []
    for step in steps[1:]:
        if "uses" in step:  # the SARIF upload: check what code scanning would check
            assert step["uses"].startswith("github/codeql-action/upload-sarif@")
            sarif = user_repo / expand(step["with"]["sarif_file"])
            jsonschema.validate(json.loads(sarif.read_text()), SARIF_SCHEMA)
            continue
        step_env = {**env, **{k: expand(str(v)) for k, v in step.get("env", {}).items()}}
        done = subprocess.run(["bash", "-e", "-c", expand(step["run"])], cwd=user_repo,
                              env=step_env, capture_output=True, text=True, timeout=600,
                              check=False)
        codes.append((step["name"], done.returncode))
        if output.exists():
            outputs.update(line.split("=", 1) for line in output.read_text().splitlines())
        if step["name"] != "Fail on violations":
            assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["exit-code"] == "1"
    assert codes[-1] == ("Fail on violations", 1)  # the job fails on the violation
    assert summary.read_text().startswith("## ❌ mlward gate: fail")
    assert (venv / "bin" / "mlward").exists()  # mlward came from the action's own tree
    assert not marker.exists()
