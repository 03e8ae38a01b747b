"""The gate's outputs: text, JSON, SARIF, JUnit XML and Markdown of a :class:`GateResult`.

They share the report writers' pieces (SARIF locations and levels, the JUnit document, the
Markdown escaping). SARIF is cut to what GitHub code scanning accepts (``SarifLimits``): the
results that matter most are kept and a warning says what was left out.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from mlward._internal.policy.evaluate import GateResult, Violation
from mlward.formats.junit import Case, Problem, junit_xml
from mlward.formats.markdown import md, table
from mlward.formats.sarif import _LEVEL, _SECURITY_SEVERITY, ROOT, SCHEMA, sarif_location
from mlward.rules import POLICY_NOT_EVALUATED, POLICY_VIOLATION

FINGERPRINT = "mlward/gate/v1"
MAX_SHOWN = 5
"""Findings shown under one violation in text output."""


class SarifLimits(NamedTuple):
    """GitHub code scanning's upload limits (docs: "SARIF support for code scanning")."""

    max_results: int = 25_000
    max_gzip_bytes: int = 10 * 1000 * 1000


GITHUB_LIMITS = SarifLimits()


class Rendered(NamedTuple):
    text: str
    warnings: tuple[str, ...] = ()


def _order(v: Violation) -> tuple[object, ...]:
    return (not v.counts, -v.rule.severity, v.rule.id, v.subject.display)


# --- text -------------------------------------------------------------------------------------


def render_text(result: GateResult) -> Rendered:
    p = result.policy
    out = [f"mlward gate: {result.verdict.upper()}  policy {p.name} ({p.digest[:19]}...), "
           f"engine {result.engine}, checks {', '.join(result.checks) or 'none'}", ""]
    for rule, violations, errors in result.by_rule():
        counted = [v for v in violations if v.counts]
        mark = "FAIL" if counted else "ERROR" if errors else "ok  "
        waived = len(violations) - len(counted)
        out.append(f"{mark} {rule.id} [{rule.severity.label}] {rule.title}"
                   + (f": {len(counted)} violation(s)" if counted else "")
                   + (f" ({waived} waived)" if waived else ""))
        for v in sorted(counted, key=_order):
            out.append(f"     {v.subject.display}")
            for f in v.subject.findings[:MAX_SHOWN]:
                out.append(f"       {f.rule_id} {f.severity.label}: {f.message}")
            if len(v.subject.findings) > MAX_SHOWN:
                out.append(f"       ... and {len(v.subject.findings) - MAX_SHOWN} more")
        if counted and rule.remediation:
            out.append(f"     fix: {rule.remediation}")
        for e in errors[:MAX_SHOWN]:
            out.append(f"     could not evaluate ({POLICY_NOT_EVALUATED.id})"
                       f"{f' on {e.subject.display}' if e.subject else ''}: {e.message}")
        if len(errors) > MAX_SHOWN:
            out.append(f"     ... and {len(errors) - MAX_SHOWN} more")
    if result.blind:
        out += ["", f"Not examined ({len(result.blind)}; the gate cannot pass while a check "
                "is blind):"]
        out += [f"  [{c}] {s.location.container_path}: {s.reason}"
                for c, s in result.blind[:20]]
        if len(result.blind) > 20:
            out.append(f"  ... and {len(result.blind) - 20} more")
    for w in result.expired_waivers:
        out.append(f"Expired waiver ({w.source}): {w.rule or w.fingerprint} ended {w.expires}")
    counted_n = len(result.counted)
    out += ["", f"{len(result.policy.rules)} rule(s), {counted_n} violation(s), "
            f"{len(result.violations) - counted_n} waived, {len(result.errors)} evaluation "
            f"error(s), {len(result.blind)} item(s) not examined: {result.verdict}"]
    return Rendered("\n".join(out) + "\n")


