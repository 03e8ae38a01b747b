"""Zarr arrays whose chunks are pickles (the numcodecs ``Pickle`` codec).

A Zarr array is a folder: metadata (``.zarray`` for format 2, ``zarr.json`` for format 3,
and a group's consolidated ``.zmetadata``, which ``open_consolidated`` trusts instead) and one
file per chunk. Object arrays need an object codec; with ``pickle`` every chunk is unpickled
on read. The codecs are read from the metadata JSON (never through zarr, which would build
them), each chunk is decompressed here with bounds (zlib, gzip, bz2, lzma by the standard
library; blosc, lz4 and zstd through numcodecs, the ``data`` extra, after their headers say
how large the result is) and the bytes are judged by the pickle scanner.
"""

from __future__ import annotations

import importlib
import io
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from mlward._internal.scanners.interface import DirectoryScanner, ScanContext
from mlward._internal.scanners.pickle import scan_pickle_stream
from mlward.errors import MissingExtra
from mlward.findings import Location
from mlward.rules import DATASET_MALFORMED

METADATA = frozenset({".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"})
MAX_METADATA_BYTES = 16 << 20
MAX_CHUNKS = 10_000
MAX_CHUNK_BYTES = 256 << 20
PICKLE_CODECS = frozenset({"pickle", "numcodecs.pickle"})


class ZarrError(ValueError):
    """The metadata is not what Zarr writes, or a chunk cannot be decoded."""


class Array(NamedTuple):
    folder: Path
    """Where the chunks are."""
    metadata: str
    """Which metadata file (or consolidated entry) declared the codecs."""
    decoders: tuple[str, ...]
    """Byte codecs to undo, in decoding order, before the pickle."""


def _read_json(path: Path) -> Any:
    import json

    if path.is_symlink() or not path.is_file():
        return None
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise ZarrError(f"{path.name} larger than {MAX_METADATA_BYTES} bytes")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise ZarrError(f"{path.name} is not JSON: {exc}") from None


def _codec_id(codec: Any) -> str:
    if not isinstance(codec, dict):
        raise ZarrError("a codec is not a JSON object")
    name = codec.get("id", codec.get("name"))
    if not isinstance(name, str):
        raise ZarrError("a codec has no id")
    return name.lower()


def _after_pickle(codecs: Any, where: str, what: str) -> list[str] | None:
    """The codec ids applied after the pickle codec (None when there is no pickle codec)."""
    codecs = codecs or []
    if not isinstance(codecs, list):
        raise ZarrError(f"{where}: {what} is not a list")
    ids = [_codec_id(c) for c in codecs]
    if not PICKLE_CODECS & set(ids):
        return None
    return ids[max(i for i, c in enumerate(ids) if c in PICKLE_CODECS) + 1:]


def pickled_array(meta: Any, folder: Path, where: str) -> Array | None:
    """The array's decoding plan when its metadata declares a pickle codec, else None."""
    if not isinstance(meta, dict):
        raise ZarrError(f"{where} is not a JSON object")
    if meta.get("zarr_format") == 3 or "codecs" in meta:  # one codec chain
        after = _after_pickle(meta.get("codecs"), where, "codecs")
    else:  # format 2: filters, then the compressor
        after = _after_pickle(meta.get("filters"), where, "filters")
        compressor = meta.get("compressor")
        if after is not None and compressor:
            after.append(_codec_id(compressor))
    return None if after is None else Array(folder, where, tuple(reversed(after)))


# -- decoders ----------------------------------------------------------------------------


def _stdlib(module: str, name: str, error: str | None) -> Callable[[bytes, int], bytes]:
    """A decoder from the standard library's ``module``, imported with the first chunk it
    decodes (most scans meet no Zarr store). Its ``error``, and a stream that does not end,
    mean a damaged chunk."""
    def decode(data: bytes, limit: int) -> bytes:
        lib = importlib.import_module(module)
        errors: tuple[type[Exception], ...] = (getattr(lib, error),) if error else ()
        d = getattr(lib, name)()
        try:
            out = d.decompress(data, limit + 1)
        except errors as exc:
            raise ValueError(str(exc)) from None  # decode_chunk names the codec
        if len(out) > limit:
            raise ZarrError(f"chunk decompresses past {limit} bytes")
        if not d.eof:  # cut short, or damaged where no check noticed
            raise ValueError("its stream does not end")
        return bytes(out)

    return decode


def _zlib_decoder(wbits: int) -> Callable[[bytes, int], bytes]:
    def decode(data: bytes, limit: int) -> bytes:
        d = zlib.decompressobj(wbits)
        out = d.decompress(data, limit + 1)
        if len(out) > limit:
            raise ZarrError(f"chunk decompresses past {limit} bytes")
        if not d.eof:  # cut short
            raise ValueError("its stream does not end")
        return out

    return decode


def _declared_size(codec: str, data: bytes) -> int:
    """The decoded size a numcodecs chunk header declares (checked before decoding)."""
    if codec == "blosc":
        if len(data) < 16:
            raise ZarrError("blosc chunk header cut short")
        return int(struct.unpack_from("<I", data, 4)[0])
    if codec == "lz4":
        if len(data) < 4:
            raise ZarrError("lz4 chunk header cut short")
        return int(struct.unpack_from("<I", data, 0)[0])
    # zstd frame header: descriptor, optional window byte, dictionary id, content size.
    if len(data) < 6 or data[:4] != b"\x28\xb5\x2f\xfd":
        raise ZarrError("not a zstd frame")
    desc = data[4]
    single = desc >> 5 & 1
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[desc & 3]
    size = (1 if single else 0, 2, 4, 8)[desc >> 6]
    if not size or pos + size > len(data):
        raise ZarrError("zstd frame does not declare its size")
    value = int.from_bytes(data[pos:pos + size], "little")
    return value + 256 if size == 2 else value


