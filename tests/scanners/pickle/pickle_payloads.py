"""Builders for hand-assembled pickle streams (test payloads are made in code, never committed).

Nothing here loads a pickle: these functions only write opcode bytes.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import mlward
from mlward.findings import Finding, Report


class System:
    """Pickles as a call of ``os.system(command)`` (``pickle.dumps`` writes it; no test loads
    it in this process)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


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


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "little")


OPCODE_SAMPLES: dict[str, bytes] = {
    # One small pickle per opcode of protocols 0 to 5, each using the opcode the way the
    # unpickler accepts it. Names are pickletools' opcode names.
    "INT": b"I5\n.", "BININT": b"J\x01\x00\x00\x00.", "BININT1": b"K\x01.",
    "BININT2": b"M\x01\x00.", "LONG": b"L5L\n.", "LONG1": b"\x80\x02\x8a\x01\x05.",
    "LONG4": b"\x80\x02\x8b\x01\x00\x00\x00\x05.", "STRING": b"S'a'\n.",
    "BINSTRING": b"T\x01\x00\x00\x00a.", "SHORT_BINSTRING": b"U\x01a.",
    "BINBYTES": b"\x80\x03B\x01\x00\x00\x00a.", "SHORT_BINBYTES": b"\x80\x03C\x01a.",
    "BINBYTES8": b"\x80\x04\x8e" + _u64(1) + b"a.", "BYTEARRAY8": b"\x80\x05\x96" + _u64(1) + b"a.",
    "NEXT_BUFFER": b"\x80\x05\x97.", "READONLY_BUFFER": b"\x80\x05\x97\x98.", "NONE": b"N.",
    "NEWTRUE": b"\x80\x02\x88.", "NEWFALSE": b"\x80\x02\x89.", "UNICODE": b"Va\n.",
    "SHORT_BINUNICODE": b"\x80\x04\x8c\x01a.", "BINUNICODE": b"X\x01\x00\x00\x00a.",
    "BINUNICODE8": b"\x80\x04\x8d" + _u64(1) + b"a.", "FLOAT": b"F1.5\n.",
    "BINFLOAT": b"G?\xf8\x00\x00\x00\x00\x00\x00.", "EMPTY_LIST": b"].", "APPEND": b"]Na.",
    "APPENDS": b"](NNe.", "LIST": b"(Nl.", "EMPTY_TUPLE": b").", "TUPLE": b"(Nt.",
    "TUPLE1": b"\x80\x02N\x85.", "TUPLE2": b"\x80\x02NN\x86.", "TUPLE3": b"\x80\x02NNN\x87.",
    "EMPTY_DICT": b"}.", "DICT": b"(NNd.", "SETITEM": b"}NNs.", "SETITEMS": b"}(NNu.",
    "EMPTY_SET": b"\x80\x04\x8f.", "ADDITEMS": b"\x80\x04\x8f(N\x90.",
    "FROZENSET": b"\x80\x04(N\x91.", "POP": b"NN0.", "DUP": b"N2.", "MARK": b"(Nl.",
    "POP_MARK": b"(N1N.", "GET": b"Np0\n0g0\n.", "BINGET": b"Nq\x000h\x00.",
    "LONG_BINGET": b"Nr\x00\x00\x00\x000j\x00\x00\x00\x00.", "PUT": b"Np0\n.",
    "BINPUT": b"Nq\x00.", "LONG_BINPUT": b"Nr\x00\x00\x00\x00.", "MEMOIZE": b"\x80\x04N\x94.",
    "EXT1": b"\x80\x02\x82\x01.", "EXT2": b"\x80\x02\x83\x01\x00.",
    "EXT4": b"\x80\x02\x84\x01\x00\x00\x00.", "GLOBAL": b"cbuiltins\nint\n.",
    "STACK_GLOBAL": b"\x80\x04\x8c\x08builtins\x8c\x03int\x93.",
    "REDUCE": b"cbuiltins\nint\n)R.", "BUILD": b"cbuiltins\nint\n)R}b.",
    "INST": b"(ibuiltins\nint\n.", "OBJ": b"(cbuiltins\nint\no.",
    "NEWOBJ": b"\x80\x02cbuiltins\nint\n)\x81.", "NEWOBJ_EX": b"\x80\x04cbuiltins\nint\n)}\x92.",
    "PROTO": b"\x80\x02N.", "STOP": b"N.", "FRAME": b"\x80\x04\x95" + _u64(2) + b"N.",
    "PERSID": b"Pid\n.", "BINPERSID": b"NQ.",
}
