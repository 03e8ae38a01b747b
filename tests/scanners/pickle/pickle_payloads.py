"""Builders for hand-assembled pickle streams (test payloads are made in code, never committed).

Nothing here loads a pickle: these functions only write opcode bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import mlward
from mlward.findings import Finding, Report


def const(value: object) -> bytes:
    """Opcodes that push a constant: str, int, bool, None, bytes, tuple, list or dict."""
    if isinstance(value, bool):
        return b"\x88" if value else b"\x89"
    if isinstance(value, str):
        data = value.encode()
        return b"X" + struct.pack("<I", len(data)) + data
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)
    if value is None:
        return b"N"
    if isinstance(value, bytes):
        return b"B" + struct.pack("<I", len(value)) + value
    if isinstance(value, tuple):
        return b"(" + b"".join(const(v) for v in value) + b"t"
    if isinstance(value, dict):
        items = b"".join(const(k) + const(v) for k, v in value.items())
        return b"}" + (b"(" + items + b"u" if value else b"")
    if isinstance(value, list):
        return b"]" + (b"(" + b"".join(const(v) for v in value) + b"e" if value else b"")
    raise TypeError(value)


def header(proto: int) -> bytes:
    return b"\x80" + bytes([proto]) if proto >= 2 else b""


def ref(module: str, name: str, proto: int = 4) -> bytes:
    """Push the global ``module.name``: GLOBAL below protocol 4, STACK_GLOBAL from 4."""
    if proto >= 4:
        return const(module) + const(name) + b"\x93"
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def call(module: str, name: str, *args: object, proto: int = 4) -> bytes:
    """A whole pickle that calls ``module.name(*args)`` through REDUCE."""
    return header(proto) + ref(module, name, proto) + const(tuple(args)) + b"R."


def scan_bytes(tmp_path: Path, data: bytes, name: str = "model.pkl") -> Report:
    path = tmp_path / name
    path.write_bytes(data)
    return mlward.scan([path])


def evidence(report: Report, rule_id: str | None = None) -> set[str]:
    return {f.evidence for f in report.findings
            if f.evidence and (rule_id is None or f.rule_id == rule_id)}


def by_rule(report: Report, rule_id: str) -> list[Finding]:
    return [f for f in report.findings if f.rule_id == rule_id]


def rules(report: Report) -> set[str]:
    return {f.rule_id for f in report.findings}


def verdict(report: Report) -> str:
    verdicts = {str(v) for v in report.verdicts().values()}
    assert len(verdicts) == 1, verdicts
    return verdicts.pop()
