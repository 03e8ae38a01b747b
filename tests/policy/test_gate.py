"""``mlward gate`` over the planted project: the verdicts of both packs in both condition
languages, every output format, waivers, exit codes, the ledger."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
import xmlschema

from mlward._internal.ledger import open_ledger

from .conftest import Run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SARIF_SCHEMA = json.loads((FIXTURES / "schemas" / "sarif-schema-2.1.0.json").read_text())
JUNIT_XSD = FIXTURES / "junit" / "junit.xsd"
INPUT_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "src" / "mlward" / "schemas"
                           / "gate-input.schema.json").read_text())
GATE = ("gate", "--executor", "inline")


def baseline_expected(project: Path) -> Counter[tuple[str, str]]:
    settings = str(project / ".mlward" / "mlward.toml")
    return Counter([
        ("no-critical-findings", "MW101 models/evil.pkl"),
        ("no-high-findings", "MW401 config/settings.py"),  # the key id ...
        ("no-high-findings", "MW401 config/settings.py"),  # ... and the secret key
        ("no-high-findings", "MW501 requirements.txt"),
        ("no-high-findings", "MW305 train.py"),
        ("no-expired-waivers", f"MW002 {settings}"),
        ("no-fixable-vulnerable-dependencies", "vulnpkg==1.0 (requirements.txt)"),
    ])


def strict_expected(project: Path) -> Counter[tuple[str, str]]:
    settings = str(project / ".mlward" / "mlward.toml")
    unsigned = ["models/bert", "models/bert/model.safetensors", "models/evil.pkl",
                "production/model.pkl"]
    return baseline_expected(project) + Counter([
        ("no-medium-findings", f"MW002 {settings}"),
        ("no-medium-findings", "MW302 train.py"),
        ("no-medium-findings", "MW303 train.py"),  # its waiver expired
        *(("models-signed", m) for m in unsigned),
        *(("models-have-lineage", m) for m in unsigned),
        ("no-pickle-models", "models/evil.pkl"),
        ("no-pickle-models", "production/model.pkl"),
        ("no-vulnerable-dependencies", "vulnpkg==1.0 (requirements.txt)"),
        ("dependencies-pinned", "loosepkg (requirements.txt)"),
        ("no-notebook-outputs-on-protected-branches", "notebooks/out.ipynb"),
        ("models-declare-license", "models/evil.pkl"),
        ("models-declare-license", "models/signed/model.safetensors"),
        ("models-declare-license", "production/model.pkl"),
    ])


def gate_json(run: Run, *argv: str) -> tuple[int, dict]:
    code, out, _ = run(*GATE, *argv, "-f", "json")
    return code, json.loads(out)


def counted(doc: dict) -> Counter[tuple[str, str]]:
    return Counter((v["rule"], v["message"].split(": ", 1)[1]) for v in doc["violations"]
                   if v["counts"])


@pytest.mark.parametrize("engine", ["cel", "rego"])
@pytest.mark.parametrize("pack", ["baseline", "strict"])
def test_packs_find_exactly_the_planted_problems(project: Path, run: Run, marker: Path,
                                                 pack: str, engine: str) -> None:
    code, doc = gate_json(run, "--policy", pack, "--engine", engine)
    expected = baseline_expected(project) if pack == "baseline" else strict_expected(project)
    assert counted(doc) == expected
    assert code == 1 and doc["verdict"] == "fail"
    assert doc["errors"] == [] and doc["blind"] == []
    assert not marker.exists()  # the planted pickle was read, never loaded


def test_cel_and_rego_reach_identical_verdicts_on_the_same_input(project: Path,
                                                                   run: Run) -> None:
    runs = {e: gate_json(run, "--policy", "strict", "--engine", e)[1] for e in ("cel", "rego")}

    def verdicts(doc: dict) -> list[tuple[str, str, bool]]:
        return sorted((v["rule"], v["fingerprint"], v["counts"]) for v in doc["violations"])

    assert verdicts(runs["cel"]) == verdicts(runs["rego"])
    assert [r["violations"] for r in runs["cel"]["rules"]] == \
        [r["violations"] for r in runs["rego"]["rules"]]


def test_a_waived_finding_does_not_violate_and_an_expired_waiver_does(project: Path,
                                                                        run: Run) -> None:
    _, doc = gate_json(run, "--policy", "strict")
    by_rule = {(v["rule"], v["message"].split(": ", 1)[1]): v for v in doc["violations"]}
    waived = by_rule[("no-medium-findings", "MW307 train.py")]
    assert not waived["counts"]
    assert waived["suppression"]["reason"] == "eval of a constant expression, reviewed"
    assert by_rule[("no-medium-findings", "MW303 train.py")]["counts"]  # expired in 2020
    assert doc["summary"]["suppressed"] == 1


def test_a_violation_is_waived_by_its_policy_rule_id(project: Path, run: Run) -> None:
    with (project / ".mlward" / "mlward.toml").open("a") as f:
        f.write('\n[[waivers]]\nrule = "dependencies-pinned"\npath = "requirements.txt"\n'
                'reason = "loosepkg is ours"\n')
    _, doc = gate_json(run, "--policy", "strict")
    pinned = [v for v in doc["violations"] if v["rule"] == "dependencies-pinned"]
    assert len(pinned) == 1 and not pinned[0]["counts"]
    assert pinned[0]["suppression"]["reason"] == "loosepkg is ours"


def test_every_output_format(project: Path, run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, text, err = run(*GATE, "--policy", "strict", "-o", out / "gate.txt",
                          "--sarif", out / "gate.sarif", "--junit", out / "gate.xml",
                          "--markdown", out / "gate.md", "--json", out / "gate.json",
                          "--write-input", out / "input.json")
    assert code == 1 and text == ""
    doc = json.loads((out / "gate.json").read_text())
    n = sum(counted(doc).values())

    sarif = json.loads((out / "gate.sarif").read_text())
    jsonschema.validate(sarif, SARIF_SCHEMA)
    results = sarif["runs"][0]["results"]
    assert len(results) == len(doc["violations"])
    assert all(r["partialFingerprints"]["mlward/gate/v1"] for r in results)
    suppressed = [r for r in results if r.get("suppressions")]
    assert [r["ruleId"] for r in suppressed] == ["no-medium-findings"]
    assert suppressed[0]["suppressions"][0]["kind"] == "external"
    assert {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]} == \
        {r["id"] for r in doc["rules"]}

    schema = xmlschema.XMLSchema(JUNIT_XSD)
    schema.validate(out / "gate.xml")
    junit = schema.to_dict(out / "gate.xml")
    suite = junit["testsuite"][0]
    assert int(suite["@tests"]) == len(doc["rules"])
    failing = {c["@name"] for c in suite["testcase"] if "failure" in c}
    assert failing == {r["id"] for r in doc["rules"] if r["violations"]}
    assert sum(len(c.get("failure", [])) for c in suite["testcase"]) == n

    md = (out / "gate.md").read_text()
    assert md.startswith("## ❌ mlward gate: fail")
    assert "| ❌ fail | `models-signed` |" in md and "| ✅ pass | `no-high-findings` |" not in md

    txt = (out / "gate.txt").read_text()
    assert "FAIL no-critical-findings [critical]" in txt and f"{n} violation(s)" in txt
    assert "fix: Convert the model to safetensors" in txt

    jsonschema.validate(json.loads((out / "input.json").read_text()), INPUT_SCHEMA)
    assert "mlward gate: FAIL" not in err  # the text report went to its file, not twice


def test_a_project_that_satisfies_its_policy_passes(project: Path, run: Run) -> None:
    policy = project / "ok.yaml"
    policy.write_text("version: 1\nrules:\n  - id: no-gguf\n    title: No GGUF models\n"
                      "    severity: high\n    for: models\n    cel: model.family == 'gguf'\n"
                      "    rego: model.family == \"gguf\"\n")
    for engine in ("cel", "rego"):
        code, doc = gate_json(run, "--policy", str(policy), "--engine", engine)
        assert (code, doc["verdict"], doc["violations"]) == (0, "pass", [])


def test_a_blind_check_makes_the_gate_inconclusive(project: Path, run: Run,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLWARD_VULN_DB")  # no vulnerability data: requirements not checked
    policy = project / "ok.yaml"
    policy.write_text("version: 1\nrules:\n  - {id: none, title: Nothing, severity: low, "
                      "for: findings, cel: 'false', rego: 'false'}\n")
    code, doc = gate_json(run, "--policy", str(policy))
    assert code == 2 and doc["verdict"] == "inconclusive"
    assert {(b["check"], b["path"]) for b in doc["blind"]} >= {("scan", "requirements.txt"),
                                                               ("deps", "requirements.txt")}


def test_an_invalid_policy_stops_the_gate_with_its_line(project: Path, run: Run) -> None:
    policy = project / "bad.yaml"
    policy.write_text("version: 1\nrules:\n  - id: x\n    title: X\n    severity: high\n"
                      "    for: findings\n    cel: finding.sevrity == 'high'\n")
    code, out, err = run(*GATE, "--policy", str(policy))
    assert code == 2 and out == ""
    assert f"{policy}:7: rule x (cel): finding has no field 'sevrity' (did you mean " \
           "'severity'?)" in err


def test_each_run_and_violation_is_in_the_ledger(project: Path, run: Run) -> None:
    code, doc = gate_json(run, "--policy", "baseline")
    assert code == 1
    with open_ledger(project=project) as ledger:
        events = [ledger.entry(i).event for i in range(ledger.size())]
    runs = [e for e in events if e.action == "gate.run"]
    assert len(runs) == 1 and runs[0].outcome == "fail"
    assert runs[0].resource == project.as_uri()
    assert runs[0].digests["policy"] == doc["policy"]["digest"].removeprefix("sha256:")
    assert runs[0].actor and runs[0].host
    violations = [e for e in events if e.action == "gate.violation"]
    assert sorted(e.details["fingerprint"] for e in violations) == \
        sorted(runs[0].details["violations"])
    assert len(violations) == sum(baseline_expected(project).values())
    evil = next(e for e in violations if e.details["rule"] == "no-critical-findings")
    assert evil.resource == (project / "models" / "evil.pkl").as_uri()
    assert evil.details["policy"]["digest"] == doc["policy"]["digest"]


@pytest.mark.parametrize("pack", ["baseline", "strict"])
def test_every_output_format_is_the_same_from_cel_and_rego(project: Path, run: Run,
                                                           tmp_path: Path, pack: str) -> None:
    outputs: dict[str, dict[str, str]] = {}
    for engine in ("cel", "rego"):
        out = tmp_path / engine
        out.mkdir()
        code, _, _ = run(*GATE, "--policy", pack, "--engine", engine, "-o", out / "gate.txt",
                         "--sarif", out / "gate.sarif", "--junit", out / "gate.xml",
                         "--markdown", out / "gate.md", "--json", out / "gate.json")
        assert code == 1
        jsonschema.validate(json.loads((out / "gate.sarif").read_text()), SARIF_SCHEMA)
        xmlschema.XMLSchema(JUNIT_XSD).validate(out / "gate.xml")
        outputs[engine] = {p.name: p.read_text().replace(f"engine {engine}", "engine E")
                           for p in out.iterdir()}
    cel, rego = outputs["cel"], outputs["rego"]
    assert cel["gate.txt"] == rego["gate.txt"] and cel["gate.md"] == rego["gate.md"]

    def sarif_results(text: str) -> list[dict]:
        return json.loads(text)["runs"][0]["results"]

    assert sarif_results(cel["gate.sarif"]) == sarif_results(rego["gate.sarif"])

    def junit_cases(text: str) -> list:
        return xmlschema.XMLSchema(JUNIT_XSD).to_dict(text)["testsuite"][0]["testcase"]

    assert junit_cases(cel["gate.xml"]) == junit_cases(rego["gate.xml"])

    def violations(text: str) -> list:
        return json.loads(text)["violations"]

    assert violations(cel["gate.json"]) == violations(rego["gate.json"])
