"""The data model: locations as URIs, stable fingerprints, the schema, SARIF round trips."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

import mlward
from mlward.cli.main import main
from mlward.findings import (
    Fact,
    Finding,
    Location,
    Report,
    ReportBuilder,
    Severity,
    Suppression,
    TargetKind,
)
from mlward.formats import render
from mlward.formats.json import report_schema
from mlward.formats.sarif import location_from_result
from mlward.rules import PICKLE_DANGEROUS

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "src" / "mlward" / "schemas" / \
    "report.schema.json"
SARIF = json.loads((Path(__file__).parent / "fixtures" / "schemas" /
                    "sarif-schema-2.1.0.json").read_text())
EVIL = b"cos\nsystem\n(S'true'\ntR."  # os.system("true") when loaded; never loaded here


def test_the_published_schema_is_the_one_the_model_generates() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == report_schema(), (
        "regenerate src/mlward/schemas/report.schema.json from report_schema()")


LOCATIONS = [
    Location("http://127.0.0.1:5000/api/2.0/mlflow/experiments/list"),
    Location("s3://models-bucket/fraud/v7/model.pt", ("archive/data.pkl",), offset=42),
    Location("gs://data/train.parquet", line=3, column=7),
    Location("az://container/blob.bin", offset=9),
    Location("pkg:pypi/torch@2.1.0"),
    Location("models/clf.pt", ("archive/data.pkl",), offset=12),
    Location("notebooks/eda.ipynb", cell=4, output=1, line=2, column=5),
    Location("src/train.py", line=10, offset=300),
]


def _report(*locations: Location) -> Report:
    now = datetime.now(timezone.utc)
    builder = ReportBuilder(TargetKind.FILES, started=now, version="test", root="/p")
    for i, loc in enumerate(locations):
        builder.add(PICKLE_DANGEROUS.finding(loc, f"finding {i}", evidence=f"ev{i}"))
    return builder.build(finished=now)


def test_sarif_locations_round_trip_exactly() -> None:
    report = _report(*LOCATIONS)
    doc = json.loads(render(report, "sarif"))
    jsonschema.validate(doc, SARIF)
    run = doc["runs"][0]
    back = {location_from_result(r["locations"][0]) for r in run["results"]}
    assert back == set(LOCATIONS)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in run["results"]}
    assert "http://127.0.0.1:5000/api/2.0/mlflow/experiments/list" in uris  # not http:/...
    assert "s3://models-bucket/fraud/v7/model.pt" in uris
    local = next(r for r in run["results"]
                 if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                 == "models/clf.pt")
    assert local["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] == "ROOT"
    assert run["originalUriBaseIds"]["ROOT"]["uri"] == "file:///p/"
    assert all(len(r["partialFingerprints"]["mlward/v1"]) == 32 for r in run["results"])


def test_round_trip_keeps_every_field() -> None:
    now = datetime.now(timezone.utc)
    builder = ReportBuilder(TargetKind.SERVER, started=now, version="1", inputs=["http://h"])
    builder.add(Finding("MW101", Severity.HIGH, LOCATIONS[0], "m", "e", "fix", "CWE-1",
                        {"k": (1, 2), "n": {"x": None}}))
    builder.fact(Fact(LOCATIONS[1], "model", {"tensors": 3, "shapes": [(2, 2)]}))
    builder.skip(LOCATIONS[2], "why", inconclusive=True)
    builder.examine(LOCATIONS[3], "fmt")
    builder.stats["files"] = 1

    def waive(findings: list[Finding]) -> list[Finding]:
        return [f._replace(suppression=Suppression("waiver", "ok", "me", "2099-01-01", "here"),
                           baseline="new") for f in findings]

    report = builder.build(finished=now, triage=waive)
    assert Report.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    assert report.exit_code(Severity.INFO) == 2  # waived: only the inconclusive item counts


def test_other_schema_versions_are_refused() -> None:
    data = _report(LOCATIONS[5]).to_dict()
    data["schema_version"] = "1.0"
    with pytest.raises(ValueError, match="schema version"):
        Report.from_dict(data)


def _tree(root: Path) -> None:
    (root / "models").mkdir(parents=True)
    (root / "models" / "evil.pkl").write_bytes(EVIL)
    (root / "src").mkdir()
    (root / "src" / "load.py").write_text("import pickle\nm = pickle.load(open('m', 'rb'))\n")


def test_fingerprints_survive_moving_the_tree(tmp_path: Path) -> None:
    first = tmp_path / "one" / "project"
    _tree(first)
    before = mlward.scan([first])
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(first, moved)
    after = mlward.scan([moved])
    assert before.root != after.root
    assert [(f.rule_id, f.location.uri, f.fingerprint) for f in before.findings] == \
        [(f.rule_id, f.location.uri, f.fingerprint) for f in after.findings]
    assert {f.rule_id for f in after.findings} >= {"MW101", "MW301"}


def test_fingerprints_survive_line_shifts(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = {f.rule_id: f for f in mlward.scan([tmp_path]).findings}
    code = tmp_path / "src" / "load.py"
    code.write_text("# a comment\n\n" + code.read_text())
    after = {f.rule_id: f for f in mlward.scan([tmp_path]).findings}
    assert after["MW301"].location.line == before["MW301"].location.line + 2
    assert after["MW301"].fingerprint == before["MW301"].fingerprint


def test_fingerprints_are_the_sha256_of_their_key_whatever_module_computes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fingerprints are kept in baselines and waivers: CPython's own SHA-256 module, used to
    spare a scan OpenSSL's start, must give what hashlib gives, and so must the fallback."""
    import hashlib

    from mlward import findings

    twice = [PICKLE_DANGEROUS.finding(Location("file:m.pkl"), "os.system", evidence=e)
             for e in ("os.system", "os.system", "\udcff é")]
    expected = [hashlib.sha256(f"{findings.fingerprint_key(f)}\x1d{n}".encode(
        "utf-8", "surrogatepass")).hexdigest()[:32]
        for f, n in zip(twice, (0, 1, 0), strict=True)]
    assert [f.fingerprint for f in findings.fingerprint(twice)] == expected
    assert findings.load_sha256() is not hashlib.sha256  # the point of it, on CPython
    monkeypatch.setattr(findings, "_sha256", None)
    monkeypatch.setitem(sys.modules, "_sha2", None)  # neither builtin: hashlib's
    monkeypatch.setitem(sys.modules, "_sha256", None)
    assert findings.load_sha256() is hashlib.sha256
    assert [f.fingerprint for f in findings.fingerprint(twice)] == expected


def test_facts_are_reported_beside_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w.pkl").write_bytes(pickle.dumps({"a": 1}))
    monkeypatch.chdir(tmp_path)
    assert main(["scan", "-q", "-f", "json", "w.pkl"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"].startswith("2.") and data["kind"] == "files"
    assert data["root"] == str(tmp_path)
    assert data["examined"] == [{"location": {"uri": "w.pkl"}, "format": "pickle"}]
