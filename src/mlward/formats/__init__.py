"""Report writers: text for people, JSON for programs, SARIF 2.1.0 for code-scanning tools."""

from __future__ import annotations

from mlward.findings import Report, Severity

FORMATS = ("text", "json", "sarif")


def render(report: Report, fmt: str, *, fail_on: Severity = Severity.HIGH,
           color: bool = False, verbose: bool = False) -> str:
    """The report as a string in ``fmt``."""
    if fmt == "json":
        from mlward.formats.json import render_json

        return render_json(report)
    if fmt == "sarif":
        from mlward.formats.sarif import render_sarif

        return render_sarif(report)
    from mlward.formats.text import render_text

    return render_text(report, fail_on=fail_on, color=color, verbose=verbose)
