"""The report as SARIF 2.1.0, for GitHub code scanning and other SARIF consumers.

Each result carries ``properties.severity`` (critical/high/medium/low/info); critical and high
results have level ``error``, medium ``warning``, low and info ``note``. Positions inside
containers are given as a logical location and a ``properties.members`` path, since SARIF has
no notion of a member inside an archive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlward.findings import Finding, Report, Severity
from mlward.rules import RULES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

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


def _uri(path: str) -> str:
    p = Path(path)
    return p.as_posix() if not p.is_absolute() else p.as_uri()


def _result(f: Finding, rule_index: dict[str, int]) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(f.location.path)}}
    region: dict[str, Any] = {}
    if f.location.members:
        pass  # a region would point into the outer file's bytes, which would mislead
    elif f.location.line is not None:
        region["startLine"] = f.location.line
        if f.location.column:
            region["startColumn"] = f.location.column
    elif f.location.offset is not None:
        region["byteOffset"] = f.location.offset
    if region:
        physical["region"] = region
    location: dict[str, Any] = {"physicalLocation": physical}
    if f.location.members:
        location["logicalLocations"] = [
            {"fullyQualifiedName": f.location.container_path, "kind": "member"}
        ]
    props: dict[str, Any] = {"severity": f.severity.label}
    if f.location.members:
        props["members"] = list(f.location.members)
    for key in ("offset", "cell", "output"):
        value = getattr(f.location, key)
        if value is not None and (key != "offset" or f.location.members):
            props[key] = value
    if f.evidence is not None:
        props["evidence"] = f.evidence
    if f.details:
        props["details"] = dict(f.details)
    result: dict[str, Any] = {
        "ruleId": f.rule_id,
        "level": _LEVEL[f.severity],
        "message": {"text": f.message + (f" ({f.evidence})" if f.evidence else "")},
        "locations": [location],
        "properties": props,
    }
    if f.rule_id in rule_index:
        result["ruleIndex"] = rule_index[f.rule_id]
    return result


def render_sarif(report: Report) -> str:
    used = sorted({f.rule_id for f in report.findings})
    rules: list[dict[str, Any]] = []
    rule_index: dict[str, int] = {}
    for rid in used:
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
    notifications = [
        {
            "level": "warning" if s.inconclusive else "note",
            "message": {"text": f"{s.location.container_path}: {s.reason}"},
        }
        for s in report.skipped
        if s.inconclusive
    ]
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mlward",
                        "version": report.version,
                        "semanticVersion": report.version,
                        "informationUri": "https://github.com/mlward/mlward",
                        "rules": rules,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not report.inconclusive,
                        "startTimeUtc": report.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "endTimeUtc": report.finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": [_result(f, rule_index) for f in report.findings],
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"
