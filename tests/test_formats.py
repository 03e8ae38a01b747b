"""The report writers: JSON shape, SARIF 2.1.0 validity and levels, text summary, exit codes."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from mlward.cli.main import main
from mlward.findings import (
    Finding,
    Location,
    Report,
    ReportBuilder,
    Severity,
    Skipped,
    TargetKind,
    Verdict,
)
from mlward.formats import render

SCHEMA = json.loads(
    (Path(__file__).parent / "fixtures" / "schemas" / "sarif-schema-2.1.0.json").read_text())


def _report(*findings: Finding, skipped: tuple[Skipped, ...] = ()) -> Report:
    now = datetime.now(timezone.utc)
    builder = ReportBuilder(TargetKind.FILES, started=now, version="0.0-test", root="/project")
    builder.merge(findings, skipped=skipped)
    for f in findings:
        builder.examine(Location(f.location.uri), "pickle")
    return builder.build(finished=now)


def _finding(sev: Severity, path: str = "m.pkl", members: tuple[str, ...] = (),
             rule_id: str = "MW001") -> Finding:
    return Finding(rule_id, sev, Location(path, members, offset=12), f"a {sev} thing",
                   evidence="os.system", remediation="do not load")


@pytest.mark.parametrize("sev,level", [(Severity.CRITICAL, "error"), (Severity.HIGH, "error"),
                                       (Severity.MEDIUM, "warning"), (Severity.LOW, "note"),
                                       (Severity.INFO, "note")])
def test_sarif_levels_and_severity_property(sev: Severity, level: str) -> None:
    doc = json.loads(render(_report(_finding(sev)), "sarif"))
    jsonschema.validate(doc, SCHEMA)
    (result,) = doc["runs"][0]["results"]
    assert result["level"] == level
    assert result["properties"]["severity"] == sev.label


def test_sarif_member_locations_are_valid_and_named() -> None:
    rep = _report(_finding(Severity.HIGH, "outer.tar.gz", ("inner.zip", "data.pkl")),
                  skipped=(Skipped(Location("x.7z"), "py7zr missing", inconclusive=True),))
    doc = json.loads(render(rep, "sarif"))
    jsonschema.validate(doc, SCHEMA)
    (result,) = doc["runs"][0]["results"]
    assert result["locations"][0]["properties"]["members"] == ["inner.zip", "data.pkl"]
    assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == (
        "outer.tar.gz > inner.zip > data.pkl")
    inv = doc["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False
    assert "py7zr missing" in inv["toolExecutionNotifications"][0]["message"]["text"]


def test_json_round_trips_the_data_model() -> None:
    rep = _report(_finding(Severity.HIGH, "a.pkl"), _finding(Severity.LOW, "b.pkl"))
    data = json.loads(render(rep, "json"))
    assert data["summary"]["findings"]["high"] == 1
    assert data["summary"]["verdicts"] == {"a.pkl": "dangerous", "b.pkl": "clean"}
    assert data["findings"][0]["location"] == {"uri": "a.pkl", "offset": 12}
    assert Report.from_dict(data) == rep
    assert data["findings"][0]["evidence"] == "os.system"


def test_inconclusive_never_hides_dangerous() -> None:
    rep = _report(_finding(Severity.CRITICAL, "a.pkl"),
                  skipped=(Skipped(Location("a.pkl"), "truncated", inconclusive=True),
                           Skipped(Location("b.pkl"), "truncated", inconclusive=True)))
    assert rep.verdicts() == {"a.pkl": Verdict.DANGEROUS, "b.pkl": Verdict.INCONCLUSIVE}


@pytest.mark.parametrize("fail_on,findings,inconclusive,code", [
    (Severity.HIGH, [Severity.MEDIUM], False, 0),
    (Severity.HIGH, [Severity.HIGH], False, 1),
    (Severity.MEDIUM, [Severity.MEDIUM], False, 1),
    (Severity.HIGH, [], True, 2),
    (Severity.HIGH, [Severity.CRITICAL], True, 1),
    (Severity.HIGH, [], False, 0),
])
def test_exit_codes(fail_on: Severity, findings: list[Severity], inconclusive: bool,
                    code: int) -> None:
    skipped = (Skipped(Location("z"), "limit", inconclusive=True),) if inconclusive else ()
    rep = _report(*[_finding(s, f"{i}.pkl") for i, s in enumerate(findings)], skipped=skipped)
    assert rep.exit_code(fail_on) == code


def test_text_report_names_verdict_and_result() -> None:
    out = render(_report(_finding(Severity.HIGH, "evil.pkl")), "text")
    assert "evil.pkl" in out and "dangerous" in out
    assert "HIGH" in out and "os.system" in out
    assert "fail" in out


def test_output_file_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.bin").write_bytes(b"\x00\x01 not a model")
    out = tmp_path / "report.sarif"
    args = ["scan", "-q", "--format", "sarif", "-o", str(out), str(tmp_path / "data.bin")]
    assert main(args) == 0
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    assert capsys.readouterr().out == ""


def test_unknown_fail_on_is_usage_error(tmp_path: Path) -> None:
    assert main(["scan", "--fail-on", "severe", str(tmp_path)]) == 2
