"""A bounded FlatBuffers table reader, for Arrow IPC schemas.

Arrow's schema (in IPC streams and files, Feather v2, and base64-encoded as Parquet's
``ARROW:schema`` metadata) is a FlatBuffers ``Schema`` table. Reading it here, rather than
through pyarrow, is the point: pyarrow before 14.0.1 unpickles ``arrow.py_extension_type``
metadata while it builds the schema (CVE-2023-47248), so the metadata must be read without
it. Every offset is checked against the buffer; nothing is trusted.
"""

from __future__ import annotations

import struct

MAX_VECTOR = 1_000_000


class FlatBufferError(ValueError):
    """An offset or length points outside the buffer."""


class Table:
    """One FlatBuffers table inside ``buf`` at ``pos``."""

    __slots__ = ("buf", "pos", "vsize", "vtable")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        soffset = _i32(buf, pos)
        self.vtable = pos - soffset
        self.vsize = _u16(buf, self.vtable)
        if self.vsize < 4 or self.vtable + self.vsize > len(buf):
            raise FlatBufferError("vtable outside the buffer")

    def _field(self, slot: int) -> int | None:
        """Absolute position of field ``slot``, or None when absent."""
        entry = 4 + 2 * slot
        if entry + 2 > self.vsize:
            return None
        rel = _u16(self.buf, self.vtable + entry)
        return self.pos + rel if rel else None

    def _indirect(self, slot: int) -> int | None:
        at = self._field(slot)
        return None if at is None else at + _u32(self.buf, at)

    def u8(self, slot: int, default: int = 0) -> int:
        at = self._field(slot)
        if at is None:
            return default
        _check(self.buf, at, 1)
        return self.buf[at]

    def table(self, slot: int) -> Table | None:
        at = self._indirect(slot)
        return None if at is None else Table(self.buf, at)

    def string(self, slot: int) -> bytes | None:
        at = self._indirect(slot)
        if at is None:
            return None
        n = _u32(self.buf, at)
        _check(self.buf, at + 4, n)
        return self.buf[at + 4:at + 4 + n]

    def tables(self, slot: int) -> list[Table]:
        """A vector of tables (empty when absent)."""
        at = self._indirect(slot)
        if at is None:
            return []
        n = _u32(self.buf, at)
        if n > MAX_VECTOR:
            raise FlatBufferError(f"vector of {n} entries")
        _check(self.buf, at + 4, 4 * n)
        out = []
        for i in range(n):
            elem = at + 4 + 4 * i
            out.append(Table(self.buf, elem + _u32(self.buf, elem)))
        return out


def root(buf: bytes) -> Table:
    return Table(buf, _u32(buf, 0))


def _check(buf: bytes, at: int, n: int) -> None:
    if at < 0 or n < 0 or at + n > len(buf):
        raise FlatBufferError("offset outside the buffer")


def _u16(buf: bytes, at: int) -> int:
    _check(buf, at, 2)
    return int(struct.unpack_from("<H", buf, at)[0])


def _u32(buf: bytes, at: int) -> int:
    _check(buf, at, 4)
    return int(struct.unpack_from("<I", buf, at)[0])


def _i32(buf: bytes, at: int) -> int:
    _check(buf, at, 4)
    return int(struct.unpack_from("<i", buf, at)[0])
