"""The Markdown writer: a pull-request comment whose table no scanned value can break."""

from __future__ import annotations

from datetime import datetime, timezone

from mlward.findings import Finding, Location, ReportBuilder, Severity, TargetKind
from mlward.formats import RenderOptions, render


def test_markdown_table_escapes_hostile_names() -> None:
    now = datetime.now(timezone.utc)
    builder = ReportBuilder(TargetKind.FILES, started=now, version="0-test", root="/p")
    hostile = "a|b\n<script>alert(1)</script>`x`![i](http://x/y.png).pkl"
    builder.add(Finding("MW101", Severity.CRITICAL, Location(hostile), "pickle | imports"))
    builder.skip(Location("big.bin"), "too large", inconclusive=True)
    text = render(builder.build(finished=now), "markdown", RenderOptions())
    lines = text.splitlines()
    assert lines[0] == "## mlward files: failed"  # a finding outranks what was not seen
    row = next(line for line in lines if line.startswith("| critical |"))
    assert row.count(" | ") == 4  # five cells: nothing in the values split the row
    assert "<script>" not in text and "&lt;script&gt;" in row
    assert "a\\|b" in row and "pickle \\| imports" in row
    assert "\\!\\[i\\]" in row  # no image can be smuggled in
    assert "| big.bin | too large |" in text
