"""A bounded reader of the Thrift compact protocol, for Parquet footers.

Parquet's ``FileMetaData`` is a Thrift struct in the compact protocol. Only a few of its
fields matter for a verdict (the schema's column names, the row count, the key-value
metadata that carries ``ARROW:schema`` and ``pandas``); the row-group statistics, often the
bulk of a footer, are skipped without being built. Structs come back as ``{field id: value}``.
Every length is checked against the bytes left, nesting and element counts are bounded:
hostile footers raise :class:`ThriftError`, never more.
"""

from __future__ import annotations

import struct
from collections.abc import Container

MAX_DEPTH = 32
MAX_ELEMENTS = 5_000_000
"""List, set and map elements read (or skipped) in one footer, all together."""

_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = (
    range(13))


class ThriftError(ValueError):
    """The bytes are not a well-formed compact-protocol struct (or exceed a bound)."""


class CompactReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.elements = 0

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            raise ThriftError("footer ends inside a value")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def _varint(self) -> int:
        shift = result = 0
        while True:
            b = self._byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ThriftError("varint longer than 64 bits")

    def _zigzag(self) -> int:
        n = self._varint()
        return (n >> 1) ^ -(n & 1)

    def _binary(self) -> bytes:
        n = self._varint()
        if n > len(self.data) - self.pos:
            raise ThriftError(f"a string claims {n} bytes, more than the footer holds")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def _count(self, n: int) -> int:
        self.elements += n
        if self.elements > MAX_ELEMENTS:
            raise ThriftError(f"more than {MAX_ELEMENTS} list elements")
        if n > len(self.data) - self.pos and n > 0:
            # Every element takes at least one byte, except booleans packed in field headers
            # (never in lists): a larger count is a lie.
            raise ThriftError(f"a list claims {n} elements, more than the footer holds")
        return n

    def value(self, kind: int, depth: int, keep: bool = True) -> object:
        """Read one value of ``kind``; ``keep=False`` skips it (returns None)."""
        if depth > MAX_DEPTH:
            raise ThriftError(f"structs nested deeper than {MAX_DEPTH}")
        if kind in (_TRUE, _FALSE):
            return kind == _TRUE
        if kind == _BYTE:
            return self._byte()
        if kind in (_I16, _I32, _I64):
            return self._zigzag()
        if kind == _DOUBLE:
            if self.pos + 8 > len(self.data):
                raise ThriftError("footer ends inside a double")
            self.pos += 8
            return struct.unpack_from("<d", self.data, self.pos - 8)[0] if keep else None
        if kind == _BINARY:
            raw = self._binary()
            return raw if keep else None
        if kind in (_LIST, _SET):
            header = self._byte()
            n = header >> 4
            if n == 15:
                n = self._varint()
            elem = header & 0x0F
            items = [self._element(elem, depth + 1, keep) for _ in range(self._count(n))]
            return items if keep else None
        if kind == _MAP:
            n = self._varint()
            if not n:
                return {} if keep else None
            types = self._byte()
            out: dict[object, object] = {}
            for _ in range(self._count(n)):
                k = self._element(types >> 4, depth + 1, keep)
                v = self._element(types & 0x0F, depth + 1, keep)
                if keep and isinstance(k, (bytes, int, bool)):
                    out[k] = v
            return out if keep else None
        if kind == _STRUCT:
            return self.struct(depth + 1, None if keep else ())
        raise ThriftError(f"unknown compact type {kind}")

    def _element(self, kind: int, depth: int, keep: bool) -> object:
        if kind in (_TRUE, _FALSE):  # a boolean list element is a whole byte
            return self._byte() == _TRUE
        return self.value(kind, depth, keep)

    def struct(self, depth: int = 0, wanted: Container[int] | None = None) -> dict[int, object]:
        """Read a struct; fields not in ``wanted`` (None: all) are skipped."""
        fields: dict[int, object] = {}
        last = 0
        while True:
            header = self._byte()
            kind = header & 0x0F
            if kind == _STOP:
                return fields
            delta = header >> 4
            fid = last + delta if delta else self._zigzag()
            last = fid
            keep = wanted is None or fid in wanted
            value = self.value(kind, depth, keep)
            if keep:
                fields[fid] = value


def read_struct(data: bytes, wanted: Container[int] | None = None) -> dict[int, object]:
    """The top-level struct in ``data``, with only the ``wanted`` fields built."""
    return CompactReader(data).struct(0, wanted)