def render_json(result: GateResult) -> Rendered:
    return Rendered(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")


# --- SARIF ------------------------------------------------------------------------------------


def _sarif_rule(rule: Any) -> dict[str, Any]:
    return {
        "id": rule.id, "name": "".join(w.capitalize() for w in rule.id.split("-")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description or rule.title},
        "help": {"text": rule.remediation or rule.title},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {"severity": rule.severity.label, "policy": rule.where,
                       "mlward-rule": POLICY_VIOLATION.id,
                       "security-severity": _SECURITY_SEVERITY[rule.severity],
                       "tags": ["security", "policy"]},
    }


def _sarif_result(v: Violation, index: int) -> dict[str, Any]:
    behind = v.subject.findings
    text = v.message + (f" ({behind[0].rule_id}: {behind[0].message})" if behind else "")
    out: dict[str, Any] = {
        "ruleId": v.rule.id, "ruleIndex": index, "level": _LEVEL[v.rule.severity],
        "message": {"text": text},
        "locations": [sarif_location(v.subject.location)],
        "partialFingerprints": {FINGERPRINT: v.fingerprint},
        "properties": {"severity": v.rule.severity.label,
                       "findings": [f.fingerprint for f in behind]},
    }
    if v.suppression is not None:
        s = v.suppression
        out["suppressions"] = [{"kind": "inSource" if s.kind == "inline" else "external",
                                "status": "accepted", "justification": s.reason}]
    if v.baseline is not None:
        out["baselineState"] = v.baseline
    return out


def render_sarif(result: GateResult, limits: SarifLimits = GITHUB_LIMITS) -> Rendered:
    """Violations as SARIF results (waived ones with ``suppressions``), within ``limits``:
    over the result count or the gzipped size, the least important results are left out
    (waived first, then the least severe) and a notification and a warning say so."""
    index = {r.id: n for n, r in enumerate(result.policy.rules)}
    ordered = sorted(result.violations, key=_order)
    keep = min(len(ordered), limits.max_results)
    warnings: list[str] = []
    while True:
        doc = _sarif_document(result, [_sarif_result(v, index[v.rule.id])
                                       for v in ordered[:keep]], len(ordered) - keep)
        text = json.dumps(doc, indent=2) + "\n"
        size = len(gzip.compress(text.encode(), compresslevel=6))
        if size <= limits.max_gzip_bytes or keep == 0:
            break
        keep = int(keep * min(0.9, limits.max_gzip_bytes / size))
    if keep < len(ordered):
        warnings.append(f"SARIF truncated to {keep} of {len(ordered)} results to stay within "
                        f"GitHub's limits ({limits.max_results} results per run, "
                        f"{limits.max_gzip_bytes} bytes gzipped); the JSON output has them all")
    return Rendered(text, tuple(warnings))


def _sarif_document(result: GateResult, results: list[dict[str, Any]],
                    left_out: int) -> dict[str, Any]:
    notes = [{"level": "warning", "message": {"text": f"[{c}] {s.location.container_path}: "
                                                      f"{s.reason}"}}
             for c, s in result.blind]
    notes += [{"level": "error", "message": {"text": f"rule {e.rule.id} could not be "
                                                     f"evaluated: {e.message}"},
               "descriptor": {"id": POLICY_NOT_EVALUATED.id}}
              for e in result.errors]
    if left_out:
        notes.append({"level": "warning", "message": {
            "text": f"{left_out} result(s) left out to stay within the upload limits"}})
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "mlward-gate", "version": result.version,
                            "semanticVersion": result.version,
                            "informationUri": "https://github.com/mlward/mlward",
                            "rules": [_sarif_rule(r) for r in result.policy.rules]}},
        "automationDetails": {"id": f"mlward-gate/{result.policy.name}/"},
        "invocations": [{
            "executionSuccessful": not (result.blind or result.errors),
            "startTimeUtc": result.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endTimeUtc": result.finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "toolExecutionNotifications": notes,
        }],
        "properties": {"policy": result.policy.name, "policyDigest": result.policy.digest,
                       "verdict": result.verdict},
        "originalUriBaseIds": {ROOT: {"uri": Path(result.root).as_uri() + "/"}},
        "results": results,
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


# --- JUnit and Markdown -----------------------------------------------------------------------


def render_junit(result: GateResult) -> Rendered:
    """A test case per policy rule: it fails with one ``<failure>`` per violation, and is an
    ``<error>`` when its condition could not be evaluated."""
    cases = []
    for rule, violations, errors in result.by_rule():
        counted = [v for v in violations if v.counts]
        cases.append(Case(
            rule.id, f"mlward.gate.{result.policy.name}",
            [Problem(v.message, rule.severity.label,
                     "\n".join([f"at {v.subject.location}",
                                *(f"{f.rule_id}: {f.message}" for f in v.subject.findings),
                                f"fix: {rule.remediation}" if rule.remediation else ""]))
             for v in sorted(counted, key=_order)],
            [Problem(e.message, "evaluation-error",
                     e.subject.display if e.subject else "") for e in errors],
            "\n".join(f"waived: {v.message} ({v.suppression.reason if v.suppression else ''})"
                      for v in violations if not v.counts)))
    if result.blind:
        cases.append(Case("checks-examined-everything", "mlward.gate.checks", [], [
            Problem(f"{s.location.container_path}: {s.reason}", f"inconclusive ({c})")
            for c, s in result.blind]))
    return Rendered(junit_xml(
        f"mlward gate ({result.policy.name})", cases, timestamp=result.started,
        seconds=(result.finished - result.started).total_seconds(),
        properties=[("policy", result.policy.name), ("policy.digest", result.policy.digest),
                    ("engine", result.engine), ("mlward.version", result.version)]))


def render_markdown(result: GateResult) -> Rendered:
    icon = {"pass": "✅", "fail": "❌"}.get(result.verdict, "⚠️")
    p = result.policy
    lines = [f"## {icon} mlward gate: {result.verdict}", "",
             f"Policy **{md(p.name)}** (`{p.digest[:19]}…`), engine {result.engine}, "
             f"checks: {', '.join(result.checks)}.", ""]
    rows = []
    for rule, violations, errors in result.by_rule():
        counted = sum(v.counts for v in violations)
        status = "❌ fail" if counted else "⚠️ error" if errors else "✅ pass"
        rows.append([status, f"`{rule.id}`", rule.severity.label, md(rule.title),
                     str(counted), str(len(violations) - counted)])
    lines.append(table(["", "Rule", "Severity", "Title", "Violations", "Waived"], rows))
    counted_v = sorted(result.counted, key=_order)
    if counted_v:
        lines += ["### Violations", ""]
        lines.append(table(["Rule", "What", "Behind it", "Fix"], [
            [f"`{v.rule.id}`", md(v.subject.display),
             md("; ".join(f"{f.rule_id} {f.message}" for f in v.subject.findings[:3])),
             md(v.rule.remediation)] for v in counted_v]))
    if result.blind:
        lines += ["### Not examined (the gate cannot pass)", ""]
        lines.append(table(["Check", "Location", "Reason"], [
            [c, md(s.location.container_path), md(s.reason)] for c, s in result.blind]))
    return Rendered("\n".join(lines))


GATE_FORMATS: dict[str, Callable[[GateResult], Rendered]] = {
    "text": render_text, "json": render_json, "sarif": render_sarif, "junit": render_junit,
    "markdown": render_markdown,
}
