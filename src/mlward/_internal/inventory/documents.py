"""What a JSON document given to the inventory is (a scan report, a BOM, a gate result, an
audit snapshot) and the rows it becomes.

Every document is parsed with its own model's ``from_dict`` first, so that the inventory only
ever holds what mlward itself would have written; its digest is the SHA-256 of its canonical
JSON, which is what makes ingest idempotent (the same CI result pushed twice is one row).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlward._internal.inventory.errors import InventoryError
from mlward._internal.policy.document import model_family
from mlward.findings import Fact, Finding, Report, Severity

KINDS = ("report", "bom", "gate", "audit")
SEVERITIES = tuple(s.label for s in sorted(Severity, reverse=True))
"""Severity labels, most severe first (the count columns)."""

# Fact kinds that are inventory assets, and the asset kind each becomes.
_FACT_ASSETS = {"model": "model", "dataset": "dataset", "dependency": "dependency",
                "server": "tool", "ml-tool-config": "tool", "bucket": "bucket",
                "cloud-bucket": "bucket"}
# BOM component kinds and the asset kind each becomes.
_BOM_ASSETS = {"model": "model", "dataset": "dataset", "library": "dependency",
               "service": "tool", "ai-service": "tool", "model-source": "source"}
EXPIRED_WAIVER_RULE = "MW002"
GATE_FORMAT = "mlward-gate/1"
AUDIT_KIND = "mlward.audit.snapshot"


class DocumentError(InventoryError):
    """A document that is not a report, BOM, gate result or audit snapshot mlward made."""


def digest_of(data: Any) -> str:
    """SHA-256 of the canonical JSON of ``data`` (sorted keys, no spaces)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class FindingRow:
    rule_id: str
    severity: int
    path: str
    message: str
    evidence: str | None
    remediation: str | None
    cwe: str | None
    fingerprint: str
    status: str


@dataclass(frozen=True)
class AssetRow:
    kind: str
    name: str
    location: str
    format: str | None
    digest: str | None
    verdict: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Document:
    """A parsed document and what the inventory keeps of it."""

    kind: str
    action: str
    digest: str
    name: str  # the project's name when none is given: its root folder's
    root: str
    time: str
    body: Mapping[str, Any]
    verdict: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[FindingRow, ...] = ()
    assets: tuple[AssetRow, ...] = ()


def parse_document(data: Any, *, action: str | None = None) -> Document:
    """The :class:`Document` of a JSON value, or :class:`DocumentError` saying why not."""
    if not isinstance(data, Mapping):
        raise DocumentError("not a JSON object")
    if data.get("kind") == "mlward.inventory":
        return _bom(data, action or "bom")
    if data.get("kind") == AUDIT_KIND:
        return _audit(data, action or "audit")
    if data.get("format") == GATE_FORMAT:
        return _gate(data, action or "gate")
    if "schema_version" in data and "findings" in data and "tool" in data:
        return _report(data, action or "scan")
    raise DocumentError("not an mlward report, BOM or gate result (JSON written by --format "
                        "json, or `mlward bom --format inventory`)")


def _name(root: str) -> str:
    name = root.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return name or root or "project"


def _status(f: Finding) -> str:
    if f.rule_id == EXPIRED_WAIVER_RULE:
        return "expired-waiver"
    if f.suppression is not None:
        return "waived"
    if f.baseline == "unchanged":
        return "baseline"
    return "new" if f.baseline == "new" else "open"  # "new": not in the baseline it ran with


