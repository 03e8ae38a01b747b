"""safetensors: the format holds no code, so the risk is a header that misleads a loader.

The file is an 8-byte little-endian header length, a JSON header and the tensor bytes. The
header is validated the way a strict loader should, without the safetensors package (which
stops at the first error and hides what it was): length within the file and under the format's
100 MB cap, bounded well-formed JSON, known dtypes, shapes of non-negative integers, offsets in
range, contiguous and non-overlapping, byte size equal to shape x dtype size, string-only
metadata. Tensor bytes are never read. Metadata values that hide a pickle or code as base64
or hex are judged (:mod:`.encoded`).
"""

from __future__ import annotations

import math
import struct
from typing import Any

from mlward._internal.scanners.facts import model_fact
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward.findings import Location, Severity
from mlward.rules import SAFETENSORS_INVALID

MAX_HEADER_BYTES = 100_000_000
"""The cap the reference implementation enforces."""
MAX_METADATA_BYTES = 1 << 20
MAX_TENSORS = 1_000_000
FRAMEWORKS = {"pt": "pytorch", "tf": "tensorflow", "flax": "flax", "np": "numpy", "mlx": "mlx"}
"""The ``format`` key writers put in ``__metadata__``."""

# dtype -> bits per element.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32,
    "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def check_header(header: Any, data_size: int) -> list[tuple[str, bool]]:
    """Problems with a parsed header as (message, points_past_end_of_file)."""
    if not isinstance(header, dict):
        return [("header is not a JSON object", False)]
    problems: list[tuple[str, bool]] = []
    spans: list[tuple[int, int, str]] = []
    if len(header) > MAX_TENSORS:
        return [(f"header lists {len(header)} tensors", False)]
    for name, entry in header.items():
        if name == "__metadata__":
            problems.extend(_check_metadata(entry))
            continue
        if not isinstance(entry, dict):
            problems.append((f"tensor {name!r}: entry is not an object", False))
            continue
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if set(entry) - {"dtype", "shape", "data_offsets"}:
            problems.append((f"tensor {name!r}: unexpected keys "
                             f"{sorted(set(entry) - {'dtype', 'shape', 'data_offsets'})}", False))
        if dtype not in DTYPE_BITS:
            problems.append((f"tensor {name!r}: unknown dtype {dtype!r}", False))
        if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
            problems.append((f"tensor {name!r}: shape {shape!r} is not a list of sizes", False))
            shape = None
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(_is_count(o) for o in offsets) and offsets[0] <= offsets[1]):
            problems.append((f"tensor {name!r}: data_offsets {offsets!r} are not "
                             "[begin, end]", False))
            continue
        begin, end = offsets
        if end > data_size:
            problems.append((f"tensor {name!r}: data_offsets [{begin}, {end}] end past the "
                             f"{data_size} bytes of data", True))
        spans.append((begin, end, name))
        if shape is not None and dtype in DTYPE_BITS:
            bits = math.prod(shape) * DTYPE_BITS[dtype]
            if bits % 8 or bits // 8 != end - begin:
                problems.append((f"tensor {name!r}: shape {shape} of {dtype} needs {bits / 8:g} "
                                 f"bytes but data_offsets span {end - begin}", False))
    problems.extend(_check_layout(spans, data_size))
    return problems


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_metadata(entry: Any) -> list[tuple[str, bool]]:
    if not isinstance(entry, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in entry.items()):
        return [("__metadata__ is not a map of strings to strings", False)]
    size = sum(len(k) + len(v) for k, v in entry.items())
    if size > MAX_METADATA_BYTES:
        return [(f"__metadata__ holds {size} characters", False)]
    return []


def _check_layout(spans: list[tuple[int, int, str]], data_size: int) -> list[tuple[str, bool]]:
    problems: list[tuple[str, bool]] = []
    expected = 0
    for begin, end, name in sorted(spans):
        if begin < expected:
            problems.append((f"tensor {name!r} overlaps the tensor before it", False))
        elif begin > expected:
            problems.append((f"{begin - expected} unused bytes before tensor {name!r}", False))
        expected = max(expected, end)
    if expected < data_size:
        problems.append((f"{data_size - expected} bytes after the last tensor", False))
    return problems


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


class SafetensorsScanner(Scanner):
    name = "safetensors"
    priority = 50

    def sniff(self, source: Source) -> bool:
        head = source.head(10)
        if len(head) < 10 or head[8:10] not in (b'{"', b"{}", b"{ ", b"{\n"):
            return False
        # A text file can have '{' at byte 8, but its first 8 bytes are all printable.
        n: int = struct.unpack("<Q", head[:8])[0]
        return n >= 2 and not all(0x20 <= b < 0x7F or b in b"\t\r\n" for b in head[:8])

    def scan(self, source: Source, ctx: ScanContext) -> None:
        import json

        loc = source.location
        ctx.examined(loc, self.name)
        with source.open() as f:
            size = source.size if source.size is not None else f.seek(0, 2)
            f.seek(0)
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                self._add(ctx, loc, f"header length {n} is beyond the {size}-byte file", True)
                return
            if n > MAX_HEADER_BYTES:
                self._add(ctx, loc, f"header length {n} is over the {MAX_HEADER_BYTES}-byte "
                          "cap", False)
                return
            raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            self._add(ctx, loc, f"header is not valid JSON: {exc}", False)
            return
        except RecursionError:
            self._add(ctx, loc, "header JSON is nested too deep", False)
            return
        for message, past_end in check_header(header, size - 8 - n):
            self._add(ctx, loc, message, past_end)
        metadata = header.get("__metadata__") if isinstance(header, dict) else None
        if isinstance(metadata, dict):
            from mlward._internal.scanners.encoded import report_encoded

            for key, value in metadata.items():
                if isinstance(value, str):
                    report_encoded(value, loc, ctx, f"metadata value {key!r}", key)
        if isinstance(header, dict):
            meta = header.get("__metadata__")
            meta = dict(list(meta.items())[:32]) if isinstance(meta, dict) and not \
                _check_metadata(meta) else {}
            model_fact(ctx, loc, self.name, framework=FRAMEWORKS.get(meta.get("format", "")),
                       tensors=[(name, e["dtype"], e["shape"]) for name, e in header.items()
                                if isinstance(e, dict) and e.get("dtype") in DTYPE_BITS
                                and isinstance(e.get("shape"), list)
                                and all(_is_count(d) for d in e["shape"])],
                       metadata={k: v for k, v in meta.items() if len(v) <= 256} or None)

    @staticmethod
    def _add(ctx: ScanContext, loc: Location, message: str, past_end: bool) -> None:
        ctx.add(SAFETENSORS_INVALID.finding(
            loc, message, severity=Severity.HIGH if past_end else None))
