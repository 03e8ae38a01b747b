"""Policy files: checked on load, every mistake reported with its file and line; packs,
extends, overrides; the same policy in YAML and TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlward._internal.policy.engine import make_engine
from mlward._internal.policy.model import PACKS, Policy, PolicyError, load_policy
from mlward.errors import UsageError

RULE = """version: 1
rules:
  - id: no-critical
    title: No critical findings
    severity: critical
    for: findings
    cel: finding.rank >= 4
    rego: finding.rank >= 4
"""

TOML = """version = 1
name = "mine"
extends = ["baseline"]
disable = ["no-expired-waivers"]

[params]
min_cvss = 9.0

[[rules]]
id = "no-pickle-in-production"
title = "No pickle models in production/"
severity = "high"
for = "models"
cel = 'model.path.startsWith("production/") && model.pickle'
rego = '''
startswith(model.path, "production/")
model.pickle
'''
"""

YAML = """version: 1
name: mine
extends: [baseline]
disable: [no-expired-waivers]
params: {min_cvss: 9.0}
rules:
  - id: no-pickle-in-production
    title: No pickle models in production/
    severity: high
    for: models
    cel: model.path.startsWith("production/") && model.pickle
    rego: |
      startswith(model.path, "production/")
      model.pickle
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error(tmp_path: Path, text: str, name: str = "policy.yaml", engine: str = "cel") -> str:
    path = write(tmp_path, text, name)
    with pytest.raises(PolicyError) as exc:
        make_engine(engine, load_policy([str(path)], base=tmp_path))
    return str(exc.value).replace(str(path), "P")


@pytest.mark.parametrize("pack", PACKS)
@pytest.mark.parametrize("engine", ["cel", "rego"])
def test_the_packs_load_and_compile_in_both_languages(pack: str, engine: str) -> None:
    policy = load_policy([pack], base=Path())
    make_engine(engine, policy)
    assert all(r.cel and r.rego and r.remediation and r.description for r in policy.rules)


def test_strict_extends_baseline() -> None:
    baseline = {r.id for r in load_policy(["baseline"], base=Path()).rules}
    strict = {r.id for r in load_policy(["strict"], base=Path()).rules}
    assert baseline < strict


def test_the_same_policy_in_toml_and_yaml_is_the_same_policy(tmp_path: Path) -> None:
    a = load_policy([str(write(tmp_path, TOML, "p.toml"))], base=tmp_path)
    b = load_policy([str(write(tmp_path, YAML, "p.yaml"))], base=tmp_path)
    assert a.digest == b.digest
    assert a.params["min_cvss"] == 9.0 and "no-expired-waivers" not in {r.id for r in a.rules}
    assert a.rules[-1].origin.endswith("p.toml") and a.rules[-1].line == 9
    assert b.rules[-1].line == 7


def test_a_rule_with_an_inherited_id_replaces_it(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nextends: baseline\nrules:\n  - id: no-high-findings\n"
                 "    title: Mine\n    severity: low\n    for: findings\n    cel: 'false'\n")
    policy = load_policy([str(path)], base=tmp_path)
    mine = [r for r in policy.rules if r.id == "no-high-findings"]
    assert len(mine) == 1 and mine[0].title == "Mine"


def test_settings_parameters_override_the_policy_and_change_its_digest() -> None:
    plain = load_policy(["baseline"], base=Path())
    tuned = load_policy(["baseline"], base=Path(), params={"fix_grace_days": 30})
    assert tuned.params["fix_grace_days"] == 30 and plain.digest != tuned.digest


def test_settings_cannot_set_a_parameter_the_policy_does_not_have() -> None:
    with pytest.raises(UsageError, match="'fix_grace_day', which is not a parameter of the "
                       "policy \\(did you mean 'fix_grace_days'\\?\\)"):
        load_policy(["baseline"], base=Path(), params={"fix_grace_day": 30})


def test_an_empty_policy_is_refused(tmp_path: Path) -> None:
    # As sigstore refuses an empty AllOf: a policy of no rules would pass anything.
    assert "has no rules" in error(tmp_path, "version: 1\nrules: []\n")
    with pytest.raises(PolicyError):
        Policy("x", ())


