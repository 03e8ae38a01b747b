"""Bad input: the BOM is still written, the component says what is missing and why, the run
exits 2 unless --allow-incomplete; hostile content is never executed."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from mlward._internal.bom.card import front_matter, model_card
from mlward._internal.bom.collect import Options, build_inventory
from mlward.settings import Settings

from .conftest import OSV, Run

BOM = ("bom", "--executor", "inline", "--vuln-db", OSV)


def _component(out: str, ref: str) -> dict[str, object]:
    doc = json.loads(out)
    return next(c for c in doc["components"] if c["bom-ref"] == ref)


def _incomplete(component: dict[str, object]) -> list[str]:
    props = component.get("properties", [])
    assert isinstance(props, list)
    return [p["value"] for p in props if p["name"] == "mlward:incomplete"]


def test_malformed_model_card_marks_the_model_incomplete(project: Path, run: Run) -> None:
    (project / "models" / "bert" / "README.md").write_text("---\nlicense: [unclosed\n---\n")
    code, out, err = run(*BOM, project)
    assert code == 2
    bert = _component(out, "model:models/bert")
    (reason,) = _incomplete(bert)
    assert "model card README.md unreadable: front matter is not valid YAML" in reason
    # what is known is still there: the weights, their digests, the architecture
    assert any(p["name"] == "mlward:parameters" and p["value"] == "96"
               for p in bert["properties"])
    assert bert["modelCard"]["modelParameters"]["architectureFamily"] == "bert"
    assert "incomplete" in err
    assert run(*BOM, project, "--allow-incomplete", "-q")[0] == 0


def test_yaml_alias_bomb_in_a_card_is_refused(tmp_path: Path) -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20))
    with pytest.raises(ValueError, match="aliases are not accepted"):
        front_matter(f"---\n{laughs}---\nbody\n")
    (tmp_path / "README.md").write_text(f"---\n{laughs}---\n")
    card, problems = model_card(tmp_path)
    assert problems and "aliases" in problems[0]
    assert card == {"card": "README.md"}


def test_card_limits_and_shapes(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_bytes(b"---\nlicense: mit\n---\n" + b"x" * (2 << 20))
    _, problems = model_card(tmp_path)
    assert "larger than" in problems[0]
    with pytest.raises(ValueError, match="not a mapping"):
        front_matter("---\n- a\n- b\n---\n")
    with pytest.raises(ValueError, match="no closing"):
        front_matter("---\nlicense: mit\n")
    assert front_matter("no front matter")[0] == {}
    (tmp_path / "README.md").write_text("---\n" + "[" * 5000 + "\n---\n")
    _, problems = model_card(tmp_path)
    assert problems  # deep nesting: a problem, not a RecursionError
    (tmp_path / "config.json").write_text("{" * 100_000)
    _, problems = model_card(tmp_path)
    assert any("config.json unreadable" in p for p in problems)


def test_unparsable_lock_file_makes_the_bom_incomplete(project: Path, run: Run) -> None:
    (project / "poetry.lock").write_text("[[package]]\nname = \n")
    code, out, _ = run(*BOM, project)
    assert code == 2
    doc = json.loads(out)
    reasons = [p["value"] for p in doc["metadata"]["properties"]
               if p["name"] == "mlward:incomplete"]
    assert any(r.startswith("poetry.lock") and "not valid TOML" in r for r in reasons)
    assert any(c["bom-ref"] == "pkg:pypi/mlflow@2.0.0" for c in doc["components"])


def test_truncated_model_is_listed_incomplete(project: Path, run: Run) -> None:
    data = (project / "models" / "clf.pt").read_bytes()
    (project / "models" / "broken.pt").write_bytes(data[: len(data) // 2])
    code, out, _ = run(*BOM, project)
    assert code == 2
    broken = _component(out, "model:models/broken.pt")
    (reason,) = _incomplete(broken)
    assert "zip directory unreadable" in reason
    assert broken["hashes"][0]["alg"] == "SHA-256"  # what is known: its digest
    assert _component(out, "model:models/clf.pt")["type"] == "machine-learning-model"


def test_payloads_in_models_are_never_run(project: Path, run: Run, marker: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return os.system, (f"touch {marker}",)

    (project / "models" / "evil.pkl").write_bytes(pickle.dumps(Payload()))
    code, out, _ = run(*BOM, project, "--allow-incomplete")
    assert code == 0
    evil = _component(out, "model:models/evil.pkl")
    props = {p["name"]: p["value"] for p in evil["properties"]
             if p["name"] != "mlward:finding"}
    assert props["mlward:verdict"] == "dangerous"
    findings = [p["value"] for p in evil["properties"] if p["name"] == "mlward:finding"]
    assert any(f.startswith("MW101 critical") for f in findings)
    assert not marker.exists()


def test_unreadable_manifest_is_a_reason_not_a_crash(project: Path) -> None:
    (project / "data" / "train.manifest.json").write_text(
        '{"kind": "mlward.manifest", "schemaVersion": 1, "broken": ')
    settings = Settings(root=str(project), executor="inline", vuln_db=(str(OSV),))
    from mlward._internal.vulndb import source_for

    inv, _, _ = build_inventory([project], settings, Options(vulns=source_for(settings)))
    assert any("train.manifest.json" in r for r in inv.incomplete)
    assert inv.component("model:models/clf.pt") is not None


@pytest.mark.parametrize(("value", "valid"), [
    ("https://huggingface.co/org/model", True), ("pkg:pypi/torch@2.3.0", True),
    ("urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79", True), ("../data/train.csv", True),
    ("https://example.com/a b", False), ("http://x/<script>", False), ("1abc:foo", False),
    ("C:\\models\\m.pt", False), ("https://x/\x07", False),
])
def test_iri_references_are_checked_without_the_slow_grammar(value: str, valid: bool) -> None:
    from mlward._internal.bom.cyclonedx import _iri_reference

    assert _iri_reference(value) is valid
