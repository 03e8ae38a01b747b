"""The inventory as CycloneDX 1.6 or 1.7 JSON, validated before it is returned.

cyclonedx-python-lib models components, services, hashes, licenses, properties, external
references, vulnerabilities and dependencies: the models, datasets, services and the BOM's
metadata are built with it. It does not model a component's ``modelCard`` or ``data`` nor the
BOM's ``formulation`` (the ML parts of CycloneDX 1.5+), so those are added to its JSON output
here, by ``bom-ref``. The libraries and the vulnerabilities, hundreds of small objects of a
few fields each, are written directly as the library writes them (:func:`_library`,
:func:`~mlward.formats.cyclonedx.cyclonedx_vulnerability`; tests compare the two): through
its model, whose sorted sets compare every item field by field, they cost more than the rest
of the BOM. The whole document is then checked by the library's strict JSON schema validator
(:func:`strict_validator`), which refuses any field the schema does not define.

Everything ``bom verify`` and ``bom diff`` need to read back (:mod:`.read`) is carried in
standard fields or in properties of the ``mlward:`` namespace, one value per property.
"""
# The strict validation runs the library's validator with a linear-time ``uniqueItems``: see
# :func:`strict_validator`. The tests also validate every document with the library's
# ``JsonStrictValidator`` unchanged.

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlward._internal.bom import props
from mlward._internal.bom.inventory import Component, FileRecord, Inventory
from mlward._version import __version__
from mlward.errors import MissingExtra, MlwardError

SPECS = ("1.6", "1.7")


class BomError(MlwardError):
    """A BOM could not be built, written or read."""


