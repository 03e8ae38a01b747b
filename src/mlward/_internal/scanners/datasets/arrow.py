"""Parquet, Feather v2 and Arrow IPC files: schema metadata judged without pyarrow.

What in these files can run code when they are read is metadata, not data:

- an Arrow field whose extension type is ``arrow.py_extension_type`` carries a pickle as its
  extension metadata; pyarrow before 14.0.1 unpickles it while building the schema, before the
  caller sees a single row (CVE-2023-47248). The pickle is judged by the pickle scanner;
- extension types such as Ray Data's ``arrow_pickled_object`` store every value as a pickle
  that the registering library unpickles on conversion;
- ``pandas`` metadata names the dtypes ``to_pandas()`` rebuilds; names outside numpy's and
  pandas' own need whatever third-party code the reading program registered.

The Parquet footer (Thrift compact, :mod:`.thrift`) and the Arrow schema (FlatBuffers,
:mod:`.flatbuf`) are parsed here rather than with pyarrow because opening a file with a
vulnerable pyarrow is precisely what triggers the payload. No column data is read.
"""

from __future__ import annotations

import binascii
import io
import struct
from collections.abc import Mapping
from typing import Any, BinaryIO, NamedTuple

from mlward._internal.lazy import lazy_pattern
from mlward._internal.scanners.datasets.flatbuf import FlatBufferError, Table, root
from mlward._internal.scanners.datasets.thrift import ThriftError, read_struct
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.scanners.pickle import scan_pickle_stream
from mlward._internal.sources import Source
from mlward.findings import Location
from mlward.rules import (
    ARROW_PICKLED_EXTENSION,
    DATASET_MALFORMED,
    DATASET_METADATA,
    PICKLED_COLUMN,
)

PARQUET_MAGIC = b"PAR1"
PARQUET_ENCRYPTED_MAGIC = b"PARE"
ARROW_MAGIC = b"ARROW1"
CONTINUATION = b"\xff\xff\xff\xff"
MAX_FOOTER = 64 << 20
"""Largest Parquet footer or Arrow schema read; real ones are kilobytes to a few megabytes."""
MAX_FIELDS = 100_000
MAX_DEPTH = 64
MAX_COLUMNS_LISTED = 100

PY_EXTENSION = "arrow.py_extension_type"
PICKLED_VALUES = frozenset({"ray.data.arrow_pickled_object"})
"""Extension types whose values are pickles the registering library unpickles."""
KNOWN_EXTENSIONS = lazy_pattern(
    r"arrow\.(fixed_shape_tensor|variable_shape_tensor|json|uuid|opaque|bool8|"
    r"parquet\.variant)|pandas\.(period|interval)|geoarrow\.\w+|"
    r"ray\.data\.arrow_(tensor|tensor_v2|variable_shaped_tensor)")
"""Canonical and widely used extension types, rebuilt from JSON or plain parameters."""
PANDAS_DTYPE = lazy_pattern(
    r"(u?int(8|16|32|64)|U?Int(8|16|32|64)|float(16|32|64|128)?|Float(32|64)|bool|boolean|"
    r"object|str|string|string\[\w+\]|category|bytes|empty|mixed|decimal|date|time|"
    r"(datetime|timedelta)(64)?(\[[^\]]*\])?|datetimetz|period(\[[^\]]*\])?|"
    r"interval(\[[^\]]*\])?|complex(64|128|256)?|unicode|list\[.*\]|large_string|"
    r"[<>|=]?[biufcmMOSUV]\d*(\[[^\]]*\])?|Sparse\[.*\]|.*\[pyarrow\])")
"""numpy dtypes and pandas' built-in dtype names, as pandas metadata writes them."""


class ArrowField(NamedTuple):
    path: str
    """Dotted path of the field (``struct_col.child``)."""
    metadata: Mapping[str, bytes]


class Schema(NamedTuple):
    fields: list[ArrowField]
    metadata: Mapping[str, bytes]


class SchemaError(ValueError):
    """The schema metadata cannot be read."""


def _key_values(entries: list[Table]) -> dict[str, bytes]:
    out = {}
    for kv in entries:
        key = kv.string(0)
        if key is not None:
            out[key.decode("utf-8", "replace")] = kv.string(1) or b""
    return out


