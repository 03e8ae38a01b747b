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


# -- zips written field by field (for headers that disagree) --------------------------------


class RawMember:
    """One zip member as written: the local header and the central entry can each be told
    a different name, size, method, flags or CRC."""

    def __init__(self, name: str, data: bytes, *, method: int = 0, flags: int = 0,
                 stored: bytes | None = None, central: dict[str, object] | None = None,
                 local: dict[str, object] | None = None, listed: bool = True) -> None:
        import zlib

        self.name = name.encode()
        self.data = data
        if stored is None:
            if method == 8:
                c = zlib.compressobj(6, zlib.DEFLATED, -15)
                stored = c.compress(data) + c.flush()
            else:
                stored = data
        self.stored = stored
        self.fields = {"name": self.name, "method": method, "flags": flags,
                       "crc": zlib.crc32(data), "csize": len(stored), "usize": len(data)}
        self.central = {**self.fields, **(central or {})}
        self.local = {**self.fields, **(local or {})}
        self.listed = listed
        """False: in the local headers only, not in the central directory."""
        self.offset = 0

    def local_bytes(self) -> bytes:
        f = self.local
        name = f["name"] if isinstance(f["name"], bytes) else str(f["name"]).encode()
        return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, f["flags"], f["method"], 0, 0,
                           f["crc"], f["csize"], f["usize"], len(name), 0) + name + self.stored

    def central_bytes(self, offset: int | None = None) -> bytes:
        f = self.central
        name = f["name"] if isinstance(f["name"], bytes) else str(f["name"]).encode()
        return struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, f["flags"],
                           f["method"], 0, 0, f["crc"], f["csize"], f["usize"], len(name), 0,
                           0, 0, 0, 0, self.offset if offset is None else offset) + name


def eocd(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, 0)


def raw_zip(members: list[RawMember], *, prefix: bytes = b"", gaps: dict[int, bytes] | None = None,
            relative: bool = False) -> bytes:
    """Local headers (with ``gaps[i]`` written before member ``i``), the central directory of
    the listed members, the end record. Offsets count from the file's start, or from the end
    of ``prefix`` when ``relative`` (as a zip written first and prefixed later)."""
    out = bytearray(prefix)
    base = len(prefix) if relative else 0
    for i, m in enumerate(members):
        out += (gaps or {}).get(i, b"")
        m.offset = len(out) - base
        out += m.local_bytes()
    listed = [m for m in members if m.listed]
    cd = b"".join(m.central_bytes() for m in listed)
    start = len(out) - base
    return bytes(out) + cd + eocd(len(listed), len(cd), start)
