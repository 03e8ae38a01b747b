"""The report for people: findings grouped by file, most severe first, then a summary."""

from __future__ import annotations

import io
from collections import defaultdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlward.findings import Finding, Report, Severity, Verdict
from mlward.formats import RenderOptions

_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
_VERDICT_STYLE = {
    Verdict.DANGEROUS: "bold red",
    Verdict.INCONCLUSIVE: "bold yellow",
    Verdict.SUSPICIOUS: "yellow",
    Verdict.CLEAN: "green",
}


def render_text(report: Report, options: RenderOptions | None = None, *,
                width: int = 110) -> str:
    """Findings that count, by file, most severe first; waived findings only with
    ``verbose``, baseline-unchanged ones only with ``show_all``; then a summary."""
    options = options or RenderOptions()
    fail_on, color, verbose = options.fail_on, options.color, options.verbose
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=width,
                      highlight=False, soft_wrap=False)
    by_file: dict[str, list[Finding]] = defaultdict(list)
    waived = [f for f in report.findings if f.suppression is not None]
    unchanged = [f for f in report.findings if f.suppression is None and f.baseline == "unchanged"]
    for f in report.findings:
        if f.suppression is None and (f.baseline != "unchanged" or options.show_all):
            by_file[f.location.uri].append(f)
    verdicts = report.verdicts()

    for path, findings in sorted(by_file.items(), key=lambda kv: -max(f.severity for f in kv[1])):
        verdict = verdicts.get(path, Verdict.CLEAN)
        console.print(f"[bold]{escape(path)}[/]  [{_VERDICT_STYLE[verdict]}]{verdict}[/]")
        for f in findings:
            where = f.location
            inner = " > ".join(where.members)
            pos = str(where)[len(where.container_path):].strip()
            tail = " ".join(x for x in (inner and f"in {inner}", pos) if x)
            mark = " [dim](baseline)[/]" if f.baseline == "unchanged" else ""
            console.print(
                f"  [{_STYLE[f.severity]}]{f.severity.label.upper():8}[/] {f.rule_id} "
                f"{escape(f.message)}" + (f"  [dim]{escape(tail)}[/]" if tail else "") + mark
            )
            if f.evidence and f.evidence not in f.message:
                console.print(f"           [dim]evidence:[/] {escape(f.evidence)}")
            if verbose and f.remediation:
                console.print(f"           [dim]fix:[/] {escape(f.remediation)}")
        console.print()

    folders = report.folders()
    if folders:
        console.print("[bold]Folders examined as a whole[/] (worst verdict under each):")
        for p in folders:
            console.print(f"  {escape(p)}  [{_VERDICT_STYLE[verdicts[p]]}]{verdicts[p]}[/]")
        console.print()

    inconclusive = report.inconclusive
    if inconclusive:
        console.print("[bold yellow]Not fully examined[/] (never reported as clean):")
        for s in inconclusive:
            console.print(f"  {escape(s.location.container_path)}: {escape(s.reason)}")
        console.print()
    warnings = report.stats.get("warnings") or []
    if warnings:
        console.print("[bold yellow]Warnings:[/]")
        for w in warnings:
            console.print(f"  {escape(str(w))}")
        console.print()
    if verbose and waived:
        console.print("[dim]Waived:[/]")
        for f in waived:
            why = f.suppression
            assert why is not None
            console.print(f"  [dim]{f.rule_id} {escape(str(f.location))}: {escape(why.reason)}"
                          + (f" ({escape(why.owner)})" if why.owner else "")
                          + (f", until {why.expires}" if why.expires else "") + "[/]")
        console.print()
    if verbose:
        others = [s for s in report.skipped if not s.inconclusive]
        if others:
            console.print("[dim]Skipped:[/]")
            for s in others:
                console.print(f"  [dim]{escape(s.location.container_path)}: {escape(s.reason)}[/]")
            console.print()

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    n_files = len({e.location.uri for e in report.examined})
    counts = report.counts()
    if report.root:
        table.add_row("root", escape(report.root))
    table.add_row("examined", f"{n_files} file(s), {len(report.examined)} item(s)")
    table.add_row("findings", ", ".join(
        f"[{_STYLE[Severity.parse(k)]}]{v} {k}[/]" for k, v in counts.items() if v) or "none")
    verdict_counts: dict[Verdict, int] = defaultdict(int)
    for v in verdicts.values():
        verdict_counts[v] += 1
    table.add_row("verdicts", ", ".join(
        f"[{_VERDICT_STYLE[v]}]{n} {v}[/]" for v, n in sorted(
            verdict_counts.items(), key=lambda kv: -list(Verdict).index(kv[0]))) or "none")
    if waived:
        table.add_row("waived", f"{len(waived)} (not counted; -v lists them)")
    if unchanged:
        table.add_row("baseline", f"{len(unchanged)} unchanged finding(s) not counted"
                      + ("" if options.show_all else " (--all shows them)"))
    excluded = sum(report.stats.get("excluded", {}).values())
    skipped = len(report.skipped) - len(inconclusive) - excluded
    if skipped > 0:
        table.add_row("skipped", f"{skipped} (not model, code or config files; -v lists them)")
    if excluded:
        reasons = ", ".join(f"{n} {r.split(' (')[0]}" for r, n in
                            report.stats.get("excluded", {}).items())
        table.add_row("excluded", f"{excluded}: {escape(reasons)} (-v lists them)")
    remote = report.stats.get("object_storage")
    if remote:
        table.add_row("read", f"{remote['bytes_read']:,} of {remote['bytes_stored']:,} bytes "
                      f"stored, {remote['requests']:,} request(s), {remote['objects']:,} "
                      "remote object(s)")
    interrupted = report.stats.get("interrupted")
    if interrupted:
        table.add_row("interrupted", f"{interrupted['unfinished']:,} file(s) not examined: "
                      f"{escape(interrupted['reason'])} (--resume continues from a JSON "
                      "report)")
    code = report.exit_code(fail_on)
    result = {0: "[green]pass[/]", 1: f"[bold red]fail[/] (findings at or above {fail_on})",
              2: "[bold yellow]inconclusive[/] (something could not be examined)"}[code]
    table.add_row("result", result)
    console.print(table)
    return buf.getvalue()
