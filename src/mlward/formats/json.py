"""The report as JSON: the data model as it is (``Report.to_dict``), one stable shape.

:func:`report_schema` generates the JSON Schema of that shape from the data model's fields;
the copy shipped as ``mlward/schemas/report.schema.json`` is checked against it in the tests.
"""

from __future__ import annotations

import json
from typing import Any

from mlward.findings import SCHEMA_VERSION, Report, Severity, TargetKind
from mlward.formats import RenderOptions


def render_json(report: Report, options: RenderOptions | None = None) -> str:
    """One compact line: the standard library encodes it in C, where indenting falls back to
    Python (for 2,000 small pickles, a tenth of the scan's time); ``jq .`` indents it."""
    return json.dumps(report.to_dict(), separators=(",", ":")) + "\n"


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def report_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of :meth:`Report.to_dict` output."""
    location = {
        "type": "object", "additionalProperties": False, "required": ["uri"],
        "properties": {
            "uri": {"type": "string", "description": "a POSIX path relative to the report's "
                    "root, or an absolute URI (http:, s3:, gs:, az:, pkg:, file:, ...)"},
            "members": {"type": "array", "items": {"type": "string"},
                        "description": "path inside containers, outermost first"},
            **{k: {"type": "integer", "minimum": 0}
               for k in ("offset", "line", "column", "cell", "output")},
        },
    }
    severity = {"enum": [s.label for s in Severity]}
    suppression = {
        "type": "object", "additionalProperties": False, "required": ["kind", "reason"],
        "properties": {"kind": {"enum": ["waiver", "inline"]}, "reason": {"type": "string"},
                       "owner": {"type": "string"}, "expires": {"type": "string",
                                                                "format": "date"},
                       "source": {"type": "string"}},
    }
    finding = {
        "type": "object", "additionalProperties": False,
        "required": ["rule_id", "severity", "location", "message", "fingerprint"],
        "properties": {
            "rule_id": {"type": "string", "pattern": "^MW[0-9]{3}$"},
            "severity": severity,
            "location": {"$ref": "#/$defs/location"},
            "message": {"type": "string"},
            "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "evidence": {"type": "string"},
            "remediation": {"type": "string"},
            "cwe": {"type": "string"},
            "details": {"type": "object"},
            "suppression": {"$ref": "#/$defs/suppression"},
            "baseline": {"enum": ["new", "unchanged"]},
        },
    }
    located = {"location": {"$ref": "#/$defs/location"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://mlward.dev/schemas/report-{SCHEMA_VERSION}.json",
        "title": "mlward report",
        "type": "object",
        "required": ["schema_version", "tool", "kind", "root", "inputs", "started", "finished",
                     "stats", "summary", "findings", "facts", "skipped", "examined"],
        "additionalProperties": False,
        "properties": {
            "schema_version": {"type": "string", "pattern": "^2\\.[0-9]+$"},
            "tool": {"type": "object", "required": ["name", "version"],
                     "properties": {"name": {"const": "mlward"},
                                    "version": {"type": "string"}}},
            "kind": {"enum": [k.value for k in TargetKind]},
            "root": _nullable("string"),
            "inputs": {"type": "array", "items": {"type": "string"}},
            "started": {"type": "string", "format": "date-time"},
            "finished": {"type": "string", "format": "date-time"},
            "stats": {"type": "object"},
            "summary": {"type": "object", "description": "derived from the lists below"},
            "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}},
            "facts": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "required": ["location", "kind", "data"],
                "properties": {**located, "kind": {"type": "string"},
                               "data": {"type": "object"}}}},
            "skipped": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "required": ["location", "reason", "inconclusive"],
                "properties": {**located, "reason": {"type": "string"},
                               "inconclusive": {"type": "boolean"}}}},
            "examined": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "required": ["location", "format"],
                "properties": {**located, "format": {"type": "string"}}}},
        },
        "$defs": {"location": location, "finding": finding, "suppression": suppression},
    }