def read_schema(table: Table) -> Schema:
    """The fields (recursively) and metadata of an Arrow ``Schema`` table."""
    fields: list[ArrowField] = []

    def walk(entries: list[Table], prefix: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise SchemaError(f"fields nested deeper than {MAX_DEPTH}")
        for f in entries:
            if len(fields) >= MAX_FIELDS:
                raise SchemaError(f"more than {MAX_FIELDS} fields")
            name = (f.string(0) or b"").decode("utf-8", "replace")
            path = f"{prefix}.{name}" if prefix else name
            fields.append(ArrowField(path, _key_values(f.tables(6))))
            walk(f.tables(5), path, depth + 1)

    try:
        walk(table.tables(1), "", 0)
        return Schema(fields, _key_values(table.tables(2)))
    except (FlatBufferError, RecursionError) as exc:
        raise SchemaError(f"Arrow schema is malformed: {exc}") from None


def message_schema(data: bytes) -> Schema:
    """The schema in an encapsulated IPC message (continuation marker, length, Message)."""
    start = 8 if data[:4] == CONTINUATION else 4
    if len(data) < start:
        raise SchemaError("IPC message cut short")
    size = struct.unpack_from("<i", data, start - 4)[0]
    if size <= 0 or start + size > len(data):
        raise SchemaError(f"IPC message claims {size} bytes of metadata")
    try:
        message = root(data[start:start + size])
        if message.u8(1) != 1:  # MessageHeader.Schema
            raise SchemaError("the first IPC message is not a schema")
        header = message.table(2)
    except FlatBufferError as exc:
        raise SchemaError(f"IPC message is malformed: {exc}") from None
    if header is None:
        raise SchemaError("IPC schema message has no schema")
    return read_schema(header)


def judge_schema(schema: Schema, loc: Location, ctx: ScanContext) -> bool:
    """Report extension types that unpickle, and judge the pickles they carry; True when
    the schema declares any (then no reader should open the file to sample it)."""
    unknown: set[str] = set()
    pickling = False
    for field in schema.fields:
        raw = field.metadata.get("ARROW:extension:name")
        if raw is None:
            continue
        ext = raw.decode("utf-8", "replace")
        if ext == PY_EXTENSION:
            pickling = True
            payload = field.metadata.get("ARROW:extension:metadata", b"")
            ctx.add(ARROW_PICKLED_EXTENSION.finding(
                loc, f"column {field.path!r} has extension type {PY_EXTENSION}: pyarrow "
                "before 14.0.1 unpickles its metadata when the file is opened "
                "(CVE-2023-47248)", evidence=field.path,
                details={"column": field.path, "cve": "CVE-2023-47248",
                         "pickle_bytes": len(payload)}))
            scan_pickle_stream(io.BytesIO(payload),
                               loc.child(f"column {field.path} (extension metadata)"), ctx)
        elif ext in PICKLED_VALUES:
            pickling = True
            ctx.add(PICKLED_COLUMN.finding(
                loc, f"column {field.path!r} has extension type {ext}: every value is a "
                "pickle that is unpickled when the column is converted", evidence=field.path,
                details={"column": field.path, "extension": ext}))
        elif not KNOWN_EXTENSIONS.fullmatch(ext):
            unknown.add(ext)
    if unknown:
        names = sorted(unknown)
        ctx.add(DATASET_METADATA.finding(
            loc, f"schema names extension types that only code registered by the reader "
            f"rebuilds: {', '.join(names[:10])}", evidence=", ".join(names[:10]),
            details={"extension_types": names[:100]}))
    pandas = schema.metadata.get("pandas")
    if pandas is not None:
        judge_pandas(pandas, loc, ctx)
    return pickling


def judge_pandas(raw: bytes, loc: Location, ctx: ScanContext) -> None:
    """pandas metadata: the dtypes ``to_pandas()`` rebuilds."""
    import json

    try:
        doc = json.loads(raw)
        columns = doc["columns"]
        dtypes = {str(c.get("numpy_type")) for c in columns if isinstance(c, dict)}
    except (ValueError, RecursionError, KeyError, TypeError, AttributeError):
        ctx.add(DATASET_MALFORMED.finding(loc, "pandas metadata is not the JSON pandas writes",
                                          severity=DATASET_METADATA.severity))
        return
    unknown = sorted(d for d in dtypes if d != "None" and not PANDAS_DTYPE.fullmatch(d))
    if unknown:
        ctx.add(DATASET_METADATA.finding(
            loc, f"pandas metadata names dtypes that only registered third-party code "
            f"rebuilds: {', '.join(unknown[:10])}", evidence=", ".join(unknown[:10]),
            details={"dtypes": unknown[:100]}))


def _malformed(loc: Location, ctx: ScanContext, what: str, reason: str) -> None:
    ctx.add(DATASET_MALFORMED.finding(loc, f"{what}: {reason}"))
    ctx.skip(loc, f"{what}: {reason}", inconclusive=True)


def _tail(f: BinaryIO, size: int, n: int) -> bytes:
    f.seek(size - n)
    return f.read(n)


class ParquetScanner(Scanner):
    """Parquet files: the footer's key-value metadata (``ARROW:schema``, ``pandas``)."""

    name = "parquet"
    priority = 70

    def sniff(self, source: Source) -> bool:
        return source.head(4) in (PARQUET_MAGIC, PARQUET_ENCRYPTED_MAGIC)

    def scan(self, source: Source, ctx: ScanContext) -> None:
        import base64

        loc = source.location
        ctx.examined(loc, self.name)
        size = source.size or 0
        with source.open() as f:
            if size < 12:
                _malformed(loc, ctx, "Parquet file", "too short for a footer")
                return
            tail = _tail(f, size, 8)
            if tail[4:] == PARQUET_ENCRYPTED_MAGIC:
                ctx.skip(loc, "Parquet footer is encrypted: its metadata cannot be judged",
                         inconclusive=True)
                return
            length = struct.unpack_from("<I", tail)[0]
            if tail[4:] != PARQUET_MAGIC:
                _malformed(loc, ctx, "Parquet file", "no footer (truncated or not Parquet)")
                return
            if length > min(size - 12, MAX_FOOTER):
                _malformed(loc, ctx, "Parquet footer", f"claims {length} bytes")
                return
            footer = _tail(f, size, length + 8)[:length]
        try:
            meta = read_struct(footer, wanted={2, 3, 5, 6})
        except (ThriftError, RecursionError) as exc:
            _malformed(loc, ctx, "Parquet footer", str(exc))
            return
        kv = {}
        for item in _list(meta.get(5)):
            if isinstance(item, dict) and isinstance(item.get(1), bytes):
                value = item.get(2)
                kv[item[1].decode("utf-8", "replace")] = value if isinstance(value, bytes) else b""
        schema = Schema([], {})
        if "ARROW:schema" in kv:
            try:
                schema = message_schema(base64.b64decode(kv["ARROW:schema"], validate=False))
            except (SchemaError, binascii.Error, ValueError) as exc:
                _malformed(loc, ctx, "Parquet ARROW:schema metadata", str(exc))
        metadata = {**kv, **schema.metadata}
        pickling = judge_schema(Schema(schema.fields, metadata), loc, ctx)
        elements = [e for e in _list(meta.get(2)) if isinstance(e, dict)]
        leaves = [e.get(4) for e in elements[1:] if not e.get(5)]
        ctx.fact(loc, "dataset", format="parquet", rows=_int(meta.get(3)),
                 columns=[c.decode("utf-8", "replace") for c in leaves[:MAX_COLUMNS_LISTED]
                          if isinstance(c, bytes)],
                 column_count=len(leaves),
                 created_by=_text(meta.get(6)))
        if source.fs_path is not None and not pickling:
            from mlward._internal.data.sql import lit
            from mlward._internal.scanners.datasets.tabular import sample_table

            sample_table(f"read_parquet({lit(str(source.fs_path))})", loc, ctx, "the table")


class ArrowIpcScanner(Scanner):
    """Arrow IPC files (Feather v2) and streams: the schema in the footer and the first
    message (a reader may use either, so both are judged)."""

    name = "arrow-ipc"
    priority = 70

    def sniff(self, source: Source) -> bool:
        head = source.head()
        if head.startswith(ARROW_MAGIC):
            return True
        if not head.startswith(CONTINUATION) or len(head) < 8:
            return False
        try:
            return bool(message_schema(head).fields is not None)
        except (SchemaError, struct.error):
            return False

    def scan(self, source: Source, ctx: ScanContext) -> None:
        loc = source.location
        size = source.size or 0
        head = source.head()
        is_file = head.startswith(ARROW_MAGIC)
        ctx.examined(loc, "arrow-ipc-file" if is_file else "arrow-ipc-stream")
        schemas: list[Schema] = []
        with source.open() as f:
            if is_file:
                try:
                    schemas.append(self._footer_schema(f, size))
                except (SchemaError, FlatBufferError, struct.error) as exc:
                    _malformed(loc, ctx, "Arrow file footer", str(exc))
                f.seek(8)
            first = f.read(8)
            if first[:4] == CONTINUATION and len(first) == 8:
                length = struct.unpack_from("<i", first, 4)[0]
                if 0 < length <= MAX_FOOTER:
                    try:
                        schemas.append(message_schema(first + f.read(length)))
                    except SchemaError as exc:
                        _malformed(loc, ctx, "Arrow schema message", str(exc))
        for schema in schemas:
            judge_schema(schema, loc, ctx)
        if schemas:
            ctx.fact(loc, "dataset", format="arrow-ipc",
                     columns=[f.path for f in schemas[0].fields[:MAX_COLUMNS_LISTED]],
                     column_count=len(schemas[0].fields))

    @staticmethod
    def _footer_schema(f: BinaryIO, size: int) -> Schema:
        if size < 18:
            raise SchemaError("file too short for a footer")
        tail = _tail(f, size, 10)
        if tail[4:] != ARROW_MAGIC:
            raise SchemaError("no footer (truncated)")
        length = struct.unpack_from("<i", tail)[0]
        if length <= 0 or length > min(size - 18, MAX_FOOTER):
            raise SchemaError(f"footer claims {length} bytes")
        footer = root(_tail(f, size, length + 10)[:length])
        schema = footer.table(1)
        if schema is None:
            raise SchemaError("footer has no schema")
        return read_schema(schema)


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value.decode("utf-8", "replace")[:200] if isinstance(value, bytes) else None
