"""A Markdown summary, for ``$GITHUB_STEP_SUMMARY`` and pull-request comments.

File names and messages come from scanned files: :func:`md` escapes everything Markdown or
the HTML GitHub allows in it would interpret, so a hostile name cannot add links, images or
markup to the summary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mlward.findings import Report, sort_findings
from mlward.formats import RenderOptions

MAX_ROWS = 200
"""Rows shown per table (a step summary is capped at 1 MiB)."""
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SPECIAL = re.compile(r"([\\`*_\[\]|~!])")


def md(text: str) -> str:
    """``text`` as literal Markdown on one line."""
    text = _CONTROL.sub("\ufffd", " ".join(str(text).split()))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of already-escaped cells (at most :data:`MAX_ROWS` rows, then a
    line saying how many were left out)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        out.append(f"\n_{len(rows) - MAX_ROWS} more not shown (see the full report)._")
    return "\n".join(out) + "\n"


def render_markdown(report: Report, options: RenderOptions | None = None) -> str:
    options = options or RenderOptions()
    code = report.exit_code(options.fail_on)
    status = {0: "passed", 1: "failed"}.get(code, "inconclusive")
    counts = ", ".join(f"{n} {label}" for label, n in report.counts().items() if n) or "none"
    lines = [f"## mlward {report.kind}: {status}", "",
             f"{len(report.examined)} item(s) examined; findings that count: {counts} "
             f"(fail on {options.fail_on.label} and above).", ""]
    shown = sort_findings(report.counted)
    if shown:
        lines.append(table(["Severity", "Rule", "Location", "Finding"], [
            [f.severity.label, f.rule_id, md(str(f.location)), md(f.message)] for f in shown]))
    if report.inconclusive:
        lines += ["### Not examined (the run cannot pass)", ""]
        lines.append(table(["Location", "Reason"], [
            [md(s.location.container_path), md(s.reason)] for s in report.inconclusive]))
    waived = [f for f in report.findings if f.suppression is not None]
    if waived:
        lines.append(f"_{len(waived)} waived finding(s) not shown._\n")
    return "\n".join(lines)