def render(inventory: Inventory, spec: str = "1.6", report_ref: str | None = None) -> str:
    """The CycloneDX JSON text (indented), schema-valid for ``spec``."""
    try:
        from cyclonedx.output.json import JsonV1Dot6, JsonV1Dot7
    except ImportError as exc:
        raise MissingExtra("cyclonedx-python-lib", "sbom") from exc
    if spec not in SPECS:
        raise BomError(f"CycloneDX {spec} is not written (choose from {', '.join(SPECS)})")
    bom, libraries = _bom(inventory, report_ref)
    writer = JsonV1Dot6 if spec == "1.6" else JsonV1Dot7
    doc = _assemble(json.loads(writer(bom).output_as_string()), libraries, inventory)
    error = next(iter(strict_validator(spec).iter_errors(doc)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise BomError(f"the CycloneDX {spec} document does not validate at /{where}: "
                       f"{error.message[:500]}")
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


@functools.cache
def strict_validator(spec: str) -> Any:
    """cyclonedx-python-lib's strict JSON validator for ``spec`` (the library's Draft 7
    validator over its bundled strict schemas, with its format checker and schema registry),
    with two keywords replaced, to the same effect, and the ``iri`` formats checked by
    :func:`_iri_reference`:

    - ``uniqueItems`` is checked by hashing each item's canonical JSON instead of comparing
      every pair. The library's pairwise check is quadratic in the number of components and
      of files in a folder: seconds for a project's few hundred libraries, much longer for a
      dataset of thousands of files. (Items that JSON Schema calls equal but that serialise
      differently, ``1`` and ``1.0``, are not told apart: mlward writes neither.)
    - ``$ref`` looks each reference up once per base URI: jsonschema resolves it again at
      every use (some 7,000 times for a BOM of 300 vulnerabilities, a third of the time).
      Draft 7 references resolve against the base URI alone, so the answer does not change.
    """
    _import_jsonschema()
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from jsonschema import ValidationError, validators

    def unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Any:
        if unique and validator.is_type(instance, "array"):
            seen: set[str] = set()
            for item in instance:
                key = json.dumps(item, sort_keys=True, separators=(",", ":"))
                if key in seen:
                    yield ValidationError(f"{key[:200]} is not unique")
                seen.add(key)

    resolved: dict[tuple[str, str], Any] = {}

    def ref(validator: Any, ref: str, instance: Any, schema: Any) -> Any:
        resolver = validator._resolver
        key = (resolver._base_uri, ref)
        if key not in resolved:
            resolved[key] = resolver.lookup(ref)
        target = resolved[key]
        yield from validator.descend(instance, target.contents, resolver=target.resolver)

    version = SchemaVersion.V1_6 if spec == "1.6" else SchemaVersion.V1_7
    base = JsonStrictValidator(version)._validator
    fast = validators.extend(type(base), {"uniqueItems": unique_items, "$ref": ref})
    checker = copy.copy(base.format_checker)
    checker.checkers = {**checker.checkers, "iri-reference": (_iri_reference, ValueError),
                        "iri": (_iri_reference, ValueError)}
    return fast(base.schema, registry=base._registry, format_checker=checker)


def _import_jsonschema() -> None:
    """Import jsonschema with ``rfc3987_syntax`` imported at its first use, not with it.

    jsonschema's format module imports rfc3987-syntax (its ``iri`` checks when the GPL
    ``rfc3987`` is absent), whose import compiles some forty Earley grammars: about 1.5 s of
    CPU, more than the rest of a BOM, for checks :func:`strict_validator` replaces anyway
    (python-jsonschema/jsonschema#1428). A stand-in module carries the one function jsonschema
    takes from it and imports the real one when called, so any other user of jsonschema's
    ``iri`` checks in this process still gets them."""
    if ("jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules
            or importlib.util.find_spec("rfc3987_syntax") is None):
        return
    stand_in = types.ModuleType("rfc3987_syntax")
    stand_in.is_valid_syntax = _is_valid_syntax  # type: ignore[attr-defined]
    sys.modules["rfc3987_syntax"] = stand_in
    try:
        import jsonschema  # noqa: F401
    finally:
        if sys.modules.get("rfc3987_syntax") is stand_in:
            del sys.modules["rfc3987_syntax"]


def _is_valid_syntax(term: str, value: str) -> bool:
    from rfc3987_syntax import is_valid_syntax

    return bool(is_valid_syntax(term, value))


_NOT_IN_IRI = re.compile(r'[\x00-\x20\x7f<>"{}|\\^`]')
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def _iri_reference(value: object) -> bool:
    """The ``iri-reference`` format, as RFC 3987 excludes characters: no space, control or
    ``<>"{}|\\^``` character, and a scheme, if any, well formed. jsonschema's own check runs a
    general Earley parser of the RFC's grammar: about 45 ms per URL, most of a BOM's time."""
    if not isinstance(value, str):
        return True
    if _NOT_IN_IRI.search(value):
        return False
    scheme, colon, _ = value.partition(":")
    if colon and "/" not in scheme and "?" not in scheme and "#" not in scheme:
        return bool(_SCHEME.fullmatch(scheme))
    return True


def _props(values: Mapping[str, Any]) -> list[Any]:
    from cyclonedx.model import Property

    return [Property(name=name, value=value) for name, value in props.encode(values)]


def _prop_dicts(values: Mapping[str, Any]) -> list[dict[str, str]]:
    """:func:`_props` as JSON, in the library's order (sorted by name, then value)."""
    return [{"name": name, "value": value} for name, value in sorted(set(props.encode(values)))]


def _file_props(f: FileRecord) -> dict[str, Any]:
    return {"path": f.path, "size": f.size, "manifest": f.manifest, "signature": f.signature,
            "ledger": f.ledger or None}


_HASH_ALGS = {"sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512",
              "blake3": "BLAKE3"}


def _hash_pairs(digests: Mapping[str, str] | Iterable[str]) -> list[tuple[str, str]]:
    """(CycloneDX algorithm, hex) of ``{alg: hex}`` or of ``alg:hex`` strings (lock file
    hashes), for the algorithms CycloneDX names."""
    pairs = sorted(digests.items()) if isinstance(digests, Mapping) else [
        tuple(d.split(":", 1)) for d in digests]
    return [(_HASH_ALGS[k], v) for k, v in pairs if k in _HASH_ALGS]


def _hashes(digests: Mapping[str, str] | Iterable[str]) -> list[Any]:
    from cyclonedx.model import HashAlgorithm, HashType

    return [HashType(alg=HashAlgorithm(alg), content=v) for alg, v in _hash_pairs(digests)]


def _common(c: Component) -> dict[str, Any]:
    """Properties every component carries: location, verdict, findings, incompleteness."""
    return {"kind": c.kind, "location": c.location, "verdict": c.verdict,
            "finding": [f"{rule} {severity}: {message}" for rule, severity, message
                        in c.findings],
            "incomplete": list(c.incomplete), **c.properties}


def _component(c: Component, report_ref: str | None) -> Any:
    from cyclonedx.contrib.license.factories import LicenseFactory
    from cyclonedx.model import ExternalReference, ExternalReferenceType, XsUri
    from cyclonedx.model.component import Component as CdxComponent
    from cyclonedx.model.component import ComponentType
    from cyclonedx.model.contact import OrganizationalEntity
    from packageurl import PackageURL

    kind = {"model": ComponentType.MACHINE_LEARNING_MODEL, "dataset": ComponentType.DATA,
            "model-source": ComponentType.MACHINE_LEARNING_MODEL,
            "library": ComponentType.LIBRARY}[c.kind]
    values = _common(c)
    refs = []
    if report_ref and c.kind in ("model", "dataset"):
        refs.append(ExternalReference(type=ExternalReferenceType.STATIC_ANALYSIS_REPORT,
                                      url=XsUri(report_ref), comment="mlward scan report"))
    if c.card.get("card"):
        card_path = f"{c.location.rstrip('/')}/{c.card['card']}"
        refs.append(ExternalReference(type=ExternalReferenceType.MODEL_CARD,
                                      url=XsUri(card_path)))
    if c.location.startswith(("http://", "https://")):
        refs.append(ExternalReference(type=ExternalReferenceType.DISTRIBUTION,
                                      url=XsUri(c.location)))
    single = len(c.files) == 1 and c.files[0].path == c.location
    nested = []
    if single:
        values.update({f"file:{k}": v for k, v in _file_props(c.files[0]).items()})
    else:
        nested = [CdxComponent(type=ComponentType.FILE, name=f.path, bom_ref=f"file:{f.path}",
                               hashes=_hashes(f.digests), properties=_props(_file_props(f)))
                  for f in c.files]
    return CdxComponent(
        type=kind, name=c.name, version=c.version, bom_ref=c.ref,
        purl=PackageURL.from_string(c.purl) if c.purl else None,
        description=c.description,
        supplier=OrganizationalEntity(name=c.supplier) if c.supplier else None,
        licenses=[LicenseFactory().make_from_string(c.license)] if c.license else [],
        hashes=_hashes(c.files[0].digests) if single else _hashes(
            c.properties.get("distribution_hashes", ())),
        properties=_props(values), external_references=refs, components=nested)


def _service(c: Component) -> Any:
    from cyclonedx.model import XsUri
    from cyclonedx.model.contact import OrganizationalEntity
    from cyclonedx.model.service import Service

    endpoint = c.properties.get("endpoint")
    open_apis = c.properties.get("open_apis")
    return Service(
        name=c.name, bom_ref=c.ref, version=c.version,
        provider=OrganizationalEntity(name=c.supplier) if c.supplier else None,
        endpoints=[XsUri(str(endpoint))] if endpoint else [],
        authenticated=(not open_apis) if c.properties.get("probed") else None,
        x_trust_boundary=True if c.kind == "ai-service" else None,
        properties=_props(_common(c)))


def _bom(inventory: Inventory, report_ref: str | None) -> tuple[Any, list[Component]]:
    """The BOM of everything but the libraries without a license (see :func:`_library`),
    and those libraries."""
    from uuid import UUID

    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component as CdxComponent
    from cyclonedx.model.component import ComponentType
    from cyclonedx.model.dependency import Dependency

    bom = Bom()
    if inventory.serial.startswith("urn:uuid:"):
        bom.serial_number = UUID(inventory.serial[len("urn:uuid:"):])
    from datetime import datetime

    bom.metadata.timestamp = datetime.fromisoformat(inventory.created.replace("Z", "+00:00"))
    project = CdxComponent(type=ComponentType.APPLICATION, name=inventory.name,
                           bom_ref="project")
    bom.metadata.component = project
    bom.metadata.tools.components.add(CdxComponent(
        type=ComponentType.APPLICATION, name="mlward", version=__version__))
    meta: dict[str, Any] = {"incomplete": list(inventory.incomplete)}
    if inventory.ledger is not None:
        meta.update({"ledger:origin": inventory.ledger.origin,
                     "ledger:size": str(inventory.ledger.size),
                     "ledger:root": inventory.ledger.root,
                     "ledger:checkpoint": inventory.ledger.note})
    bom.metadata.properties.update(_props(meta))
    top = []
    libraries = []
    for c in inventory.components:
        if c.kind in ("service", "ai-service"):
            bom.services.add(_service(c))
        elif c.kind == "library" and not c.license:
            libraries.append(c)
        else:
            item = _component(c, report_ref)
            bom.components.add(item)
            top.append(item)
    # The graph built directly: Bom.register_dependency searches every registered dependency
    # for each one it adds (quadratic in the number of components).
    bom.dependencies.add(Dependency(ref=project.bom_ref,
                                    dependencies=[Dependency(ref=c.bom_ref) for c in top]))
    bom.dependencies.update(Dependency(ref=c.bom_ref) for c in top)
    return bom, libraries


def _library(c: Component) -> dict[str, Any]:
    """A library component as the JSON cyclonedx-python-lib writes for it (see the module's
    docstring). A library with a license goes through the library, which reads the text into
    an SPDX id or expression."""
    item: dict[str, Any] = {"type": "library", "bom-ref": c.ref, "name": c.name}
    if c.supplier:
        item["supplier"] = {"name": c.supplier}
    if c.version:
        item["version"] = c.version
    if c.description:
        item["description"] = c.description
    hashes = _hash_pairs(c.properties.get("distribution_hashes", ()))
    if hashes:
        item["hashes"] = [{"alg": alg, "content": v} for alg, v in sorted(set(hashes))]
    if c.purl:
        from packageurl import PackageURL

        item["purl"] = PackageURL.from_string(c.purl).to_string()
    item["properties"] = _prop_dicts(_common(c))
    return item


def _assemble(doc: dict[str, Any], libraries: Sequence[Component],
              inventory: Inventory) -> dict[str, Any]:
    """The library's document with what it did not build: the libraries (and their place in
    the dependency graph), every component's vulnerabilities, the ML parts; its fields in the
    specification's order."""
    from mlward.formats.cyclonedx import cyclonedx_vulnerability

    _add_ml(doc, inventory)
    doc["components"] = [*doc.get("components", ()), *(_library(c) for c in libraries)]
    graph = doc.setdefault("dependencies", [])
    root = next(d for d in graph if d["ref"] == "project")
    depends_on = sorted([*root.get("dependsOn", ()), *(c.ref for c in libraries)])
    if depends_on:
        root["dependsOn"] = depends_on
    graph += [{"ref": c.ref} for c in libraries]
    graph.sort(key=lambda d: d["ref"])
    doc["vulnerabilities"] = sorted((cyclonedx_vulnerability(
        id=v.id, aliases=v.aliases, severity=v.severity, score=v.score, vector=v.vector,
        cwes=v.cwes, summary=v.summary, fixed=v.fixed, upgrade=v.upgrade, ref=c.ref,
        version=c.version, specifier=str(c.properties.get("requirement", "")))
        for c in inventory.components for v in c.vulnerabilities),
        key=lambda v: (v["id"], v["bom-ref"]))
    order = ("$schema", "bomFormat", "specVersion", "serialNumber", "version", "metadata",
             "components", "services", "dependencies", "vulnerabilities", "formulation")
    return {k: doc[k] for k in (*order, *sorted(doc.keys() - set(order))) if doc.get(k)}


# --- the ML parts cyclonedx-python-lib does not model ---------------------------------------

def _texts(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values if v]


def model_card(c: Component, inventory: Inventory) -> dict[str, Any]:
    """The component's ``modelCard`` (CycloneDX 1.5+), from what is known about it."""
    card = c.card
    params: dict[str, Any] = {}
    if card.get("task"):
        params["task"] = card["task"]
    family = card.get("architecture_family") or c.properties.get("architecture")
    if family:
        params["architectureFamily"] = str(family)
    if card.get("architecture"):
        params["modelArchitecture"] = card["architecture"]
    datasets = []
    for d in card.get("datasets", ()):
        if inventory.component(d) is not None:
            datasets.append({"ref": d})
        else:
            datasets.append({"type": "dataset", "name": str(d)})
    if datasets:
        params["datasets"] = datasets
    for key in ("inputs", "outputs"):  # data formats from the task (ONNX graph input names
        formats = card.get(key)          # are names, not formats: they stay in properties)
        if formats:
            params[key] = [{"format": str(f)} for f in formats]
    out: dict[str, Any] = {"bom-ref": f"{c.ref}#model-card"}
    if params:
        out["modelParameters"] = params
    metrics = [{k: str(m[k]) for k in ("type", "value", "slice") if m.get(k)}
               for m in card.get("metrics", ())]
    if metrics:
        out["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    notes = card.get("considerations", {})
    considerations: dict[str, Any] = {}
    for key in ("useCases", "technicalLimitations"):
        if notes.get(key):
            considerations[key] = _texts(notes[key])
    if notes.get("outOfScopeUses"):
        considerations.setdefault("useCases", []).extend(
            f"out of scope: {t}" for t in _texts(notes["outOfScopeUses"]))
    ethical = [*_texts(notes.get("ethicalConsiderations", ())), *_texts(notes.get("risks", ()))]
    if ethical:
        considerations["ethicalConsiderations"] = [{"name": t} for t in ethical]
    co2 = card.get("co2_eq_emissions")
    if co2:
        considerations["environmentalConsiderations"] = {"properties": [
            {"name": f"co2_eq_emissions:{k}", "value": str(v)} for k, v in sorted(co2.items())]}
    if considerations:
        out["considerations"] = considerations
    hyper = card.get("hyperparameters")
    if hyper:
        out["properties"] = [{"name": f"{props.NS}hyperparameter:{k}", "value": props.text(v)}
                             for k, v in sorted(hyper.items())]
    return out


def data_entry(c: Component) -> dict[str, Any]:
    """The data component's ``data`` entry (CycloneDX 1.5+)."""
    entry: dict[str, Any] = {"type": "dataset", "name": c.name}
    contents = [{"name": f"{props.NS}{k}", "value": props.text(c.properties[k])}
                for k in ("record_count", "size", "file_count", "formats")
                if k in c.properties]
    if contents:
        entry["contents"] = {"properties": contents}
    if c.properties.get("classification"):
        entry["classification"] = str(c.properties["classification"])
    if c.properties.get("sensitive_data"):
        entry["sensitiveData"] = _texts(c.properties["sensitive_data"])
    if c.description:
        entry["description"] = c.description
    return entry


def formulation(inventory: Inventory) -> list[dict[str, Any]]:
    """The lineage as one formulation with a workflow per training run."""
    workflows = []
    for w in inventory.workflows:
        item: dict[str, Any] = {"bom-ref": w.ref, "uid": w.run_id or w.ref, "name": w.name,
                                "taskTypes": ["build"]}
        if w.inputs:
            item["inputs"] = [{"resource": {"ref": r}} for r in w.inputs]
        if w.outputs:
            item["outputs"] = [{"resource": {"ref": r}} for r in w.outputs]
        if w.started:
            item["timeStart"] = w.started
        if w.finished:
            item["timeEnd"] = w.finished
        values = {f"parameter:{k}": v for k, v in w.parameters.items()}
        values.update({f"environment:{k}": v for k, v in w.environment.items()})
        values["statement"] = w.statement
        item["properties"] = [{"name": n, "value": v} for n, v in props.encode(values)]
        workflows.append(item)
    return [{"bom-ref": "formulation", "workflows": workflows}] if workflows else []


def _add_ml(doc: dict[str, Any], inventory: Inventory) -> None:
    by_ref = {c.ref: c for c in inventory.components}
    for item in _walk(doc.get("components", [])):
        c = by_ref.get(item.get("bom-ref", ""))
        if c is None:
            continue
        if c.kind == "model":
            item["modelCard"] = model_card(c, inventory)
        elif c.kind == "dataset":
            item["data"] = [data_entry(c)]
    found = formulation(inventory)
    if found:
        doc["formulation"] = found


def _walk(items: Sequence[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for item in items:
        yield item
        yield from _walk(item.get("components", []))
