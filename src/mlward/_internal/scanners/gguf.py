"""GGUF (llama.cpp) models: the header, metadata and tensor table, parsed in bounded memory.

The parser is ours, not the ``gguf`` package's: that reader memory-maps the file and trusts
the counts and lengths it finds, which is what a hostile file exploits. Here every count,
length and offset is checked against the bytes left in the file before anything is read or
allocated, and only the values a verdict needs are kept (templates and a few general keys);
large arrays such as the vocabulary are skipped element by element without being stored.
"""

from __future__ import annotations

import math
import struct
from typing import BinaryIO

from mlward._internal.scanners.facts import Tensor, model_fact
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward.errors import FormatError
from mlward.rules import GGUF_MALFORMED

MAGIC = b"GGUF"
MAX_KEY_BYTES = 1 << 16
MAX_KEPT_STRING = 4 << 20
"""Longest string value kept (templates); longer ones are still length-checked and skipped."""
MAX_ARRAY_DEPTH = 4
MAX_ARRAY_ITEMS = 8_000_000
"""Strings or arrays in one array (vocabularies hold a few hundred thousand); bounds the time
a hostile file can cost, since each element is read on its own."""
MAX_TENSORS = 1_000_000
MAX_DIMS = 8
DEFAULT_ALIGNMENT = 32

# Scalar value types: GGUF type id -> struct format.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# ggml tensor types: id -> (elements per block, bytes per block), from ggml's type table.
GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1),
    25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}
GGML_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
    30: "BF16", 34: "TQ1_0", 35: "TQ2_0",
}


class GGUFHeader:
    """What parsing found; filled in as the parser goes."""

    def __init__(self, version: int, tensor_count: int) -> None:
        self.version = version
        self.tensor_count = tensor_count
        self.strings: dict[str, str] = {}
        """String metadata values kept for analysis (templates, general.*)."""
        self.problems: list[tuple[str, int | None]] = []
        """Violations found (message, offset); parsing stops at the first structural one."""
        self.tensors: list[Tensor] = []
        """(name, ggml type, dimensions) of every tensor read (for the ``model`` fact)."""


def _keep(key: str, value: str) -> bool:
    """Keep templates (under any key: a server may be told which key to render) and the
    general information."""
    return "template" in key or key.startswith("general.") or "{%" in value or "{{" in value


