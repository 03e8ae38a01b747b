"""The report as Markdown, for ``$GITHUB_STEP_SUMMARY``, pull-request comments and wikis: the
verdict, what changed in data (``data diff``), the findings table and what was not examined.

File names, messages and evidence come from scanned files: :func:`md` escapes everything
Markdown or the HTML GitHub allows in it would interpret, so a hostile name cannot add links,
images, markup or table cells to the summary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlward.findings import Report, sort_findings
from mlward.formats import RenderOptions

MAX_ROWS = 200
"""Rows shown per table (a step summary is capped at 1 MiB)."""
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SPECIAL = re.compile(r"([\\`*_\[\]|~!])")


def md(text: object) -> str:
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
             f"- inputs: {', '.join(md(i) for i in report.inputs) or '-'}",
             f"- {len(report.examined)} item(s) examined; findings that count: {counts} "
             f"(fail on {options.fail_on.label} and above)", ""]
    for fact in report.facts:
        if fact.kind == "data-diff":
            lines += _data_diff(fact.data)
    shown = sort_findings([f for f in report.findings if f.counts or options.show_all])
    if shown:
        lines.append(table(["severity", "rule", "location", "message", "evidence"], [
            [f.severity.label, f.rule_id, md(f.location), md(f.message),
             md(f.evidence) if f.evidence is not None else ""] for f in shown]))
    if report.inconclusive:
        lines += ["### Not examined (the run cannot pass)", ""]
        lines.append(table(["location", "reason"], [
            [md(s.location.container_path), md(s.reason)] for s in report.inconclusive]))
    waived = [f for f in report.findings if f.suppression is not None]
    if waived and not options.show_all:
        lines.append(f"_{len(waived)} waived finding(s) not shown._\n")
    return "\n".join(lines)


def _data_diff(d: Mapping[str, Any]) -> list[str]:
    rows = [("rows", f"{d.get('old_rows')} -> {d.get('new_rows')}"),
            ("added", d.get("added")), ("removed", d.get("removed")),
            ("changed", d.get("changed")),
            ("labels changed on identical features", d.get("flipped")),
            ("dropped columns", ", ".join(d.get("dropped_columns") or []) or "-"),
            ("new columns", ", ".join(d.get("added_columns") or []) or "-"),
            ("compared on", ", ".join(d.get("compared_on") or []) or "-")]
    if d.get("label") is not None:
        rows.append(("label shift (total variation)", d.get("label_tvd")))
    title = f"### Data changes: {md(d.get('old_uri', d.get('old')))} -> {md(d.get('new'))}"
    return [title, "", table(["", ""], [[name, md(value)] for name, value in rows])]
