"""How complete a model's record is: which model-card and provenance fields are filled.

The model-card fields and their points are those of the OWASP AIBOM Generator's completeness
scoring (its ``field_registry.json``: critical fields 4 points, important 3 or 2, supplementary
1), restricted to the fields that describe one model (the document fields ``bomFormat``,
``specVersion``, ``serialNumber`` and ``version`` are always written by mlward). mlward adds
the provenance fields a security review needs (3 points each): digests, format and
framework, parameter count, training datasets, lineage, signature, manifest, scan verdict and
ledger record. The score is the points filled over the points possible, 0 to 100.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlward._internal.bom.inventory import Component, Inventory


@dataclass(frozen=True)
class Field:
    name: str
    points: int
    source: str
    """``owasp`` (the AIBOM Generator's list) or ``mlward`` (provenance)."""
    filled: Callable[[Component, Inventory], bool]
    hint: str


@dataclass(frozen=True)
class Completeness:
    score: int
    filled: tuple[str, ...]
    missing: tuple[tuple[str, str], ...]
    """(field, how to fill it)."""


def _considered(key: str) -> Callable[[Component, Inventory], bool]:
    return lambda c, _: bool(c.card.get("considerations", {}).get(key))


def _card(*keys: str) -> Callable[[Component, Inventory], bool]:
    return lambda c, _: any(c.card.get(k) for k in keys)


def _prop(key: str) -> Callable[[Component, Inventory], bool]:
    return lambda c, _: c.properties.get(key) not in (None, "", (), [], {})


def _sensitive_known(c: Component, inv: Inventory) -> bool:
    datasets = [inv.component(r) for r in c.card.get("datasets", ())]
    return any(d is not None and "sensitive_data" in d.properties for d in datasets)


def _files(test: Callable[[Component], bool]) -> Callable[[Component, Inventory], bool]:
    return lambda c, _: bool(c.files) and test(c)


CARD = "add it to the model card (README.md front matter or its sections)"
FIELDS: tuple[Field, ...] = (
    Field("name", 4, "owasp", lambda c, _: bool(c.name), "name the model file or folder"),
    Field("type", 3, "owasp", lambda c, _: c.kind == "model", "always set"),
    Field("purl", 3, "owasp", lambda c, _: bool(c.purl),
          "a single-file model gets a checksum purl; publish a folder to a hub for one"),
    Field("description", 3, "owasp", lambda c, _: bool(c.description),
          "write a first paragraph in the model card (README.md)"),
    Field("licenses", 3, "owasp", lambda c, _: bool(c.license),
          "set `license:` in the model card front matter"),
    Field("primaryPurpose", 4, "owasp", _card("task"),
          "set `pipeline_tag:` (the task) in the model card front matter"),
    Field("suppliedBy", 4, "owasp", lambda c, _: bool(c.supplier),
          "name the publisher (`model_name`/organisation) in the model card"),
    Field("downloadLocation", 4, "owasp",
          lambda c, _: c.location.startswith(("http://", "https://")),
          "publish the model (a hub or artifact store) and record its URL"),
    Field("typeOfModel", 2, "owasp",
          lambda c, _: bool(c.card.get("architecture") or c.card.get("architecture_family")
                            or c.properties.get("architecture")),
          "keep config.json (`architectures`, `model_type`) beside the weights"),
    Field("hyperparameter", 2, "owasp", _card("hyperparameters"),
          "record the training run: `mlward lineage record --param KEY=VALUE`"),
    Field("limitation", 2, "owasp", _considered("technicalLimitations"),
          f"add a 'Limitations' section: {CARD}"),
    Field("safetyRiskAssessment", 2, "owasp", _considered("risks"),
          f"add a 'Risks' section: {CARD}"),
    Field("energyConsumption", 2, "owasp", _card("co2_eq_emissions"),
          "set `co2_eq_emissions:` in the model card front matter"),
    Field("modelExplainability", 1, "owasp", _considered("explainability"),
          f"add an 'Explainability' section: {CARD}"),
    Field("energyQuantity", 1, "owasp",
          lambda c, _: bool(c.card.get("co2_eq_emissions", {}).get("emissions")),
          "set `co2_eq_emissions: {emissions: ...}` in the model card front matter"),
    Field("energyUnit", 1, "owasp",
          lambda c, _: bool(c.card.get("co2_eq_emissions", {}).get("emissions")),
          "the card's `co2_eq_emissions` are in grams of CO2eq once set"),
    Field("informationAboutTraining", 1, "owasp",
          lambda c, inv: bool(c.card.get("considerations", {}).get("training")) or any(
              c.ref in w.outputs for w in inv.workflows),
          "record the training run (`mlward lineage record`) or add a 'Training' section"),
    Field("informationAboutApplication", 1, "owasp", _considered("useCases"),
          f"add an 'Intended uses' section: {CARD}"),
    Field("metric", 1, "owasp", _card("metrics"),
          "add `model-index` results (metrics) to the model card front matter"),
    Field("metricDecisionThreshold", 1, "owasp",
          lambda c, _: any("threshold" in str(m.get("type", "")).lower()
                           for m in c.card.get("metrics", ())),
          "report the decision threshold as a metric in `model-index`"),
    Field("modelDataPreprocessing", 1, "owasp", _considered("preprocessing"),
          f"add a 'Preprocessing' section: {CARD}"),
    Field("useSensitivePersonalInformation", 1, "owasp", _sensitive_known,
          "record the training data (`mlward lineage record --data`) so it is checked"),
    Field("standardCompliance", 1, "owasp", _card("standard_compliance"),
          "name the standards the model complies with in the model card"),
    Field("domain", 1, "owasp", _card("tags", "domain"),
          "set `tags:` (the domain) in the model card front matter"),
    Field("autonomyType", 1, "owasp", _card("autonomy"),
          "say whether a human reviews the model's decisions, in the model card"),
    Field("digests", 3, "mlward", _files(lambda c: all(f.digests for f in c.files)),
          "make every file readable so it can be hashed"),
    Field("format", 3, "mlward", _prop("formats"),
          "a format mlward recognises (see `mlward scan`)"),
    Field("parameters", 3, "mlward", _prop("parameters"),
          "a format that states its tensors (safetensors, GGUF, ONNX, PyTorch zip)"),
    Field("datasets", 3, "mlward", _card("datasets"),
          "record the training data: `mlward lineage record --data` (or `datasets:` in the "
          "card)"),
    Field("lineage", 3, "mlward", lambda c, _: c.properties.get("lineage_match") is True,
          "record the training run: `mlward lineage record --model ... --data ...`"),
    Field("signature", 3, "mlward",
          lambda c, _: c.properties.get("signature") == "valid"
          or c.properties.get("lineage_signature") == "valid",
          "sign the model (`mlward sign --oms MODEL`) or its lineage statement, and pass "
          "--trust/--key to check it"),
    Field("manifest", 3, "mlward",
          _files(lambda c: all(f.manifest == "match" for f in c.files)),
          "record a manifest: `mlward manifest create`"),
    Field("verdict", 3, "mlward", lambda c, _: c.verdict in ("clean", "suspicious",
                                                                "dangerous"),
          "a verdict needs every file examined (see the report's skipped items)"),
    Field("ledger", 3, "mlward", _files(lambda c: all(f.ledger for f in c.files)),
          "record the model in the ledger (`mlward sign`, `mlward manifest create` in a "
          "project made with `mlward init`)"),
)


def completeness(component: Component, inventory: Inventory) -> Completeness:
    """The score and the filled and missing fields of one model."""
    filled, missing = [], []
    for f in FIELDS:
        if f.filled(component, inventory):
            filled.append(f)
        else:
            missing.append(f)
    total = sum(f.points for f in FIELDS)
    score = round(100 * sum(f.points for f in filled) / total)
    return Completeness(score, tuple(f.name for f in filled),
                        tuple((f.name, f.hint) for f in missing))
