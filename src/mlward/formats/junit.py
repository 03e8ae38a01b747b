"""JUnit XML, for CI dashboards (Jenkins, GitLab unit-test reports, GitHub test reporters).

A report becomes one test suite with a test case per file examined: a file with findings at
or above ``--fail-on`` fails (one ``<failure>`` per finding), one that could not be examined
is an ``<error>``, findings below the threshold are listed in ``system-out``. The gate builds
its own suite (a test case per policy rule) with the same :func:`junit_xml`.

Everything that comes from a scanned file (paths, messages) is escaped by the XML writer, and
characters XML 1.0 cannot carry are replaced, so a hostile file name cannot break the report.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from mlward.findings import Finding, Report
from mlward.formats import RenderOptions

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Problem(NamedTuple):
    message: str
    type: str
    text: str = ""


class Case(NamedTuple):
    name: str
    classname: str
    failures: Sequence[Problem] = ()
    errors: Sequence[Problem] = ()
    output: str = ""
    file: str | None = None


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def junit_xml(suite: str, cases: Sequence[Case], *, timestamp: datetime, seconds: float,
              properties: Sequence[tuple[str, str]] = ()) -> str:
    """One ``<testsuites>`` document holding one suite of ``cases``."""
    failures = sum(1 for c in cases if c.failures and not c.errors)
    errors = sum(1 for c in cases if c.errors)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": str(errors),
              "skipped": "0", "time": f"{max(seconds, 0.0):.3f}"}
    root = ET.Element("testsuites", {"name": _clean(suite), **counts})
    s = ET.SubElement(root, "testsuite", {
        "name": _clean(suite), **counts,
        "timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%S")})
    if properties:
        props = ET.SubElement(s, "properties")
        for name, value in properties:
            ET.SubElement(props, "property", {"name": _clean(name), "value": _clean(value)})
    for c in cases:
        attrs = {"name": _clean(c.name), "classname": _clean(c.classname), "time": "0"}
        if c.file:
            attrs["file"] = _clean(c.file)
        case = ET.SubElement(s, "testcase", attrs)
        for tag, problems in (("error", c.errors), ("failure", c.failures)):
            for p in problems:
                el = ET.SubElement(case, tag, {"message": _clean(p.message),
                                               "type": _clean(p.type)})
                el.text = _clean(p.text) or None
        if c.output:
            ET.SubElement(case, "system-out").text = _clean(c.output)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _problem(f: Finding) -> Problem:
    return Problem(f"{f.rule_id}: {f.message}", f.severity.label,
                   "\n".join(x for x in (f"at {f.location}",
                                         f"evidence: {f.evidence}" if f.evidence else "",
                                         f.remediation or "") if x))


def render_junit(report: Report, options: RenderOptions | None = None) -> str:
    options = options or RenderOptions()
    paths: dict[str, list[Finding]] = {e.location.uri: [] for e in report.examined}
    for f in report.findings:
        paths.setdefault(f.location.uri, []).append(f)
    blind: dict[str, list[str]] = {}
    for s in report.inconclusive:
        paths.setdefault(s.location.uri, [])
        blind.setdefault(s.location.uri, []).append(f"{s.location.container_path}: {s.reason}")
    cases = []
    for path, findings in sorted(paths.items()):
        failing = [f for f in findings if f.counts and f.severity >= options.fail_on]
        below = [f for f in findings if f not in failing]
        cases.append(Case(
            path, f"mlward.{report.kind}", [_problem(f) for f in failing],
            [Problem(reason, "inconclusive") for reason in blind.get(path, [])],
            "\n".join(f"{f.severity.label} {f.rule_id}: {f.message}"
                      + (" (waived)" if f.suppression else "") for f in below),
            path if path in paths and "://" not in path else None))
    return junit_xml(f"mlward {report.kind}", cases, timestamp=report.started,
                     seconds=(report.finished - report.started).total_seconds(),
                     properties=[("mlward.version", report.version),
                                 ("fail_on", options.fail_on.label)])
