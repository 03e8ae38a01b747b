"""Gate outputs on made-up results: SARIF kept within GitHub's upload limits, hostile names
escaped in Markdown and JUnit; and the JUnit and Markdown writers of scan reports."""

from __future__ import annotations

import gzip
import json
import random
import re
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import xmlschema

from mlward._internal.policy.document import Subject
from mlward._internal.policy.evaluate import GateResult, Violation, violation_fingerprint
from mlward._internal.policy.model import load_policy
from mlward._internal.policy.render import SarifLimits, render_junit, render_markdown, render_sarif
from mlward.findings import Location, ReportBuilder, Severity, Suppression, TargetKind
from mlward.formats import render
from mlward.rules import PICKLE_DANGEROUS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SARIF_SCHEMA = json.loads((FIXTURES / "schemas" / "sarif-schema-2.1.0.json").read_text())
JUNIT = xmlschema.XMLSchema(FIXTURES / "junit" / "junit.xsd")
HOSTILE = "models/<img src=x onerror=alert(1)>|[x](http://evil)`\x1b\x07.pkl"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def result(n: int, *, waived: int = 0, path: str = "m{}.pkl") -> GateResult:
    policy = load_policy(["strict"], base=Path())
    rules = list(policy.rules)
    rng = random.Random(7)
    violations = []
    for i in range(n):
        rule = rules[i % len(rules)]
        subject = Subject(f"k{i}", path.format(i), Location(path.format(i)))
        sup = Suppression("waiver", "accepted") if i < waived else None
        violations.append(Violation(rule, subject, violation_fingerprint(rule.id, f"k{i}"),
                                    sup))
    rng.shuffle(violations)
    return GateResult(policy, "cel", tuple(violations), (), (), (), ("scan",), "/p", ("/p",),
                      NOW, NOW, "9.9")


def test_sarif_is_cut_to_the_result_limit_keeping_what_counts_most() -> None:
    r = result(40, waived=5)
    rendered = render_sarif(r, SarifLimits(max_results=20))
    doc = json.loads(rendered.text)
    jsonschema.validate(doc, SARIF_SCHEMA)
    results = doc["runs"][0]["results"]
    assert len(results) == 20 and not any(x.get("suppressions") for x in results)
    kept = [r.policy.rules[x["ruleIndex"]].severity for x in results]
    assert kept == sorted(kept, reverse=True)
    assert min(kept) >= max(v.rule.severity for v in r.violations if v.counts
                            and v.fingerprint not in {x["partialFingerprints"]
                                                      ["mlward/gate/v1"] for x in results})
    [warning] = rendered.warnings
    assert warning.startswith("SARIF truncated to 20 of 40 results")
    notes = doc["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert notes[-1]["message"]["text"] == "20 result(s) left out to stay within the upload limits"


def test_sarif_is_cut_to_the_gzipped_size_limit() -> None:
    r = result(3000, path="models/" + "deep/" * 20 + "{}.pkl")
    full = render_sarif(r)
    assert full.warnings == () and len(json.loads(full.text)["runs"][0]["results"]) == 3000
    limit = len(gzip.compress(full.text.encode())) // 3
    cut = render_sarif(r, SarifLimits(max_gzip_bytes=limit))
    assert len(gzip.compress(cut.text.encode())) <= limit
    kept = len(json.loads(cut.text)["runs"][0]["results"])
    assert 0 < kept < 3000 and cut.warnings[0].startswith(f"SARIF truncated to {kept} of 3000")


def test_sarif_marks_waived_violations_as_suppressed() -> None:
    doc = json.loads(render_sarif(result(3, waived=1)).text)
    suppressed = [x for x in doc["runs"][0]["results"] if "suppressions" in x]
    assert len(suppressed) == 1
    assert suppressed[0]["suppressions"] == [{"kind": "external", "status": "accepted",
                                              "justification": "accepted"}]


def test_hostile_names_cannot_add_markup_or_break_xml() -> None:
    r = result(1, path=HOSTILE)
    md = render_markdown(r).text
    assert "<img" not in md and "&lt;img" in md
    assert not re.search(r"(?<!\\)\]\(", md) and "\x1b" not in md  # no link, no escapes
    junit = render_junit(r).text
    JUNIT.validate(junit)
    assert "\x1b" not in junit and "\ufffd" in junit


def report_with(name: str) -> object:
    b = ReportBuilder(TargetKind.FILES, started=NOW, version="9.9", root="/p")
    b.examine(Location(name), "pickle")
    b.examine(Location("ok.safetensors"), "safetensors")
    b.add(PICKLE_DANGEROUS.finding(Location(name), "pickle imports os.system"))
    b.add(PICKLE_DANGEROUS.finding(Location(name), "low one", severity=Severity.LOW))
    b.skip(Location("big.bin"), "too large", inconclusive=True)
    return b.build(finished=NOW)


def test_scan_reports_render_as_junit_and_markdown() -> None:
    report = report_with(HOSTILE)
    xml = render(report, "junit")  # type: ignore[arg-type]
    JUNIT.validate(xml)
    suite = JUNIT.to_dict(xml)["testsuite"][0]
    cases = {c["@name"]: c for c in suite["testcase"]}
    assert set(cases) == {HOSTILE.replace("\x1b", "\ufffd").replace("\x07", "\ufffd"),
                          "ok.safetensors", "big.bin"}
    assert (suite["@tests"], suite["@failures"], suite["@errors"]) == (3, 1, 1)
    md = render(report, "markdown")  # type: ignore[arg-type]
    assert md.startswith("## mlward files: failed")
    assert "<img" not in md and "### Not examined" in md