def _numcodecs(codec: str) -> Callable[[bytes, int], bytes]:
    def decode(data: bytes, limit: int) -> bytes:
        if _declared_size(codec, data) > limit:
            raise ZarrError(f"{codec} chunk declares more than {limit} bytes")
        try:
            import numcodecs  # only byte codecs are built, from fixed ids
        except ImportError:
            raise MissingExtra("numcodecs", "data") from None
        factory = {"blosc": "Blosc", "lz4": "LZ4", "zstd": "Zstd"}[codec]
        return bytes(getattr(numcodecs, factory)().decode(data))

    return decode


DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "zlib": _zlib_decoder(zlib.MAX_WBITS),
    "gzip": _zlib_decoder(16 + zlib.MAX_WBITS),
    "bz2": _stdlib("bz2", "BZ2Decompressor", None),  # it raises OSError and ValueError
    "lzma": _stdlib("lzma", "LZMADecompressor", "LZMAError"),
    "blosc": _numcodecs("blosc"),
    "lz4": _numcodecs("lz4"),
    "zstd": _numcodecs("zstd"),
    "bytes": lambda data, limit: data,  # v3's plain array-to-bytes codec
}


def decode_chunk(data: bytes, decoders: tuple[str, ...], limit: int) -> bytes:
    for codec in decoders:
        decoder = DECODERS.get(codec)
        if decoder is None:
            raise ZarrError(f"codec {codec!r} is not one mlward decodes")
        try:
            data = decoder(data, limit)
        except (zlib.error, OSError, ValueError, RuntimeError) as exc:
            if isinstance(exc, ZarrError):
                raise
            raise ZarrError(f"{codec} chunk is damaged: {exc}") from None
    return data


def _chunks(folder: Path) -> Iterator[Path]:
    """Chunk files under an array folder (nested keys too), metadata and sub-arrays left out."""
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            entries = sorted(here.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink() or entry.name in METADATA:
                continue
            if entry.is_dir():
                if not any((entry / m).exists() for m in (".zarray", "zarr.json", ".zgroup")):
                    stack.append(entry)
            elif entry.is_file():
                yield entry


class ZarrScanner(DirectoryScanner):
    """A Zarr array or group folder."""

    name = "zarr"

    def matches(self, directory: Path) -> bool:
        return any((directory / m).is_file() for m in (".zarray", "zarr.json", ".zmetadata"))

    def scan(self, directory: Path, location: Location, ctx: ScanContext) -> None:
        try:
            arrays = self._arrays(directory)
        except ZarrError as exc:
            ctx.add(DATASET_MALFORMED.finding(location, f"Zarr metadata: {exc}"))
            ctx.skip(location, f"Zarr metadata cannot be read: {exc}", inconclusive=True)
            return
        ctx.examined(location, "zarr (pickle codec)" if arrays else "zarr")
        for array in arrays:
            self._judge(array, directory, location, ctx)

    @staticmethod
    def _arrays(directory: Path) -> list[Array]:
        arrays = []
        for name in (".zarray", "zarr.json"):
            meta = _read_json(directory / name)
            if meta is not None and (name == ".zarray" or meta.get("node_type") == "array"):
                array = pickled_array(meta, directory, name)
                if array is not None:
                    arrays.append(array)
        consolidated = _read_json(directory / ".zmetadata")
        if consolidated is not None:
            entries = consolidated.get("metadata") if isinstance(consolidated, dict) else None
            if not isinstance(entries, dict):
                raise ZarrError(".zmetadata has no metadata table")
            for key, meta in entries.items():
                if not str(key).endswith(".zarray"):
                    continue
                sub = str(key)[:-len(".zarray")].strip("/")
                if ".." in sub.split("/") or sub.startswith("/"):
                    raise ZarrError(f".zmetadata names an array outside the group: {key}")
                array = pickled_array(meta, directory / sub, f".zmetadata[{key}]")
                if array is not None:
                    arrays.append(array)
        return arrays

    @staticmethod
    def _judge(array: Array, directory: Path, location: Location, ctx: ScanContext) -> None:
        codecs = " then ".join(array.decoders) or "none"
        ctx.fact(location, "dataset", format="zarr", pickle_codec=True,
                 declared_in=array.metadata, decoders=list(array.decoders))
        for n, chunk in enumerate(_chunks(array.folder)):
            rel = chunk.relative_to(directory).as_posix()
            where = location.inside(rel)
            if n >= MAX_CHUNKS:
                ctx.skip(location, f"more than {MAX_CHUNKS} pickled chunks: the rest not "
                         "judged", inconclusive=True)
                return
            try:
                if chunk.stat().st_size > MAX_CHUNK_BYTES:
                    raise ZarrError(f"chunk larger than {MAX_CHUNK_BYTES} bytes")
                data = decode_chunk(chunk.read_bytes(), array.decoders, MAX_CHUNK_BYTES)
            except MissingExtra as exc:
                ctx.skip(where, f"pickled Zarr chunk ({codecs}) not judged: "
                         f"{exc.diagnostics()}", inconclusive=True)
                continue
            except (ZarrError, OSError) as exc:
                ctx.skip(where, f"pickled Zarr chunk not judged: {exc}", inconclusive=True)
                continue
            scan_pickle_stream(io.BytesIO(data),
                               where.child(f"{codecs}-decoded") if array.decoders else where,
                               ctx)