@pytest.mark.parametrize(("text", "message"), [
    ("version: 2\nrules: []\n", "P:1: version must be 1"),
    (RULE.replace("rules:", "rulez:"), "P:2: unknown key 'rulez' in the policy (did you mean "
     "'rules'?)"),
    (RULE.replace("    for:", "    severty: high\n    for:"),
     "P:6: unknown key 'severty' in rule 1 (did you mean 'severity'?)"),
    (RULE.replace("severity: critical", "severity: urgent"),
     "P:5: rule no-critical: unknown severity 'urgent'"),
    (RULE.replace("for: findings", "for: files"), "P:6: rule no-critical: for must be one of "),
    (RULE.replace("    title: No critical findings\n", ""), "P:3: title is required"),
    (RULE.replace("id: no-critical", "id: No Critical"), "P:3: rule id 'No Critical' must be"),
    (RULE.replace("    cel: finding.rank >= 4\n    rego: finding.rank >= 4\n", ""),
     "P:3: rule no-critical needs a condition"),
    (RULE + RULE.split("rules:\n")[1], "P:9: rule id no-critical is declared twice"),
    (RULE.replace("finding.rank >= 4\n    rego", "finding.ranks >= 4\n    rego"),
     "P:7: rule no-critical (cel): finding has no field 'ranks' (did you mean 'rank'?)"),
    (RULE.replace("rego: finding.rank", "rego: finding.suppression.why"),
     "P:8: rule no-critical (rego): finding.suppression has no field 'why'"),
    (RULE.replace("cel: finding.rank >= 4", "cel: finding.rank >= >= 4"),
     "P:7: rule no-critical: CEL does not compile"),
    (RULE.replace("cel: finding.rank >= 4", "cel: finding.rank >= 'high'"),
     "P:7: rule no-critical: CEL error: no such overload"),
    (RULE.replace("cel: finding.rank >= 4", "cel: finding.rank + 1"),
     "P:7: rule no-critical: the condition gave IntType, not true or false"),
    ("version: 1\nrules:\n  - id: x\n   title: y\n", "P:4: not valid YAML"),
    ("version: 1\nextends: [nowhere.yaml]\nrules: []\n", "P:2: policy file nowhere.yaml "
     "not found"),
    ("version: 1\ndisable: [no-such-rule]\nrules: []\n", "P:2: disable names 'no-such-rule'"),
])
def test_mistakes_are_reported_with_their_line(tmp_path: Path, text: str, message: str) -> None:
    assert message in error(tmp_path, text)


def test_rego_compile_errors_point_at_the_line_in_the_policy(tmp_path: Path) -> None:
    text = ("version: 1\nrules:\n  - id: r\n    title: R\n    severity: low\n    for: models\n"
            "    rego: |\n      model.pickle\n      model.format ==\n")
    assert error(tmp_path, text, engine="rego").startswith("P:9: rule r: Rego does not "
                                                           "compile: ")


def test_a_rule_without_the_engines_language_is_refused(tmp_path: Path) -> None:
    text = RULE.replace("    rego: finding.rank >= 4\n", "")
    assert "P:3: rule no-critical has no rego condition" in error(tmp_path, text, engine="rego")


def test_toml_mistakes_have_lines_too(tmp_path: Path) -> None:
    text = TOML.replace('severity = "high"', 'severity = "huge"')
    assert "P:12: rule no-pickle-in-production: unknown severity 'huge'" in \
        error(tmp_path, text, "p.toml")
    assert "P:2: not valid TOML" in error(tmp_path, "version = 1\nname = \n", "p.toml")


def test_extends_loops_are_stopped(tmp_path: Path) -> None:
    write(tmp_path, "version: 1\nextends: b.yaml\nrules: []\n", "a.yaml")
    write(tmp_path, "version: 1\nextends: a.yaml\nrules: []\n", "b.yaml")
    with pytest.raises(PolicyError, match="nests deeper"):
        load_policy([str(tmp_path / "a.yaml")], base=tmp_path)


def test_yaml_aliases_are_refused_before_they_can_expand(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    text = "version: 1\nname: laughs\nparams:\n" + "".join(f"  {line}\n" for line in levels)
    text += RULE.split("\n", 1)[1]
    with pytest.raises(PolicyError, match="anchors and aliases are not allowed"):
        load_policy([str(write(tmp_path, text))], base=tmp_path)
