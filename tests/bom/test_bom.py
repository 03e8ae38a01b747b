"""``mlward bom``: the inventory of a project built in code, asserted field by field, and its
CycloneDX (1.6 and 1.7) and SPDX 3.0.1 renderings, each validated."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from mlward._internal.bom import cyclonedx, spdx
from mlward._internal.bom.collect import Options, build_inventory
from mlward._internal.bom.inventory import Inventory
from mlward._internal.bom.read import parse
from mlward._internal.vulndb import source_for
from mlward.settings import Settings

from .conftest import FIXTURES
from .project import NUMPY_HASH

SPDX_SCHEMA = json.loads((FIXTURES / "schemas" / "spdx-3.0.1.schema.json").read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def inventory(project: Path, settings: Settings) -> Inventory:
    inv, _, _ = build_inventory([project], settings, Options(vulns=source_for(settings)))
    return inv


def by_ref(inventory: Inventory, ref: str) -> Any:
    c = inventory.component(ref)
    assert c is not None, f"{ref} not in {[x.ref for x in inventory.components]}"
    return c


def test_models_carry_digests_tensors_card_and_verdict(project: Path,
                                                        inventory: Inventory) -> None:
    clf = by_ref(inventory, "model:models/clf.pt")
    assert clf.kind == "model" and clf.name == "clf.pt"
    assert [f.path for f in clf.files] == ["models/clf.pt"]
    assert clf.files[0].digests["sha256"] == sha256(project / "models/clf.pt")
    assert clf.properties["format"] == "pytorch-zip"
    assert clf.properties["framework"] == "pytorch"
    assert clf.properties["parameters"] == 16  # 4x3 weight + 4 bias
    assert clf.properties["tensors"] == 2
    assert clf.properties["dtypes"] == ["float32"]
    assert clf.properties["shapes"] == {"linear.weight": [4, 3], "linear.bias": [4]}
    assert clf.verdict == "clean"
    assert clf.purl == f"pkg:generic/clf.pt?checksum=sha256:{sha256(project / 'models/clf.pt')}"
    # lineage: the statement beside it, its subjects match, its datasets and parameters
    assert clf.properties["lineage"] == "models/clf.pt.lineage.json"
    assert clf.properties["lineage_match"] is True
    assert clf.card["datasets"] == ["data:data/train"]
    assert clf.card["hyperparameters"] == {"lr": 0.01, "epochs": 3}

    bert = by_ref(inventory, "model:models/bert")
    assert {f.path for f in bert.files} == {"models/bert/model.safetensors",
                                            "models/bert/config.json", "models/bert/README.md"}
    assert bert.properties["parameters"] == 10 * 8 + 8 * 2
    assert bert.properties["formats"] == ["safetensors"]
    assert bert.license == "Apache-2.0"
    assert bert.description == "A tiny sentiment classifier for the BOM tests."
    card = bert.card
    assert card["task"] == "text-classification"
    assert card["architecture"] == "BertForSequenceClassification"
    assert card["architecture_family"] == "bert"
    assert card["datasets"] == ["imdb"]
    assert card["metrics"] == [{"type": "accuracy", "value": "0.91", "slice": "imdb"}]
    assert card["inputs"] == ["text"] and card["outputs"] == ["label"]
    assert card["considerations"]["technicalLimitations"] == ["English only; short texts."]
    assert card["considerations"]["useCases"] == ["Classify short English movie reviews."]
    assert card["considerations"]["risks"] == ["May reflect biases of its training data."]
    assert card["co2_eq_emissions"]["emissions"] == "12.5"


def test_datasets_libraries_services_and_sources(project: Path, inventory: Inventory) -> None:
    data = by_ref(inventory, "data:data/train")
    assert data.kind == "dataset"
    assert {f.path: f.manifest for f in data.files} == {"data/train/train.csv": "match",
                                                        "data/train/extra.jsonl": "match"}
    train = next(f for f in data.files if f.path == "data/train/train.csv")
    assert train.digests["sha256"] == sha256(project / "data/train/train.csv")
    assert data.properties["record_count"] == 3  # 2 CSV rows (header left out) + 1 JSON line
    assert data.properties["file_count"] == 2
    assert data.properties["sensitive_data"] == ["email"]
    assert data.properties["classification"] == "personal data"
    # the manifest file itself is provenance, not a dataset
    assert not [c for c in inventory.components if "manifest" in c.ref]

    mlflow = by_ref(inventory, "pkg:pypi/mlflow@2.0.0")
    assert mlflow.kind == "library" and mlflow.version == "2.0.0"
    assert mlflow.purl == "pkg:pypi/mlflow@2.0.0"
    assert mlflow.properties["declared_in"] == ["requirements.txt (line 1)"]
    ids = {v.id for v in mlflow.vulnerabilities}
    assert "GHSA-554w-xh4j-8w64" in ids  # tests/fixtures/osv/pypa/mlflow/PYSEC-2023-253.yaml
    numpy = by_ref(inventory, "pkg:pypi/numpy@1.26.4")
    assert numpy.vulnerabilities == ()
    assert numpy.properties["distribution_hashes"] == [f"sha256:{NUMPY_HASH}"]

    service = by_ref(inventory, "service:mlflow@scripts/serve.sh")
    assert service.name == "MLflow" and service.properties["exposed"] is True
    assert {f[0] for f in service.findings} == {"MW610", "MW611"}

    unpinned = by_ref(inventory, "hub:huggingface/google/bert-tiny@unpinned")
    assert unpinned.kind == "model-source" and unpinned.properties["pinned"] is False
    assert unpinned.purl == "pkg:huggingface/google/bert-tiny"
    assert unpinned.location == "https://huggingface.co/google/bert-tiny"
    assert [f[0] for f in unpinned.findings] == ["MW751"]
    commit = "0123456789abcdef0123456789abcdef01234567"
    pinned = by_ref(inventory, f"hub:huggingface/org/pinned@{commit}")
    assert pinned.version == commit and pinned.findings == ()
    openai = by_ref(inventory, "ai-service:OpenAI")
    assert openai.properties["used_in"] == ["train.py:1"]
    assert openai.properties["endpoint"] == "https://api.openai.com"

    (workflow,) = inventory.workflows
    assert workflow.inputs == ("data:data/train",)
    assert workflow.outputs == ("model:models/clf.pt",)
    assert workflow.run_id == "run-1"
    assert workflow.parameters == {"lr": 0.01, "epochs": 3}
    assert not inventory.is_incomplete, inventory.incomplete


def _cdx_component(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    return next(c for c in [*doc["components"], *doc.get("services", [])]
                if c["bom-ref"] == ref)


def _props(item: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in item.get("properties", []):
        out.setdefault(p["name"], []).append(p["value"])
    return out


@pytest.mark.parametrize("spec", ["1.6", "1.7"])
def test_cyclonedx_document_field_by_field(project: Path, inventory: Inventory,
                                            spec: str) -> None:
    text = cyclonedx.render(inventory, spec, "report.json")
    version = SchemaVersion.V1_6 if spec == "1.6" else SchemaVersion.V1_7
    assert JsonStrictValidator(version).validate_str(text) is None
    doc = json.loads(text)
    assert doc["specVersion"] == spec and doc["serialNumber"] == inventory.serial

    clf = _cdx_component(doc, "model:models/clf.pt")
    assert clf["type"] == "machine-learning-model"
    assert clf["hashes"] == [{"alg": "SHA-256", "content": sha256(project / "models/clf.pt")}]
    props = _props(clf)
    assert props["mlward:parameters"] == ["16"]
    assert props["mlward:framework"] == ["pytorch"]
    assert props["mlward:verdict"] == ["clean"]
    assert {"type": "static-analysis-report", "url": "report.json",
            "comment": "mlward scan report"} in clf["externalReferences"]
    params = clf["modelCard"]["modelParameters"]
    assert params["datasets"] == [{"ref": "data:data/train"}]
    card_props = {p["name"]: p["value"] for p in clf["modelCard"]["properties"]}
    assert card_props["mlward:hyperparameter:lr"] == "0.01"

    bert = _cdx_component(doc, "model:models/bert")
    assert bert["licenses"][0]["license"]["id"] == "Apache-2.0"
    files = {c["name"]: c for c in bert["components"]}
    weights = files["models/bert/model.safetensors"]
    assert weights["type"] == "file"
    assert weights["hashes"][0]["content"] == sha256(project / "models/bert/model.safetensors")
    card = bert["modelCard"]
    assert card["modelParameters"]["task"] == "text-classification"
    assert card["modelParameters"]["architectureFamily"] == "bert"
    assert card["modelParameters"]["modelArchitecture"] == "BertForSequenceClassification"
    assert card["modelParameters"]["datasets"] == [{"type": "dataset", "name": "imdb"}]
    assert card["modelParameters"]["inputs"] == [{"format": "text"}]
    assert card["quantitativeAnalysis"]["performanceMetrics"] == [
        {"type": "accuracy", "value": "0.91", "slice": "imdb"}]
    considerations = card["considerations"]
    assert considerations["technicalLimitations"] == ["English only; short texts."]
    assert considerations["ethicalConsiderations"] == [
        {"name": "May reflect biases of its training data."}]
    assert {"type": "model-card", "url": "models/bert/README.md"} in bert["externalReferences"]

    data = _cdx_component(doc, "data:data/train")
    assert data["type"] == "data"
    (entry,) = data["data"]
    assert entry["type"] == "dataset" and entry["sensitiveData"] == ["email"]
    assert entry["classification"] == "personal data"
    contents = {p["name"]: p["value"] for p in entry["contents"]["properties"]}
    assert contents["mlward:record_count"] == "3"

    lib = _cdx_component(doc, "pkg:pypi/mlflow@2.0.0")
    assert lib["type"] == "library" and lib["purl"] == "pkg:pypi/mlflow@2.0.0"
    assert _cdx_component(doc, "pkg:pypi/numpy@1.26.4")["hashes"] == [
        {"alg": "SHA-256", "content": NUMPY_HASH}]
    affected = [v for v in doc["vulnerabilities"]
                if v["affects"][0]["ref"] == "pkg:pypi/mlflow@2.0.0"]
    assert "GHSA-554w-xh4j-8w64" in {v["id"] for v in affected}

    service = _cdx_component(doc, "service:mlflow@scripts/serve.sh")
    assert service["name"] == "MLflow"
    assert "MW610 high: mlflow server listens on 0.0.0.0 without an auth app" in _props(
        service)["mlward:finding"]
    openai = _cdx_component(doc, "ai-service:OpenAI")
    assert openai["endpoints"] == ["https://api.openai.com"]
    assert openai["x-trust-boundary"] is True

    (workflow,) = doc["formulation"][0]["workflows"]
    assert workflow["inputs"] == [{"resource": {"ref": "data:data/train"}}]
    assert workflow["outputs"] == [{"resource": {"ref": "model:models/clf.pt"}}]
    assert workflow["uid"] == "run-1"


def test_spdx_document_field_by_field(project: Path, inventory: Inventory) -> None:
    text = spdx.render(inventory)
    doc = json.loads(text)
    jsonschema.validate(doc, SPDX_SCHEMA, cls=jsonschema.Draft202012Validator)
    graph = doc["@graph"]
    ids = {o.get("spdxId"): o for o in graph}

    def element(ref: str) -> dict[str, Any]:
        return next(o for o in graph if any(
            e.get("extension_cdxPropName") == "mlward:ref" and e["extension_cdxPropValue"] == ref
            for x in o.get("extension", []) for e in x.get("extension_cdxProperty", [])))

    def related(source: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        return [ids[t] for o in graph if o["type"] == "Relationship"
                and o["from"] == source["spdxId"] and o["relationshipType"] == kind
                for t in o["to"] if t in ids]

    clf = element("model:models/clf.pt")
    assert clf["type"] == "ai_AIPackage" and clf["software_primaryPurpose"] == "model"
    assert clf["verifiedUsing"] == [{"type": "Hash", "algorithm": "sha256",
                                     "hashValue": sha256(project / "models/clf.pt")}]
    assert {e["key"]: e["value"] for e in clf["ai_hyperparameter"]} == {"epochs": "3",
                                                                       "lr": "0.01"}
    assert clf["ai_useSensitivePersonalInformation"] == "yes"
    assert [d["name"] for d in related(clf, "trainedOn")] == ["train"]

    bert = element("model:models/bert")
    assert bert["ai_typeOfModel"] == ["BertForSequenceClassification", "bert"]
    assert bert["ai_metric"] == [{"type": "DictionaryEntry", "key": "accuracy", "value": "0.91"}]
    assert bert["ai_limitation"] == "English only; short texts."
    (license_,) = related(bert, "hasDeclaredLicense")
    assert license_["simplelicensing_licenseExpression"] == "Apache-2.0"
    files = {f["name"]: f for f in related(bert, "contains")}
    assert files["models/bert/model.safetensors"]["verifiedUsing"][0]["hashValue"] == \
        sha256(project / "models/bert/model.safetensors")

    data = element("data:data/train")
    assert data["type"] == "dataset_DatasetPackage"
    assert data["dataset_datasetType"] == ["structured"]
    assert data["dataset_hasSensitivePersonalInformation"] == "yes"

    lib = element("pkg:pypi/mlflow@2.0.0")
    assert lib["software_packageUrl"] == "pkg:pypi/mlflow@2.0.0"
    vulns = {v["name"] for v in related(lib, "hasAssociatedVulnerability")}
    assert "GHSA-554w-xh4j-8w64" in vulns

    assert element("pkg:pypi/numpy@1.26.4")["verifiedUsing"] == [
        {"type": "Hash", "algorithm": "sha256", "hashValue": NUMPY_HASH}]
    (build,) = [o for o in graph if o["type"] == "build_Build"]
    assert build["build_buildId"] == "run-1"
    assert [o["name"] for o in related(build, "hasInput")] == ["train"]
    assert [o["name"] for o in related(build, "hasOutput")] == ["clf.pt"]
    assert element("hub:huggingface/google/bert-tiny@unpinned")["software_downloadLocation"] \
        == "https://huggingface.co/google/bert-tiny"


def _view(inv: Inventory) -> dict[str, Any]:
    """What verify and diff compare, per component."""
    return {c.ref: (c.kind, c.name, c.version, c.license, c.verdict, c.location,
                    sorted((f.path, f.digests.get("sha256"), f.manifest) for f in c.files),
                    sorted(v.id for v in c.vulnerabilities), sorted(c.findings),
                    tuple(c.card.get("datasets", ())) if c.kind == "model" else ())
            for c in inv.components}


def test_both_formats_read_back_to_the_same_inventory(inventory: Inventory) -> None:
    cdx = parse(cyclonedx.render(inventory, "1.6").encode(), "cdx")
    spd = parse(spdx.render(inventory).encode(), "spdx")
    own = parse(inventory.to_json().encode(), "inventory")
    assert own == inventory
    assert _view(cdx) == _view(inventory)
    assert _view(spd) == _view(inventory)
    assert [(w.inputs, w.outputs, w.run_id) for w in cdx.workflows] == \
        [(w.inputs, w.outputs, w.run_id) for w in spd.workflows] == [
            (("data:data/train",), ("model:models/clf.pt",), "run-1")]
    assert cdx.serial == spd.serial == inventory.serial


def test_inventory_round_trips_and_digest_is_stable(inventory: Inventory) -> None:
    again = Inventory.from_dict(json.loads(inventory.to_json()))
    assert again == inventory
    assert again.digest() == inventory.digest()


def test_a_manifest_of_several_folders_covers_each(tmp_path: Path) -> None:
    from mlward._internal.provenance import manifest

    root = tmp_path / "p"
    for name in ("a", "b"):
        (root / "data" / name).mkdir(parents=True)
        (root / "data" / name / "rows.csv").write_text(f"x\n{name}\n")
    m = manifest.create([root / "data" / "a", root / "data" / "b"],
                        manifest_file=root / "data.manifest.json")
    m.write(root / "data.manifest.json")
    (root / "data" / "b" / "rows.csv").write_text("x\nchanged\n")
    inv, _, _ = build_inventory([root], Settings(root=str(root), executor="inline"))
    assert {c.ref: [f.manifest for f in c.files] for c in inv.components} == {
        "data:data/a": ["match"], "data:data/b": ["mismatch"]}


def test_the_strict_validator_refuses_what_the_librarys_refuses(inventory: Inventory) -> None:
    doc = json.loads(cyclonedx.render(inventory, "1.6"))
    library = JsonStrictValidator(SchemaVersion.V1_6)
    ours = cyclonedx.strict_validator("1.6")
    assert list(ours.iter_errors(doc)) == []
    duplicated = {**doc, "components": [*doc["components"], doc["components"][0]]}
    unknown = {**doc, "components": [{**doc["components"][0], "x-mlward": 1},
                                     *doc["components"][1:]]}
    vulnerability = doc["vulnerabilities"][-1]  # deep in references, after many lookups
    severity = {**doc, "vulnerabilities": [*doc["vulnerabilities"][:-1], {
        **vulnerability, "ratings": [{**vulnerability["ratings"][0], "severity": "dire"}]}]}
    for bad in (duplicated, unknown, severity):
        assert library.validate_str(json.dumps(bad)) is not None
        assert next(iter(ours.iter_errors(bad)), None) is not None


def test_a_dataset_of_thousands_of_files_renders() -> None:
    from mlward._internal.bom.inventory import Component, FileRecord

    files = tuple(FileRecord(f"d/{i}.csv", 1, {"sha256": f"{i:064x}"}) for i in range(3000))
    inv = Inventory(name="p", root="/p", created="2026-01-01T00:00:00Z", tool_version="0",
                    components=(Component(ref="data:d", kind="dataset", name="d",
                                          location="d", files=files),))
    doc = json.loads(cyclonedx.render(inv, "1.7"))
    assert len(doc["components"][0]["components"]) == 3000


def test_the_validator_defers_rfc3987_syntax_without_losing_jsonschemas_iri_checks() -> None:
    # A fresh interpreter: this one imported jsonschema (and rfc3987_syntax) long ago.
    import subprocess
    import sys

    code = """if True:
        import sys
        from mlward._internal.bom import cyclonedx
        cyclonedx.strict_validator("1.6")
        assert "rfc3987_syntax" not in sys.modules and "lark" not in sys.modules
        from jsonschema import FormatChecker
        checker = FormatChecker()
        assert not checker.conforms("a b", "iri") and checker.conforms("http://x/y", "iri")
        assert "lark" in sys.modules
    """
    src = str(Path(cyclonedx.__file__).parents[3])
    done = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": src},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
