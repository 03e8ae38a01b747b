"""Shared test helpers, and two checks that run under every test:

- every report the suite builds (through the one builder, whatever the command) validates
  against the published JSON schema and survives ``Report.from_dict(r.to_dict()) == r``;
- ``MLWARD_TEST_START_METHOD=spawn`` (or ``forkserver``) runs the suite's worker processes
  with that start method (``.ci/run`` runs the executor tests under both).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlward.findings import Report, ReportBuilder
from mlward.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPORT_SCHEMA = json.loads(
    (REPO / "src" / "mlward" / "schemas" / "report.schema.json").read_text(encoding="utf-8"))

INLINE = Settings(executor="inline")
"""For tests that change this process's state (a module made unimportable, a patched limit):
worker processes would not see the change."""


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A path that a payload would create if it ever ran. Tests assert it never exists."""
    return tmp_path / "PWNED_MARKER"


def check_report(report: Report) -> None:
    """The schema and the round trip, for one report."""
    data = json.loads(json.dumps(report.to_dict()))
    jsonschema.validate(data, REPORT_SCHEMA)
    assert Report.from_dict(data) == report, "Report.from_dict(to_dict()) differs"


@pytest.fixture(autouse=True, scope="session")
def _every_report_is_checked() -> Iterator[None]:
    original = ReportBuilder.build

    def build(self: ReportBuilder, **kwargs: Any) -> Report:
        report = original(self, **kwargs)
        check_report(report)
        return report

    ReportBuilder.build = build  # type: ignore[method-assign]
    try:
        yield
    finally:
        ReportBuilder.build = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def _start_method() -> Iterator[None]:
    method = os.environ.get("MLWARD_TEST_START_METHOD")
    if not method:
        yield
        return
    from mlward.executors import process

    original = process.start_method
    process.start_method = lambda: method  # type: ignore[assignment]
    try:
        yield
    finally:
        process.start_method = original  # type: ignore[assignment]
