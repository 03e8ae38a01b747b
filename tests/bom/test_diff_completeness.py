"""``bom diff`` rules on inventories built in code, and the completeness score."""

from __future__ import annotations

from mlward._internal.bom.completeness import FIELDS, completeness
from mlward._internal.bom.diff import diff
from mlward._internal.bom.inventory import Component, FileRecord, Inventory, Vulnerability


def inventory(*components: Component) -> Inventory:
    return Inventory(name="p", root="/p", created="2026-01-01T00:00:00Z", tool_version="0",
                     components=components)


MODEL = Component(ref="model:m.pt", kind="model", name="m.pt", location="m.pt",
                  license="MIT", verdict="clean",
                  files=(FileRecord("m.pt", 3, {"sha256": "a" * 64}),))
LIB = Component(ref="pkg:pypi/x@1.0", kind="library", name="x", location="req.txt",
                version="1.0")


def rules(old: Inventory, new: Inventory) -> list[tuple[str, str]]:
    return sorted((f.rule_id, f.location.uri) for f in diff(old, new))


def test_no_change_no_finding() -> None:
    assert diff(inventory(MODEL, LIB), inventory(MODEL, LIB)) == []


def test_each_kind_of_change_has_its_rule() -> None:
    vuln = Vulnerability("GHSA-xxxx", severity="critical", summary="bad")
    new = inventory(
        MODEL.with_(files=(FileRecord("m.pt", 3, {"sha256": "b" * 64}),), license="GPL-3.0",
                    verdict="dangerous"),
        LIB.with_(ref="pkg:pypi/x@2.0", version="2.0", vulnerabilities=(vuln,)),
        Component(ref="data:d", kind="dataset", name="d", location="d"))
    found = {f.rule_id: f for f in diff(inventory(MODEL, LIB), new)}
    assert set(found) == {"MW760", "MW762", "MW764", "MW765", "MW766", "MW763"}
    assert found["MW765"].severity.label == "high"  # the verdict got worse
    assert found["MW763"].severity.label == "critical"
    assert found["MW762"].location.uri == "m.pt"
    assert rules(new, inventory(MODEL)).count(("MW761", "d")) == 1


def _score(c: Component, inv: Inventory) -> int:
    return completeness(c, inv).score


def test_completeness_counts_owasp_and_provenance_fields() -> None:
    names = {f.name for f in FIELDS}
    owasp = {"name", "type", "purl", "description", "licenses", "primaryPurpose", "suppliedBy",
             "downloadLocation", "typeOfModel", "hyperparameter", "limitation",
             "safetyRiskAssessment", "energyConsumption", "modelExplainability",
             "energyQuantity", "energyUnit", "informationAboutTraining",
             "informationAboutApplication", "metric", "metricDecisionThreshold",
             "modelDataPreprocessing", "useSensitivePersonalInformation", "standardCompliance",
             "domain", "autonomyType"}
    assert owasp <= names
    bare = MODEL.with_(license=None, verdict=None)
    result = completeness(bare, inventory(bare))
    missing = dict(result.missing)
    assert "licenses" in missing and "license:" in missing["licenses"]
    assert "lineage" in missing and "mlward lineage record" in missing["lineage"]
    richer = MODEL.with_(
        description="d", card={"task": "text-classification", "architecture": "Bert",
                               "considerations": {"technicalLimitations": ["x"]},
                               "metrics": [{"type": "accuracy", "value": "1"}]},
        properties={"formats": ["safetensors"], "parameters": 10, "lineage_match": True,
                    "signature": "valid"})
    assert _score(richer, inventory(richer)) > _score(bare, inventory(bare))
    assert 0 <= _score(bare, inventory(bare)) < _score(richer, inventory(richer)) <= 100
