""".npy arrays and .npz archives, parsed without numpy.

An ``.npy`` is a magic string, a version, a header (a Python dict literal: dtype, order,
shape) and the array bytes. Arrays whose dtype holds Python objects store a pickle instead
of raw bytes (``np.load(..., allow_pickle=True)`` unpickles it): that pickle is judged; raw
array bytes are never read. An ``.npz`` is a zip of ``.npy`` members.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

from mlward._internal.scanners.archive import ZipScanner, is_zip
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.scanners.pickle import scan_pickle_stream
from mlward._internal.sources import Source
from mlward._internal.sources.archives import zip_names

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 20
"""numpy itself refuses headers over 10 000 bytes unless told otherwise."""


class NpyHeaderError(ValueError):
    """The header does not follow the .npy format."""


def read_header(f: Any) -> dict[str, Any]:
    """Parse the header at the start of ``f`` and leave ``f`` at the array data."""
    prefix = f.read(8)
    if len(prefix) < 8 or prefix[:6] != MAGIC:
        raise NpyHeaderError("not an .npy file")
    major = prefix[6]
    if major == 1:
        (length,) = struct.unpack("<H", f.read(2))
    elif major in (2, 3):
        raw = f.read(4)
        if len(raw) < 4:
            raise NpyHeaderError("header length cut short")
        (length,) = struct.unpack("<I", raw)
    else:
        raise NpyHeaderError(f"unknown format version {major}")
    if length > MAX_HEADER:
        raise NpyHeaderError(f"header claims {length} bytes (limit {MAX_HEADER})")
    text = f.read(length)
    if len(text) < length:
        raise NpyHeaderError("header cut short")
    import ast  # the parser loads on the first .npy header, not on every run

    try:
        header = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise NpyHeaderError(f"header is not a literal: {type(exc).__name__}") from None
    if not isinstance(header, dict) or "descr" not in header:
        raise NpyHeaderError("header has no 'descr'")
    return header


def has_objects(descr: Any, depth: int = 0) -> bool:
    """True when a dtype description holds Python objects (then the data is a pickle)."""
    if depth > 32:
        return True  # absurd nesting: numpy would not build it; judge the data as a pickle
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list):
        return any(isinstance(field, tuple) and len(field) >= 2
                   and has_objects(field[1], depth + 1) for field in descr)
    return False


def itemsize(descr: Any, depth: int = 0) -> int | None:
    """Bytes per element of a dtype description without objects (None when unknown)."""
    if isinstance(descr, str):
        m = _DESCR.fullmatch(descr)
        if m is None:
            return None
        kind, digits = m.group(1), m.group(2)
        if not digits:
            return 1 if kind == "?" else None
        return int(digits) * (4 if kind == "U" else 1)
    if isinstance(descr, list) and depth <= 32:
        total = 0
        for field in descr:
            if not isinstance(field, tuple) or len(field) not in (2, 3):
                return None
            size = itemsize(field[1], depth + 1)
            count = _count(field[2]) if len(field) == 3 else 1
            if size is None or count is None:
                return None
            total += size * count
        return total
    return None


def _count(shape: Any) -> int | None:
    """Elements in an array of ``shape`` (a tuple of non-negative ints, or one int)."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return None
    return math.prod(shape)


def _check_length(header: dict[str, Any], source: Source, data_start: int,
                  ctx: ScanContext) -> None:
    """A plain array shorter than its header says cannot be loaded: the file is damaged."""
    size, count = itemsize(header["descr"]), _count(header.get("shape"))
    if source.size is None:
        return
    if size is None or count is None:
        ctx.skip(source.location, "the .npy header's dtype or shape is not one mlward can "
                 "size: whether the array is complete is not checked", inconclusive=True)
    elif source.size - data_start < size * count:
        ctx.skip(source.location, f"truncated .npy: the header describes {size * count} bytes "
                 f"of array data, the file holds {source.size - data_start}", inconclusive=True)


_DESCR = re.compile(r"[<>|=]?([a-zA-Z?])(\d*)(?:\[\w+\])?")


class NpyScanner(Scanner):
    name = "numpy-npy"
    priority = 150

    def sniff(self, source: Source) -> bool:
        return source.head(6) == MAGIC

    def scan(self, source: Source, ctx: ScanContext) -> None:
        with source.open() as f:
            try:
                header = read_header(f)
            except (NpyHeaderError, struct.error) as exc:
                ctx.examined(source.location, self.name)
                ctx.skip(source.location, f"malformed .npy header: {exc}", inconclusive=True)
                return
            shape = header.get("shape")
            if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
                ctx.fact(source.location, "array", dtype=str(header["descr"])[:64],
                         shape=list(shape))
            if not has_objects(header["descr"]):
                ctx.examined(source.location, self.name)
                _check_length(header, source, f.tell(), ctx)
                return
            ctx.examined(source.location, "numpy-npy (object array: pickle)")
            scan_pickle_stream(f, source.location, ctx)


class NpzScanner(ZipScanner):
    """``np.savez`` / ``np.savez_compressed``: a zip whose members are all ``.npy``.

    Read like any zip (each member by content); recognised first so the report names it.
    """

    name = "numpy-npz"
    priority = 160

    def sniff(self, source: Source) -> bool:
        names = zip_names(source) if is_zip(source) else None
        files = [n for n in names or [] if not n.endswith("/")]
        return bool(files) and all(n.endswith(".npy") for n in files)
