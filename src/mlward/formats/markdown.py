"""Markdown: a report as a pull-request comment (a summary line, a findings table, and what
could not be examined). Every value from a scanned file is escaped for Markdown tables."""

from __future__ import annotations

from mlward.findings import Report
from mlward.formats import RenderOptions


def _cell(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
            .replace("<", "&lt;").replace(">", "&gt;").replace("\n", " "))


def render_markdown(report: Report, options: RenderOptions) -> str:
    counts = report.counts()
    shown = [f for f in report.findings if f.suppression is None
             and (f.baseline != "unchanged" or options.show_all)]
    code = report.exit_code(options.fail_on)
    result = {0: "pass", 1: f"fail (findings at or above {options.fail_on})",
              2: "inconclusive (something could not be examined)"}[code]
    lines = [f"### mlward: {report.kind} report: {result}", ""]
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no findings"
    lines += [f"{summary}; {len({e.location.uri for e in report.examined})} item(s) examined.",
              ""]
    if shown:
        lines += ["| Severity | Rule | Location | Finding |", "| --- | --- | --- | --- |"]
        lines += [f"| {f.severity.label} | {f.rule_id} | {_cell(str(f.location))} | "
                  f"{_cell(f.message)} |" for f in shown]
        lines.append("")
    if report.inconclusive:
        lines += ["**Not examined** (never reported as clean):", ""]
        lines += [f"- {_cell(s.location.container_path)}: {_cell(s.reason)}"
                  for s in report.inconclusive]
        lines.append("")
    return "\n".join(lines)
