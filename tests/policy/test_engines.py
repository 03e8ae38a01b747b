"""CEL and Rego are two spellings of one policy: over any input document they must convict
the same items. Documents are generated (hypothesis) within the input schema, with the
corners that differ between the languages: nulls, empty lists, missing git branches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlward._internal.policy.document import InputDocument, input_schema, sample_item
from mlward._internal.policy.engine import make_engine
from mlward._internal.policy.model import load_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "gate-policy.yaml"
SEVERITIES = ["info", "low", "medium", "high", "critical"]


@st.composite
def findings(draw: Any) -> dict[str, Any]:
    item = sample_item("findings")
    rank = draw(st.integers(0, 4))
    item.update(rule=draw(st.sampled_from(["MW101", "MW002", "MW401", "MW501"])),
                severity=SEVERITIES[rank], rank=rank, path=draw(st.sampled_from(
                    ["models/a.pkl", "production/b.pkl", "train.py"])))
    return item


@st.composite
def models(draw: Any) -> dict[str, Any]:
    item = sample_item("models")
    family = draw(st.sampled_from(["pickle", "pytorch", "safetensors", "onnx", "gguf"]))
    status = draw(st.sampled_from(["valid", "invalid", "unsigned", "unchecked"]))
    inputs = draw(st.lists(st.builds(lambda ok: {"name": "d", "ok": ok, "detail": ""},
                                     st.booleans()), max_size=2))
    item.update(path=draw(st.sampled_from(["production/m.bin", "models/m.bin", "m.bin"])),
                family=family, format=family, pickle=family in ("pickle", "pytorch"),
                signature={"status": status, "trusted": status == "valid", "key": None,
                           "detail": ""},
                lineage={"status": draw(st.sampled_from(["verified", "broken", "missing"])),
                         "statement": None, "inputs": inputs, "detail": ""},
                license=draw(st.sampled_from([None, "mit"])))
    return item


vulnerabilities = st.builds(
    lambda cvss, fixed, age: {"id": "X", "ids": ["X"], "severity": None, "cvss": cvss,
                              "fixed": fixed, "fixable": bool(fixed),
                              "published": None if age is None else "2020-01-01",
                              "age_days": age},
    st.one_of(st.none(), st.floats(0, 10).map(lambda x: round(x, 1))),
    st.sampled_from([[], ["1.1"]]), st.one_of(st.none(), st.integers(0, 30)))


@st.composite
def documents(draw: Any) -> dict[str, Any]:
    doc = sample_item(None)
    doc["project"]["git"]["branch"] = draw(st.sampled_from([None, "main", "dev", "master"]))
    doc["findings"] = draw(st.lists(findings(), max_size=6))
    doc["models"] = draw(st.lists(models(), max_size=5))
    doc["notebooks"] = [{"path": "n.ipynb", "cells": 1, "outputs": n}
                        for n in draw(st.lists(st.integers(0, 2), max_size=3))]
    deps = []
    for pinned, vulns in draw(st.lists(st.tuples(st.booleans(),
                                                 st.lists(vulnerabilities, max_size=3)),
                                       max_size=4)):
        dep = sample_item("dependencies")
        dep.update(name="p", version="1.0" if pinned else None, pinned=pinned,
                   vulnerabilities=vulns)
        deps.append(dep)
    doc["dependencies"] = deps
    return doc


POLICIES = {name: load_policy([spec], base=Path()) for name, spec in
            (("baseline", "baseline"), ("strict", "strict"), ("examples", str(EXAMPLES)))}
ENGINES = {name: (make_engine("cel", p), make_engine("rego", p)) for name, p in POLICIES.items()}


@pytest.mark.parametrize("name", list(POLICIES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_cel_and_rego_convict_the_same_items(name: str, doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, input_schema())
    doc["params"] = dict(POLICIES[name].params)
    cel, rego = ENGINES[name]
    a, b = cel.evaluate(InputDocument(doc)), rego.evaluate(InputDocument(doc))
    assert a.errors == {} and b.errors == {}
    assert a.hits == b.hits
    # Judging each distinct projection once gives every item the verdict it gets alone.
    whole = InputDocument(doc)
    assert cel.evaluate(whole, project=False).hits == a.hits
    assert rego.evaluate(whole, project=False).hits == b.hits


@pytest.mark.parametrize(("text", "variable", "fields"), [
    ("finding.rank >= 4 && finding.rule == 'x'", "finding", {"rank", "rule"}),
    ('model.path.startsWith("finding.x") && has(model.license)', "model", {"path", "license"}),
    ("size(model) > 3", "model", None),
    ("model.all(k, k == 'x')", "model", None),
    ("object.keys(model)", "model", None),
    ("count(dependency.vulnerabilities) > 0\nsome v in dependency.vulnerabilities",
     "dependency", {"vulnerabilities"}),
])
def test_the_fields_a_condition_reads(text: str, variable: str,
                                      fields: set[str] | None) -> None:
    from mlward._internal.policy.engine import fields_read

    assert fields_read(text, variable) == (None if fields is None else frozenset(fields))
