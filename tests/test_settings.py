"""Settings: one resolution order, every value's origin, clear errors; `mlward config show`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mlward.cli.main import main
from mlward.errors import UsageError
from mlward.findings import Severity
from mlward.settings import Settings, load_settings


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".mlward").mkdir()
    (tmp_path / ".mlward" / "mlward.toml").write_text(
        'fail_on = "low"\njobs = 3\nexclude = ["data/"]\n[limits]\nmax_depth = 4\n')
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.mlward]\nfail_on = "medium"\ntimeout = 30\n')
    monkeypatch.chdir(tmp_path)
    for var in ("MLWARD_FAIL_ON", "MLWARD_JOBS", "MLWARD_TIMEOUT", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_each_layer_overrides_the_one_before(project: Path) -> None:
    s = load_settings()
    assert (s.fail_on, s.jobs, s.timeout, s.limits.max_depth) == (Severity.MEDIUM, 3, 30.0, 4)
    assert s.origins["jobs"].endswith("mlward.toml")
    assert s.origins["fail_on"].endswith("[tool.mlward]")
    s = load_settings(env={"MLWARD_FAIL_ON": "critical", "MLWARD_JOBS": "2"})
    assert (s.fail_on, s.jobs) == (Severity.CRITICAL, 2)
    assert s.origins["fail_on"] == "environment MLWARD_FAIL_ON"
    s = load_settings(env={"MLWARD_FAIL_ON": "critical"}, flags={"fail_on": Severity.INFO})
    assert s.fail_on is Severity.INFO and s.origins["fail_on"] == "flag --fail-on"
    assert Settings().fail_on is Severity.HIGH  # the library default reads nothing


def test_config_show_prints_values_and_origins(project: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["config", "show", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["fail_on"]["value"] == "medium"
    assert rows["fail_on"]["origin"].endswith("pyproject.toml [tool.mlward]")
    assert rows["exclude"]["value"] == "data/"
    assert rows["color"] == {"name": "color", "value": "false",
                             "origin": "environment NO_COLOR"}
    assert rows["format"]["origin"] == "default"
    assert main(["config", "show"]) == 0
    assert "mlward.toml" in capsys.readouterr().out


@pytest.mark.parametrize("toml,message", [
    ('jobs = 0\n', "jobs must be a whole number of at least 1"),
    ('fail_on = "severe"\n', "unknown severity"),
    ('colour = true\n', "unknown setting 'colour'"),
    ('[limits]\nmax_depht = 3\n', "unknown limit 'max_depht'"),
    ('[[waivers]]\nrule = "MW101"\n', "needs a reason"),
    ('[[waivers]]\nreason = "x"\n', "must name a fingerprint or a rule"),
    ('[[waivers]]\nreason = "x"\nrule = "MW1"\nexpires = "soon"\n', "expires must be a date"),
    ('fail_on = \n', "not valid TOML"),
])
def test_bad_settings_name_the_file_and_the_key(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / ".mlward").mkdir()
    (tmp_path / ".mlward" / "mlward.toml").write_text(toml)
    with pytest.raises(UsageError) as err:
        load_settings(start=tmp_path)
    assert message in err.value.diagnostics()
    assert "mlward.toml" in err.value.diagnostics()


def test_the_cli_turns_a_bad_setting_into_one_line_and_exit_2(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".mlward" / "mlward.toml").write_text("jobs = -1\n")
    assert main(["scan", "-q", str(project)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "jobs" in err and "Traceback" not in err


def test_a_pyproject_that_cannot_configure_mlward_is_not_parsed(tmp_path: Path) -> None:
    """Another tool's broken pyproject.toml is not mlward's to refuse; one that mentions
    mlward is parsed, and its errors are reported."""
    (tmp_path / "pyproject.toml").write_text('[tool.other]\nx = \n')
    assert load_settings(start=tmp_path).fail_on == Settings().fail_on
    for text in ('[tool.mlward]\nfail_on = \n', '[tool]\nmlward = {fail_on = }\n'):
        (tmp_path / "pyproject.toml").write_text(text)
        with pytest.raises(UsageError, match="not valid TOML"):
            load_settings(start=tmp_path)
    (tmp_path / "pyproject.toml").write_text('tool.mlward.fail_on = "low"\n')
    assert load_settings(start=tmp_path).fail_on.label == "low"


def test_sections_are_kept_for_their_features(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.mlward.alerts]\nwebhook = "http://127.0.0.1:1/hook"\n')
    s = load_settings(start=tmp_path)
    assert s.section("alerts") == {"webhook": "http://127.0.0.1:1/hook"}
    assert s.section("cloud") == {}


def _spaced(rng: random.Random, *parts: str) -> str:
    return "".join(p + rng.choice(["", "", " ", "\t", "  "]) for p in parts)


def _quoted(rng: random.Random, key: str) -> str:
    return rng.choice([key, key, f'"{key}"', f"'{key}'"])


def _pyproject(rng: random.Random) -> str:
    """A random pyproject.toml: mlward as a dependency, a script, a comment, in other tools'
    tables and in multi-line strings, and, some of the time, a tool.mlward table however
    TOML lets it be written."""
    tool, mlward = _quoted(rng, "tool"), _quoted(rng, "mlward")
    pieces = [
        '[project]\nname = "demo"\ndependencies = ["mlward>=1.0", "torch"]\n',
        '[project.scripts]\nmlward = "mlward.cli.entry:entrypoint"\n',
        '[project.optional-dependencies]\nsecurity = ["mlward[all]"]\n',
        '# run mlward scan in CI\n[tool.ruff]\nline-length = 100\n',
        '[tool.pytest.ini_options]\naddopts = "-p mlward"\n',
        '[tool.other]\nnote = """\n[tool.mlward]\nfail_on = "low"\n"""\n',
        f'[{_spaced(rng, "tool", ".", "black")}]\nmlward = 1\n',
        '[tool.poetry.dependencies]\nmlward = "^1.0"\n',
        "[tool.hatch]\nmlward.x = 1\n",
    ]
    defining = [
        f'[{_spaced(rng, tool, ".", mlward)}]\nfail_on = "low"\n',
        f'[{_spaced(rng, tool, ".", mlward, ".", "alerts")}]\nwebhook = "x"\n',
        f'[{_spaced(rng, tool)}]\n{_spaced(rng, mlward)}= {{ fail_on = "low" }}\n',
        f'[{_spaced(rng, tool)}]\n{_spaced(rng, mlward, ".", "fail_on")}= "low"\n',
        f'[[{_spaced(rng, tool, ".", mlward, ".", "waivers")}]]\nrule = "MW301"\n',
        f'{_spaced(rng, tool, ".", mlward, ".", "fail_on")}= "low"\n',
        f'{_spaced(rng, tool)}= {{ {mlward} = {{ fail_on = "low" }} }}\n',
        '[tool."\\u006dlward"]\nfail_on = "low"\n',
    ]
    chosen = rng.sample(pieces, rng.randint(0, len(pieces)))
    if rng.random() < 0.5:
        chosen.insert(0 if "[" not in (d := rng.choice(defining)).split("\n")[0]
                      else rng.randint(0, len(chosen)), d)
    return "\n".join(chosen)


def test_only_a_pyproject_that_could_configure_mlward_is_parsed() -> None:
    """The text check that spares parsing other tools' pyproject.toml never misses a
    tool.mlward table (however it is spaced, quoted or escaped, checked against tomllib on
    2,000 random files), and skips the ones that only mention mlward."""
    import tomllib

    from mlward.settings import may_configure_mlward

    rng = random.Random(1234)
    defined = skipped = 0
    for _ in range(2000):
        text = _pyproject(rng)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            continue  # a random mix can repeat a table: not a file TOML allows
        if "mlward" in data.get("tool", {}):
            defined += 1
            assert may_configure_mlward(text), text
        elif not may_configure_mlward(text):
            skipped += 1
    assert defined > 500 and skipped > 300, (defined, skipped)
