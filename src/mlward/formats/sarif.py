"""The report as SARIF 2.1.0, for GitHub code scanning and other SARIF consumers.

Each result carries ``properties.severity`` (critical/high/medium/low/info); critical and high
results have level ``error``, medium ``warning``, low and info ``note``.

Locations: a file under the report's root is a relative ``uri`` with ``uriBaseId: ROOT``
(``originalUriBaseIds`` gives the root as a ``file://`` URI), so that the same finding has the
same location in every clone; anything else (``http://``, ``s3://``, ``pkg:``) is its absolute
URI, unchanged. Positions inside containers are a logical location and ``properties.members``,
since SARIF has no notion of a member inside an archive. :func:`location_from_result` reads a
result's location back, exactly.

Identity: ``partialFingerprints["mlward/v1"]`` is the finding's fingerprint (stable across
runs, moves and line shifts); waived findings carry ``suppressions`` and, with a baseline,
``baselineState`` is ``new`` or ``unchanged``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlward.findings import Finding, Location, Report, Severity
from mlward.formats import RenderOptions
from mlward.rules import RULES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
ROOT = "ROOT"
FINGERPRINT = "mlward/v1"

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub's security-severity scale (0-10) for code-scanning alerts.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _artifact(loc: Location) -> dict[str, Any]:
    if loc.is_local:
        return {"uri": loc.uri, "uriBaseId": ROOT}
    return {"uri": loc.uri}


def sarif_location(loc: Location) -> dict[str, Any]:
    """A SARIF ``location`` object for ``loc`` (read back by :func:`location_from_result`)."""
    physical: dict[str, Any] = {"artifactLocation": _artifact(loc)}
    region: dict[str, Any] = {}
    if not loc.members:  # a region would point into the outer file's bytes, which would mislead
        if loc.line is not None:
            region["startLine"] = loc.line
            if loc.column:
                region["startColumn"] = loc.column
        elif loc.offset is not None:
            region["byteOffset"] = loc.offset
    if region:
        physical["region"] = region
    out: dict[str, Any] = {"physicalLocation": physical}
    if loc.members:
        out["logicalLocations"] = [{"fullyQualifiedName": loc.container_path, "kind": "member"}]
    props: dict[str, Any] = {}
    if loc.members:
        props["members"] = list(loc.members)
    for key in ("offset", "line", "column", "cell", "output"):
        value = getattr(loc, key)
        in_region = not loc.members and (
            (key == "line") or (key == "column" and loc.line is not None and value)
            or (key == "offset" and loc.line is None))
        if value is not None and not in_region:
            props[key] = value
    if props:
        out["properties"] = props
    return out


def location_from_result(location: dict[str, Any]) -> Location:
    """The :class:`Location` a SARIF location written by this module stands for."""
    physical = location["physicalLocation"]
    region = physical.get("region", {})
    props = location.get("properties", {})
    return Location(
        physical["artifactLocation"]["uri"], tuple(props.get("members", ())),
        offset=props.get("offset", region.get("byteOffset")),
        line=props.get("line", region.get("startLine")),
        column=props.get("column", region.get("startColumn")),
        cell=props.get("cell"), output=props.get("output"))


def _result(f: Finding, rule_index: dict[str, int]) -> dict[str, Any]:
    props: dict[str, Any] = {"severity": f.severity.label}
    if f.evidence is not None:
        props["evidence"] = f.evidence
    if f.details:
        props["details"] = dict(f.details)
    result: dict[str, Any] = {
        "ruleId": f.rule_id,
        "level": _LEVEL[f.severity],
        "message": {"text": f.message + (f" ({f.evidence})" if f.evidence else "")},
        "locations": [sarif_location(f.location)],
        "partialFingerprints": {FINGERPRINT: f.fingerprint},
        "properties": props,
    }
    if f.rule_id in rule_index:
        result["ruleIndex"] = rule_index[f.rule_id]
    if f.suppression is not None:
        s = f.suppression
        suppression: dict[str, Any] = {
            "kind": "inSource" if s.kind == "inline" else "external",
            "status": "accepted", "justification": s.reason}
        extra = {k: v for k, v in (("owner", s.owner), ("expires", s.expires),
                                   ("source", s.source)) if v}
        if extra:
            suppression["properties"] = extra
        result["suppressions"] = [suppression]
    if f.baseline is not None:
        result["baselineState"] = f.baseline
    return result


def _rules(report: Report) -> tuple[list[dict[str, Any]], dict[str, int]]:
    rules: list[dict[str, Any]] = []
    rule_index: dict[str, int] = {}
    for rid in sorted({f.rule_id for f in report.findings}):
        r = RULES.get(rid)
        if r is None:
            continue
        rule_index[rid] = len(rules)
        entry: dict[str, Any] = {
            "id": r.id,
            "name": "".join(w.capitalize() for w in r.title.split()[:8] if w.isalnum()) or r.id,
            "shortDescription": {"text": r.title},
            "help": {"text": r.remediation},
            "defaultConfiguration": {"level": _LEVEL[r.severity]},
            "properties": {
                "severity": r.severity.label,
                "security-severity": _SECURITY_SEVERITY[r.severity],
                "tags": ["security"] + ([f"external/cwe/{r.cwe.lower()}"] if r.cwe else []),
            },
        }
        if r.doc:
            entry["fullDescription"] = {"text": r.doc}
        rules.append(entry)
    return rules, rule_index


def render_sarif(report: Report, options: RenderOptions | None = None) -> str:
    rules, rule_index = _rules(report)
    notifications = [
        {"level": "warning", "message": {"text": f"{s.location.container_path}: {s.reason}"}}
        for s in report.inconclusive
    ] + [{"level": "warning", "message": {"text": str(w)}}
         for w in report.stats.get("warnings") or []]
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "mlward", "version": report.version,
                            "semanticVersion": report.version,
                            "informationUri": "https://github.com/mlward/mlward",
                            "rules": rules}},
        "invocations": [{
            "executionSuccessful": not report.inconclusive,
            "startTimeUtc": report.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endTimeUtc": report.finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "toolExecutionNotifications": notifications,
        }],
        "results": [_result(f, rule_index) for f in report.findings],
    }
    if report.root:
        run["originalUriBaseIds"] = {ROOT: {"uri": Path(report.root).as_uri() + "/"}}
    doc = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(doc, indent=2) + "\n"
