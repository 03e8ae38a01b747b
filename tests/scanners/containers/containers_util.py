"""Helpers for the container tests: payload pickles assembled from opcodes, and scanning."""

from __future__ import annotations

import struct
from pathlib import Path

import mlward
from mlward.findings import Report, Severity, Verdict


def evil_pickle(marker: Path, protocol: int = 2) -> bytes:
    """``os.system("touch MARKER")`` on load: a __reduce__ payload, assembled from opcodes."""
    cmd = f"touch {marker}".encode()
    body = b"cos\nsystem\n(X" + struct.pack("<I", len(cmd)) + cmd + b"tR."
    return (b"\x80" + bytes([protocol]) if protocol >= 2 else b"") + body


def scan_one(path: Path) -> Report:
    return mlward.scan([path])


def verdict(report: Report, path: Path) -> Verdict | None:
    return report.verdicts().get(report.uri_of(path))


def high(report: Report) -> list[str]:
    return [f"{f.rule_id} {f.location} {f.evidence}" for f in report.at_or_above(Severity.HIGH)]


def rules(report: Report) -> set[str]:
    return {f.rule_id for f in report.findings}
