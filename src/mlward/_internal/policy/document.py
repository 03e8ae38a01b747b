"""The input document: one JSON value, built from every check the gate ran, that policies read.

Its shape is ``mlward/schemas/gate-input.schema.json`` (the README has it as a table). Every
collection item has a :class:`Subject` beside it: where a violation of that item is reported
and which findings stand behind it, so that a violation can name both without the policy
having to carry them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mlward.findings import Finding, Location, Report, Severity, Skipped

COLLECTIONS: dict[str, str] = {
    "findings": "finding", "models": "model", "notebooks": "notebook",
    "dependencies": "dependency", "storage": "bucket", "bom": "drift", "project": "project",
}
"""Each collection a rule can judge, and the name its item has in a condition."""

# Model families by the format the scan recognised, and whether loading them unpickles.
_FAMILIES: tuple[tuple[str, str, bool], ...] = (
    ("pickle", "pickle", True), ("joblib", "pickle", True), ("pytorch", "pytorch", True),
    ("numpy-npy (object", "numpy", True), ("numpy", "numpy", False),
    ("safetensors", "safetensors", False), ("onnx", "onnx", False), ("gguf", "gguf", False),
    ("keras", "keras", False), ("hdf5", "keras", False), ("tf-", "tensorflow", False),
    ("tensorflow", "tensorflow", False), ("model-repository", "model-repository", False),
)
_NOT_MODELS = ("pytorch-metadata",)
MAX_CARD_BYTES = 256 << 10
_LABELS = {s: s.label for s in Severity}  # an enum property per finding costs 10% of a build
_FRONT_MATTER = re.compile(r"\A---\r?\n(.*?)\r?\n---", re.S)


@cache
def input_schema() -> dict[str, Any]:
    """The JSON Schema of the input document (shipped with the package)."""
    text = resources.files("mlward").joinpath("schemas/gate-input.schema.json").read_text(
        encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass(frozen=True)
class Subject:
    """What a violation of one item points at."""

    key: str
    """Stable identity of the item (with the policy rule id, the violation's fingerprint)."""
    display: str
    location: Location
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class Signature:
    status: str
    key: str | None
    detail: str


@dataclass(frozen=True)
class Lineage:
    status: str
    statement: str | None
    inputs: tuple[tuple[str, bool, str], ...]
    detail: str


UNCHECKED_SIGNATURE = Signature("unchecked", None, "provenance check not run")
UNCHECKED_LINEAGE = Lineage("unchecked", None, (), "provenance check not run")


@dataclass(frozen=True)
class Provenance:
    """Signature and lineage of one model, from the provenance check."""

    signature: Signature = UNCHECKED_SIGNATURE
    lineage: Lineage = UNCHECKED_LINEAGE


@dataclass(frozen=True)
class CheckRun:
    """One check's report and its name (``scan``, ``deps``)."""

    name: str
    report: Report


@dataclass
class InputDocument:
    """The document and, per collection, the subject of each item (same order)."""

    data: dict[str, Any]
    subjects: dict[str, list[Subject]] = field(default_factory=dict)
    blind: list[tuple[str, Skipped]] = field(default_factory=list)

    def items(self, collection: str) -> list[Any]:
        if collection == "project":
            return [self.data["project"]]
        items: list[Any] = self.data.get(collection) or []
        return items


def model_family(fmt: str) -> tuple[str, bool] | None:
    """(family, unpickles) of an examined format, or None when it is not a model format."""
    if fmt.startswith(_NOT_MODELS):
        return None
    for prefix, family, unpickles in _FAMILIES:
        if fmt.startswith(prefix):
            return family, unpickles
    return None


def build_document(runs: Sequence[CheckRun], *, root: Path, time: datetime,
                   params: Mapping[str, Any], git: Mapping[str, Any],
                   provenance: Mapping[str, Provenance] | None = None,
                   bom: Sequence[Mapping[str, Any]] = ()) -> InputDocument:
    """The input document of a gate run over ``runs`` (reports sharing ``root``).

    ``provenance`` maps a model's location URI to what the provenance check found (None: the
    check did not run, every model is ``unchecked``). ``bom`` is the drift ``mlward bom
    verify`` found (empty when the project has no BOM or the check did not run).
    """
    doc = InputDocument({})
    findings = _findings(runs, doc)
    doc.data.update({
        "version": 1,
        "project": {
            "root": str(root), "name": root.name,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "inputs": sorted({i for r in runs for i in r.report.inputs}),
            "checks": [r.name for r in runs] + (["provenance"] if provenance is not None
                                                 else []),
            "git": dict(git),
            "blind": [{"path": s.location.container_path, "reason": s.reason, "check": check}
                      for check, s in doc.blind],
        },
        "findings": findings,
        "models": _models(runs, findings, doc, provenance, root),
        "notebooks": _notebooks(runs, doc),
        "dependencies": _dependencies(runs, doc, time.date()),
        "storage": _storage(runs, doc),
        "bom": [dict(b) for b in bom],
        "params": dict(params),
    })
    doc.subjects["project"] = [Subject("project", root.name, Location("."))]
    behind: dict[tuple[Any, Any], list[Finding]] = {}  # (path, rule) -> bom verify findings
    for f in (f for r in runs if r.name == "bom" for f in r.report.findings):
        behind.setdefault((f.location.uri, f.rule_id), []).append(f)
    doc.subjects["bom"] = [
        Subject(f"bom:{b.get('kind')}:{b.get('component')}:{b.get('path', '')}",
                f"{b.get('component')} {b.get('path', '')}".strip(),
                Location(str(b["path"])) if b.get("path") else Location("."),
                tuple(behind.get((b.get("path"), b.get("rule")), ())))
        for b in bom]
    return doc


def _findings(runs: Sequence[CheckRun], doc: InputDocument) -> list[dict[str, Any]]:
    out = []
    subjects = []
    seen: set[str] = set()
    for run in runs:
        for s in run.report.inconclusive:
            doc.blind.append((run.name, s))
        for f in run.report.findings:
            if f.fingerprint in seen:  # the deps check repeats what the scan found
                continue
            seen.add(f.fingerprint)
            sup = f.suppression
            out.append({
                "rule": f.rule_id, "severity": _LABELS[f.severity], "rank": int(f.severity),
                "fingerprint": f.fingerprint, "path": f.location.uri,
                "members": list(f.location.members), "line": f.location.line,
                "message": f.message, "details": dict(f.details), "check": run.name,
                "waived": sup is not None,
                "suppression": None if sup is None else {
                    "kind": sup.kind, "reason": sup.reason, "owner": sup.owner,
                    "expires": sup.expires},
                "baseline": f.baseline, "counts": f.counts,
            })
            subjects.append(Subject(f.fingerprint, f"{f.rule_id} {f.location.container_path}",
                                    f.location, (f,)))
    doc.subjects["findings"] = subjects
    return out


def _behind(findings: Iterable[Finding], uri: str, members: tuple[str, ...]) -> list[Finding]:
    return [f for f in findings
            if f.location.uri == uri and f.location.members[:len(members)] == members]


def _models(runs: Sequence[CheckRun], findings: list[dict[str, Any]], doc: InputDocument,
            provenance: Mapping[str, Provenance] | None, root: Path) -> list[dict[str, Any]]:
    all_findings = [s.findings[0] for s in doc.subjects["findings"]]
    by_uri: dict[str, list[Finding]] = {}
    for f in all_findings:
        by_uri.setdefault(f.location.uri, []).append(f)
    out = []
    subjects = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    cards: dict[str, str | None] = {}

    def licenses(loc: Location, fmt: str) -> str | None:
        # A model repository (or SavedModel folder) is a folder; a model file's card is in
        # the folder holding it.
        whole = fmt.startswith("model-repository") or fmt.endswith("-folder")
        folder = loc.uri if whole else os.path.dirname(loc.uri)  # noqa: PTH120
        if folder not in cards:
            cards[folder] = _license(root / folder)
        return cards[folder]

    for run in runs:
        for e in run.report.examined:
            kind = model_family(e.format)
            loc = e.location
            if kind is None or (loc.uri, loc.members) in seen:
                continue
            seen.add((loc.uri, loc.members))
            behind = [f for f in _behind(by_uri.get(loc.uri, ()), loc.uri, loc.members)
                      if f.counts]
            prov = (provenance or {}).get(loc.uri, Provenance()) if not loc.members \
                else Provenance()
            sig, lin = prov.signature, prov.lineage
            out.append({
                "path": loc.uri, "members": list(loc.members), "format": e.format,
                "family": kind[0], "pickle": kind[1],
                "folder": os.path.dirname(loc.uri) if loc.is_local else "",  # noqa: PTH120
                "findings": len(behind),
                "max_rank": max((int(f.severity) for f in behind), default=-1),
                "signature": {"status": sig.status, "trusted": sig.status == "valid",
                              "key": sig.key, "detail": sig.detail},
                "lineage": {"status": lin.status, "statement": lin.statement,
                            "inputs": [{"name": n, "ok": ok, "detail": d}
                                       for n, ok, d in lin.inputs],
                            "detail": lin.detail},
                "license": licenses(loc, e.format) if loc.is_local and not loc.members
                else None,
            })
            subjects.append(Subject(f"model:{loc.container_path}", loc.container_path,
                                    Location(loc.uri, loc.members), tuple(behind)))
    doc.subjects["models"] = subjects
    return out


def _license(folder: Path) -> str | None:
    """The ``license:`` the model card in ``folder`` declares (README.md front matter,
    Hugging Face style): a model folder's, or the folder holding a model file."""
    import yaml

    card = folder / "README.md"
    try:
        with open(card, "rb") as f:
            head = f.read(MAX_CARD_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    m = _FRONT_MATTER.match(head)
    if m is None:
        return None
    try:
        meta = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return None
    value = meta.get("license") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def _notebooks(runs: Sequence[CheckRun], doc: InputDocument) -> list[dict[str, Any]]:
    out = []
    subjects = []
    for run in runs:
        for fact in run.report.facts:
            if fact.kind != "notebook":
                continue
            out.append({"path": fact.location.uri, "cells": int(fact.data.get("cells", 0)),
                        "outputs": int(fact.data.get("outputs", 0))})
            subjects.append(Subject(f"notebook:{fact.location.container_path}",
                                    fact.location.container_path, fact.location))
    doc.subjects["notebooks"] = subjects
    return out


def _storage(runs: Sequence[CheckRun], doc: InputDocument) -> list[dict[str, Any]]:
    """Buckets, containers and storage accounts the scan found declared in infrastructure
    as code (Terraform, CloudFormation), with the reasons each is public."""
    out = []
    subjects = []
    for run in runs:
        for fact in run.report.facts:
            if fact.kind != "iac-storage":
                continue
            d = fact.data
            resource = str(d.get("resource"))
            out.append({"path": fact.location.uri, "line": fact.location.line,
                        "resource": resource, "type": str(d.get("type")),
                        "name": d.get("name") if isinstance(d.get("name"), str) else None,
                        "public": [str(r) for r in d.get("public") or ()]})
            subjects.append(Subject(f"storage:{fact.location.container_path}:{resource}",
                                    f"{resource} ({fact.location.container_path})",
                                    fact.location))
    doc.subjects["storage"] = subjects
    return out


def _dependencies(runs: Sequence[CheckRun], doc: InputDocument,
                  today: date) -> list[dict[str, Any]]:
    out = []
    subjects = []
    at: dict[Location, list[Finding]] = {}
    for s in doc.subjects["findings"]:
        at.setdefault(s.location, []).append(s.findings[0])
    for run in runs:
        for fact in run.report.facts:
            if fact.kind != "dependency":
                continue
            d = fact.data
            name = str(d.get("name"))
            vulns = [_vulnerability(v, today) for v in d.get("vulnerabilities") or ()
                     if isinstance(v, Mapping)]
            out.append({
                "name": name, "version": d.get("version"), "specifier": d.get("specifier"),
                "pinned": d.get("version") is not None, "origin": d.get("origin"),
                "path": fact.location.uri, "line": fact.location.line,
                "vulnerabilities": vulns,
            })
            behind = tuple(f for f in at.get(fact.location, ())
                           if f.details.get("package") == name)
            shown = f"{name}=={d['version']}" if d.get("version") else name
            subjects.append(Subject(f"dependency:{fact.location.container_path}:{name}",
                                    f"{shown} ({fact.location.container_path})",
                                    fact.location, behind))
    doc.subjects["dependencies"] = subjects
    return out


def _vulnerability(v: Mapping[str, Any], today: date) -> dict[str, Any]:
    published = v.get("published")
    age = None
    if isinstance(published, str):
        try:
            age = (today - date.fromisoformat(published[:10])).days
        except ValueError:
            published = None
    cvss = v.get("cvss")
    fixed = [str(x) for x in v.get("fixed") or ()]
    return {"id": str(v.get("id")), "ids": [str(i) for i in v.get("ids") or ()],
            "severity": v.get("severity"),
            "cvss": float(cvss) if isinstance(cvss, (int, float)) else None,
            "fixed": fixed, "fixable": bool(fixed), "published": published, "age_days": age}


def sample_item(collection: str | None) -> Any:
    """An item of ``collection`` (None: a whole document) with every field the schema has, of
    its first type: a condition is tried on it when the policy loads, to catch type errors."""
    schema = input_schema()
    props = schema["properties"]
    if collection is not None:
        schema = props["project"] if collection == "project" else props[collection]["items"]
    return _sample(schema)


_SAMPLES: dict[str, Any] = {"string": "", "integer": 0, "number": 0.0, "boolean": False,
                            "array": [], "null": None}


def _sample(schema: Mapping[str, Any]) -> Any:
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {k: _sample(v) for k, v in schema.get("properties", {}).items()}
    return _SAMPLES[kind]