def _utc(moment: datetime | None) -> str:
    """A report's time as the inventory sorts times: UTC, ``YYYY-MM-DDTHH:MM:SSZ``."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def finding_row(f: Finding) -> FindingRow:
    return FindingRow(f.rule_id, int(f.severity), str(f.location), f.message, f.evidence,
                      f.remediation, f.cwe, f.fingerprint, _status(f))


def _asset_of_fact(fact: Fact, verdicts: Mapping[str, Any]) -> AssetRow | None:
    kind = _FACT_ASSETS.get(fact.kind)
    if kind is None:
        return None
    d = fact.data
    where = str(fact.location)
    name = str(d.get("name") or d.get("url") or where.rsplit("/", 1)[-1] or where)
    fmt = (d.get("format") or d.get("framework") or d.get("config") or d.get("ecosystem")
           or d.get("provider"))
    verdict = verdicts.get(fact.location.uri)
    return AssetRow(kind, name[:500], where, str(fmt)[:64] if fmt else None,
                    None, str(verdict) if verdict is not None else None, dict(d))


def _report(data: Mapping[str, Any], action: str) -> Document:
    try:
        report = Report.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DocumentError(f"not a valid mlward report: {type(exc).__name__}: {exc}") \
            from None
    return report_document(report, action)


def report_document(report: Report, action: str) -> Document:
    """The document of a scan report (any command's :class:`Report`)."""
    body = report.to_dict()
    code = report.exit_code(Severity.HIGH)
    verdicts = report.verdicts()
    assets = [a for a in (_asset_of_fact(f, verdicts) for f in report.facts) if a is not None]
    # Model files the scan recognised without a model fact (pickles, joblib...), by the
    # gate's own notion of a model format.
    known = {a.location for a in assets}
    for e in report.examined:
        where = str(e.location)
        family = model_family(e.format)
        if family is not None and where not in known:
            known.add(where)
            verdict = verdicts.get(e.location.uri)
            assets.append(AssetRow("model", where.rsplit("/", 1)[-1][:500], where,
                                   e.format[:64], None,
                                   str(verdict) if verdict is not None else None,
                                   {"family": family[0], "unpickles": family[1]}))
    root = report.root or ""
    return Document(
        kind="report", action=action, digest=digest_of(body), name=_name(root), root=root,
        time=_utc(report.finished or report.started), body=body,
        verdict={0: "pass", 1: "fail"}.get(code, "inconclusive"), counts=report.counts(),
        summary={"inputs": list(report.inputs), "examined": len(report.examined),
                 "inconclusive": len(report.inconclusive), "report_kind": str(report.kind)},
        findings=tuple(finding_row(f) for f in report.findings), assets=tuple(assets))


def _gate(data: Mapping[str, Any], action: str) -> Document:
    """A gate result (``mlward gate --format json``): its verdict and counted violations."""
    violations = data.get("violations")
    summary = data.get("summary")
    verdict = data.get("verdict")
    if not isinstance(violations, list) or not isinstance(summary, Mapping) or \
            verdict not in ("pass", "fail", "inconclusive") or \
            not all(isinstance(v, Mapping) for v in violations):
        raise DocumentError("not a valid mlward gate result")
    counts = dict.fromkeys(SEVERITIES, 0)
    for v in violations:
        if v.get("counts") and v.get("severity") in counts:
            counts[str(v["severity"])] += 1
    root = str(data.get("root") or "")
    policy = data.get("policy")
    policy = policy if isinstance(policy, Mapping) else {}
    return Document(
        kind="gate", action=action, digest=digest_of(data), name=_name(root), root=root,
        time=_utc(_parse_time(data.get("finished"))), body=dict(data), verdict=str(verdict),
        counts=counts, summary={"policy": str(policy.get("name", "")),
                                **{k: summary[k] for k in ("violations", "suppressed",
                                                           "errors", "blind") if k in summary}})


def _audit(data: Mapping[str, Any], action: str) -> Document:
    """An audit snapshot (``.mlward/snapshots/<id>.json``): complete or not, its findings."""
    from mlward._internal.audit.errors import AuditError
    from mlward._internal.audit.snapshot import Snapshot

    try:
        snap = Snapshot.from_dict(data)
    except (AuditError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DocumentError(f"not a valid mlward audit snapshot: {exc}") from None
    counts = dict.fromkeys(SEVERITIES, 0)
    for f in snap.findings:
        if not f.suppressed and f.severity in counts:
            counts[f.severity] += 1
    return Document(
        kind="audit", action=action, digest=snap.id, name=_name(snap.root), root=snap.root,
        time=_utc(_parse_time(snap.time)), body=snap.to_dict(),
        verdict="complete" if snap.complete else "incomplete", counts=counts,
        summary={"snapshot": snap.id[:16], "files": len(snap.files),
                 "steps": ", ".join(f"{r.name} {r.status}" for r in snap.steps),
                 "incomplete": len(snap.incomplete)})


def _parse_time(value: Any) -> datetime | None:
    text = str(value)
    try:  # Python 3.10's fromisoformat does not read a trailing Z
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None


def _bom(data: Mapping[str, Any], action: str) -> Document:
    from mlward._internal.bom.inventory import Inventory
    from mlward._internal.bom.inventory import InventoryError as BomError

    try:
        inventory = Inventory.from_dict(data)
    except (BomError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DocumentError(f"not a valid mlward BOM inventory: {exc}") from None
    assets = []
    for c in inventory.components:
        kind = _BOM_ASSETS.get(c.kind)
        if kind is None:
            continue
        digest = next((f"sha256:{f.digests['sha256']}" for f in c.files
                       if "sha256" in f.digests), None)
        props = dict(c.properties)
        fmt = props.get("format") or props.get("framework")
        assets.append(AssetRow(kind, c.name[:500], c.location, str(fmt)[:64] if fmt else None,
                               digest, c.verdict, {"ref": c.ref, **c.to_dict()}))
    body = inventory.to_dict()
    return Document(
        kind="bom", action=action, digest=inventory.digest(), name=inventory.name,
        root=inventory.root, time=inventory.created, body=body,
        verdict="incomplete" if inventory.is_incomplete else "pass",
        summary={"components": len(inventory.components),
                 "workflows": len(inventory.workflows)},
        assets=tuple(assets))