class _Reader:
    """Reads a stream sequentially; every length is checked against the file size first."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.size = size
        self.pos = 0

    @property
    def left(self) -> int:
        return self.size - self.pos

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.left:
            raise FormatError(f"{what} needs {n} bytes but only {self.left} remain", self.pos)

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.f.read(n)
        if len(data) != n:
            raise FormatError(f"file ends inside {what}", self.pos)
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.f.seek(n, 1)
        self.pos += n

    def unpack(self, fmt: str, what: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.read(struct.calcsize(fmt), what))[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.unpack("<I", what))

    def u64(self, what: str) -> int:
        return int(self.unpack("<Q", what))

    def string(self, what: str, keep: bool) -> str | None:
        n = self.u64(f"length of {what}")
        self.need(n, what)
        if not keep or n > MAX_KEPT_STRING:
            self.skip(n, what)
            return None
        return self.read(n, what).decode("utf-8", errors="replace")

    def scalar_string(self, key: str) -> str | None:
        """A metadata string value, read when it could be kept (see :func:`_keep`)."""
        value = self.string(key, True)
        return value if value is not None and _keep(key, value) else None


def parse_gguf(f: BinaryIO, size: int) -> GGUFHeader:
    """Parse and validate a GGUF header.

    Raises :class:`FormatError` when the file is not GGUF at all; violations after the
    version are recorded in :attr:`GGUFHeader.problems` with what was read before them kept.
    """
    r = _Reader(f, size)
    if r.read(4, "magic") != MAGIC:
        raise FormatError("not a GGUF file", 0)
    version = r.u32("version")
    if version not in (1, 2, 3):
        raise FormatError(f"unknown GGUF version {version}", 4)
    count = r.u32 if version == 1 else r.u64
    tensor_count = count("tensor count")
    kv_count = count("metadata count")
    header = GGUFHeader(version, tensor_count)
    try:
        _parse_body(r, header, kv_count)
    except FormatError as exc:
        header.problems.append((str(exc), exc.offset))
    return header


def _parse_body(r: _Reader, header: GGUFHeader, kv_count: int) -> None:
    # Each key-value pair takes at least 12 bytes and each tensor entry at least 24.
    if kv_count * 12 > r.left:
        raise FormatError(f"metadata count {kv_count} cannot fit in the file", r.pos)
    if header.tensor_count * 24 > r.left:
        raise FormatError(f"tensor count {header.tensor_count} cannot fit in the file", r.pos)
    if header.tensor_count > MAX_TENSORS or kv_count > MAX_ARRAY_ITEMS:
        raise FormatError(f"{header.tensor_count} tensors and {kv_count} metadata entries",
                          r.pos)
    alignment = DEFAULT_ALIGNMENT
    for _ in range(kv_count):
        key_len = r.u64("metadata key length")
        if key_len > MAX_KEY_BYTES:
            raise FormatError(f"metadata key of {key_len} bytes", r.pos)
        key = r.read(key_len, "metadata key").decode("utf-8", errors="replace")
        vtype = r.u32(f"type of {key}")
        value = _value(r, vtype, key, 0)
        if isinstance(value, str):
            header.strings[key] = value
        if key == "general.alignment":
            if not isinstance(value, int) or value <= 0 or value & (value - 1):
                raise FormatError(f"general.alignment {value!r} is not a power of two", r.pos)
            alignment = value
    _check_tensors(r, header, alignment)


def _value(r: _Reader, vtype: int, key: str, depth: int) -> int | float | bool | str | None:
    if vtype in _SCALARS:
        return r.unpack(_SCALARS[vtype], key)
    if vtype == _STRING:
        return r.scalar_string(key)
    if vtype == _ARRAY:
        if depth >= MAX_ARRAY_DEPTH:
            raise FormatError(f"{key}: arrays nested deeper than {MAX_ARRAY_DEPTH}", r.pos)
        etype = r.u32(f"element type of {key}")
        n = r.u64(f"length of {key}")
        if etype in _SCALARS:
            r.skip(n * struct.calcsize(_SCALARS[etype]), f"array {key}")
        elif etype in (_STRING, _ARRAY):
            if n * 8 > r.left:
                raise FormatError(f"array {key} of {n} elements cannot fit in the file", r.pos)
            if n > MAX_ARRAY_ITEMS:
                raise FormatError(f"array {key} has {n} strings or arrays", r.pos)
            for _ in range(n):
                if etype == _STRING:
                    r.skip(r.u64(f"element length in {key}"), f"element of {key}")
                else:
                    _value(r, _ARRAY, key, depth + 1)
        else:
            raise FormatError(f"array {key} has unknown element type {etype}", r.pos)
        return None
    raise FormatError(f"metadata {key} has unknown type {vtype}", r.pos)


def _check_tensors(r: _Reader, header: GGUFHeader, alignment: int) -> None:
    tensors: list[tuple[str, int, int | None]] = []
    for i in range(header.tensor_count):
        name_len = r.u64(f"length of tensor {i} name")
        if name_len > MAX_KEY_BYTES:
            raise FormatError(f"tensor {i} name of {name_len} bytes", r.pos)
        name = r.read(name_len, f"tensor {i} name").decode("utf-8", errors="replace")
        n_dims = r.u32(f"dimensions of {name}")
        if n_dims > MAX_DIMS:
            raise FormatError(f"tensor {name} has {n_dims} dimensions", r.pos)
        dims = [r.u64(f"dimension of {name}") for _ in range(n_dims)]
        elements = math.prod(dims)
        ttype = r.u32(f"type of {name}")
        header.tensors.append((name, GGML_NAMES.get(ttype, f"type {ttype}"), dims))
        offset = r.u64(f"offset of {name}")
        nbytes = None
        if ttype in GGML_TYPES:
            block, block_bytes = GGML_TYPES[ttype]
            nbytes = -(-elements // block) * block_bytes
        tensors.append((name, offset, nbytes))
    data_start = -(-r.pos // alignment) * alignment
    data_size = r.size - data_start
    for name, offset, nbytes in tensors:
        if offset % alignment:
            header.problems.append((f"tensor {name} offset {offset} is not aligned to "
                                    f"{alignment}", data_start))
        if offset > data_size or (nbytes is not None and offset + nbytes > data_size):
            header.problems.append((f"tensor {name} ({nbytes} bytes at data offset {offset}) "
                                    f"ends past the end of the file", data_start + offset))


class GGUFScanner(Scanner):
    name = "gguf"
    priority = 50

    def sniff(self, source: Source) -> bool:
        return source.head(4) == MAGIC

    def scan(self, source: Source, ctx: ScanContext) -> None:
        with source.open() as f:
            size = source.size if source.size is not None else f.seek(0, 2)
            f.seek(0)
            try:
                header = parse_gguf(f, size)
            except FormatError as exc:
                ctx.add(GGUF_MALFORMED.finding(source.location.at(offset=exc.offset), str(exc)))
                return
        ctx.examined(source.location, self.name)
        general = header.strings
        model_fact(ctx, source.location, self.name, framework="llama.cpp",
                   tensors=header.tensors, architecture=general.get("general.architecture"),
                   name=general.get("general.name"), license=general.get("general.license"))
        for message, offset in header.problems:
            ctx.add(GGUF_MALFORMED.finding(source.location.at(offset=offset), message))
        from mlward._internal.scanners.templates import (
            report_template,  # loads on the first GGUF file
        )

        for key, text in sorted(header.strings.items()):
            if "template" in key or "{%" in text or "{{" in text:
                report_template(text, source.location.child(key), ctx)
