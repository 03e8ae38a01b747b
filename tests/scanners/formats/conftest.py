"""Helpers for the model-format tests: scan a path, pick findings by rule."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlward
from mlward.findings import Finding, Report, Severity


class Scanned:
    def __init__(self, report: Report) -> None:
        self.report = report

    def rules(self) -> set[str]:
        return {f.rule_id for f in self.report.findings}

    def by_rule(self, rule_id: str) -> list[Finding]:
        return [f for f in self.report.findings if f.rule_id == rule_id]

    def high(self) -> list[Finding]:
        return list(self.report.at_or_above(Severity.HIGH))

    def formats(self) -> set[str]:
        return {e.format for e in self.report.examined}


@pytest.fixture
def scan_path():
    def run(*paths: Path) -> Scanned:
        return Scanned(mlward.scan(list(paths)))

    return run
