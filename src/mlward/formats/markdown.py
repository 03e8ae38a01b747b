"""The report as Markdown: a summary, what changed in data (``data diff``), the findings
table and what was not examined. Every value from a scanned file is escaped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlward.findings import Report
from mlward.formats import RenderOptions

# Backslash-escapes for Markdown's own syntax; < and > as entities, so that no scanned name
# can open an HTML tag in a renderer that allows some.
_SPECIAL = str.maketrans({**{c: f"\\{c}" for c in "\\`*_[]|"}, "<": "&lt;", ">": "&gt;"})


def _md(value: object) -> str:
    return str(value).replace("\n", " ").translate(_SPECIAL)


def render_markdown(report: Report, options: RenderOptions | None = None) -> str:
    options = options or RenderOptions()
    code = report.exit_code(options.fail_on)
    result = {0: "pass", 1: f"fail (findings at or above {options.fail_on})",
              2: "inconclusive (something could not be examined)"}[code]
    counts = ", ".join(f"{n} {k}" for k, n in report.counts().items() if n) or "none"
    lines = [f"# mlward report ({report.kind})", "",
             f"- inputs: {', '.join(_md(i) for i in report.inputs) or '-'}",
             f"- findings: {counts}", f"- result: **{result}**", ""]
    for fact in report.facts:
        if fact.kind == "data-diff":
            lines += _data_diff(fact.data)
    shown = [f for f in report.findings if f.counts or options.show_all]
    if shown:
        lines += ["## Findings", "", "| severity | rule | location | message | evidence |",
                  "|---|---|---|---|---|"]
        lines += [f"| {f.severity.label} | {f.rule_id} | {_md(f.location)} | {_md(f.message)} "
                  f"| {_md(f.evidence) if f.evidence is not None else ''} |" for f in shown]
        lines.append("")
    if report.inconclusive:
        lines += ["## Not fully examined", ""]
        lines += [f"- {_md(s.location.container_path)}: {_md(s.reason)}"
                  for s in report.inconclusive]
        lines.append("")
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
    out = [f"## Data changes: {_md(d.get('old_uri', d.get('old')))} -> {_md(d.get('new'))}", "",
           "| | |", "|---|---|"]
    out += [f"| {name} | {_md(value)} |" for name, value in rows]
    out.append("")
    return out
