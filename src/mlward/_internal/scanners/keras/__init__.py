"""Keras models: legacy HDF5 (.h5) files and Keras 3 .keras archives, read without Keras.

- HDF5: the ``model_config`` and ``training_config`` attributes are read with h5py and judged
  as JSON (:mod:`.config`); the file's links and datasets are checked for references to other
  files (external links, external storage, virtual datasets), none of which is followed.
- .keras: a zip holding ``config.json``, ``metadata.json`` and ``model.weights.h5``. The zip is
  read through the archive helpers (member names, links, bombs and overlaps are checked
  there); ``config.json`` is judged, and every other member (the weights file, assets) is
  handed back to the scan engine and judged by its own content.
"""

from __future__ import annotations

import struct
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlward._internal.scanners.archive import is_zip
from mlward._internal.scanners.facts import Tensor, model_fact
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward._internal.sources.archives import Spool, too_deep, zip_names
from mlward.errors import FormatError, MissingExtra
from mlward.findings import Location
from mlward.rules import HDF5_EXTERNAL, KERAS_MALFORMED

if TYPE_CHECKING:
    from mlward._internal.sources.zips import ZipArchive

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# HDF5 allows a user block before the superblock, at 0 or a power of two from 512.
_HDF5_OFFSETS = (0, 512, 1024, 2048)
MAX_CONFIG_BYTES = 64 << 20
MAX_HDF5_OBJECTS = 100_000
CONFIG_ATTRS = ("model_config", "training_config")
# What h5py and zipfile raise on damaged input.
_HDF5_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError, IndexError,
                SystemError,  # h5py raises SystemError on some damaged files
                OverflowError)  # and OverflowError on sizes that do not fit its types


def report_config(text: str | bytes, location: Location, ctx: ScanContext, what: str) -> None:
    """Parse and judge one Keras config; malformed or too deep is a finding."""
    import json

    from mlward._internal.scanners.keras.config import analyse_config  # on first Keras file

    try:
        config = json.loads(text)
        issues = analyse_config(config)
    except (ValueError, UnicodeDecodeError, RecursionError, FormatError) as exc:
        ctx.add(KERAS_MALFORMED.finding(location, f"{what} cannot be judged: {exc}"))
        ctx.skip(location, f"{what} cannot be judged", inconclusive=True)
        return
    if what in ("model_config", "config.json") and isinstance(config, dict):
        inner = config.get("config")
        layers = inner.get("layers") if isinstance(inner, dict) else None
        model_fact(ctx, location, "keras", framework="keras",
                   architecture=str(config.get("class_name") or "") or None,
                   layers=len(layers) if isinstance(layers, list) else None)
    for issue in issues:
        ctx.add(issue.rule.finding(location, issue.message, evidence=issue.evidence or None,
                                   severity=issue.severity,
                                   details={"config_path": f"{what}:{issue.path}",
                                            **issue.details}))


class KerasHDF5Scanner(Scanner):
    """HDF5 files: Keras models and weights, and any other HDF5 (checked for external files)."""

    name = "hdf5"
    priority = 60

    def sniff(self, source: Source) -> bool:
        head = source.head()
        return any(head[o:o + 8] == HDF5_MAGIC for o in _HDF5_OFFSETS)

    def scan(self, source: Source, ctx: ScanContext) -> None:
        try:
            import h5py
        except ImportError:
            ctx.skip(source.location, MissingExtra("h5py", "keras").diagnostics(),
                     inconclusive=True)
            return
        if source.fs_path is not None:
            self._scan_file(h5py, source.fs_path, source.location, ctx)
        else:
            with source.open() as f:
                self._scan_file(h5py, f, source.location, ctx)

    def _scan_file(self, h5py: Any, target: Path | BinaryIO, loc: Location,
                   ctx: ScanContext) -> None:
        try:
            self._judge(h5py, h5py.File(target, "r"), target, loc, ctx)
        except _HDF5_ERRORS as exc:  # damaged structure: what was judged before it stands
            ctx.add(KERAS_MALFORMED.finding(loc, f"HDF5 file is damaged: {exc}"))
            ctx.skip(loc, "HDF5 file is damaged", inconclusive=True)

    def _judge(self, h5py: Any, h: Any, target: Path | BinaryIO, loc: Location,
               ctx: ScanContext) -> None:
        with h:
            found = [name for name in CONFIG_ATTRS if name in h.attrs]
            ctx.examined(loc, "keras-hdf5" if found else self.name)
            if found and (problem := global_heap_problem(target)):
                # A variable-length attribute is read through the global heap: libhdf5
                # would never return (an object that does not advance its parser).
                ctx.add(KERAS_MALFORMED.finding(loc, f"HDF5 file is damaged: {problem}"))
                ctx.skip(loc, "HDF5 global heap would hang the HDF5 library; configs not "
                         "read", inconclusive=True)
                return
            for name in found:
                value = h.attrs[name]
                if isinstance(value, (str, bytes)) and len(value) <= MAX_CONFIG_BYTES:
                    report_config(value, loc, ctx, name)
                else:
                    ctx.add(KERAS_MALFORMED.finding(loc, f"{name} attribute is not a bounded "
                                                    "JSON string"))
            _check_external(h5py, h, loc, ctx)
            if found or (loc.members and loc.members[-1].endswith("weights.h5")):
                model_fact(ctx, loc, "keras-weights", framework="keras",
                           tensors=_weights(h5py, h))


def _weights(h5py: Any, h: Any) -> list[Tensor]:
    """(name, dtype, shape) of the file's datasets: a Keras model's weights."""
    found: list[Tensor] = []

    def visit(name: str, obj: Any) -> bool | None:
        if isinstance(obj, h5py.Dataset):
            found.append((name, str(obj.dtype), tuple(obj.shape or ())))
        return True if len(found) >= MAX_HDF5_OBJECTS else None

    h.visititems(visit)
    return found


_GCOL = b"GCOL"
_MAX_HEAP_OBJECTS = 1 << 20


def global_heap_problem(target: Path | BinaryIO) -> str | None:
    """Why libhdf5 would loop forever reading a global heap collection of this file, or
    None. Its parser advances by each object's declared size, and a free-space object of
    size 0 (or a size that wraps the pointer) never advances: every collection (``GCOL``)
    in the file is walked the same way first. ``target`` is a path or a seekable stream."""
    with open(target, "rb") if isinstance(target, Path) else nullcontext(target) as f:
        f.seek(0)
        head = f.read(max(_HDF5_OFFSETS) + 8)
        base = next((o for o in _HDF5_OFFSETS if head[o:o + 8] == HDF5_MAGIC), 0)
        f.seek(base + 8)
        sb = f.read(8)  # superblock: version, then (v0/v1) versions and sizes, (v2/v3) sizes
        if len(sb) < 8:
            return None
        lengths = sb[6] if sb[0] in (0, 1) else sb[2]
        if lengths not in (2, 4, 8):
            return None  # libhdf5 refuses such a superblock before reading any heap
        offset, tail = 0, b""
        f.seek(0)
        while chunk := f.read(8 << 20):
            data = tail + chunk
            start = offset - len(tail)
            at = data.find(_GCOL)
            while at >= 0:
                problem = _collection_problem(f, start + at, lengths)
                if problem:
                    return problem
                at = data.find(_GCOL, at + 1)
            tail, offset = data[-3:], offset + len(chunk)
            f.seek(offset)
    return None


def _collection_problem(f: Any, at: int, lengths: int) -> str | None:
    fmt = {2: "<H", 4: "<I", 8: "<Q"}[lengths]
    f.seek(at + 8)
    raw = f.read(lengths)
    if len(raw) < lengths:
        return None
    size = struct.unpack(fmt, raw)[0]
    header = 8 + lengths
    f.seek(at)
    chunk = f.read(min(size, 64 << 20))
    if len(chunk) < size:
        return None  # libhdf5 cannot read it either: an error, not a hang
    pos = 8 + lengths
    for _ in range(_MAX_HEAP_OBJECTS):
        if pos >= size or pos + header > size:
            return None
        idx = struct.unpack_from("<H", chunk, pos)[0]
        length = struct.unpack_from(fmt, chunk, pos + 8)[0]
        need = header + (-(-length // 8) * 8) if idx else length
        if need == 0 or pos + need >= 1 << (8 * lengths - 1):
            return (f"global heap collection at offset {at} has an object (index {idx}) "
                    f"of size {length} that its reader never moves past")
        pos += need
    return f"global heap collection at offset {at} holds over {_MAX_HEAP_OBJECTS} objects"


def _check_external(h5py: Any, h: Any, loc: Location, ctx: ScanContext) -> None:
    """Report links and datasets that read other files; never follows them."""
    seen = 0

    def visit(name: str, link: Any) -> bool | None:
        nonlocal seen
        seen += 1
        if seen > MAX_HDF5_OBJECTS:
            ctx.skip(loc, f"more than {MAX_HDF5_OBJECTS} HDF5 objects; the rest not checked "
                     "for external files", inconclusive=True)
            return True
        if isinstance(link, h5py.ExternalLink):
            ctx.add(HDF5_EXTERNAL.finding(loc, f"external link /{name} -> "
                                          f"{link.filename}:{link.path}",
                                          evidence=str(link.filename)))
        elif isinstance(link, h5py.HardLink):
            obj = h[name]
            if isinstance(obj, h5py.Dataset):
                for entry in obj.external or ():
                    ctx.add(HDF5_EXTERNAL.finding(loc, f"dataset /{name} is stored in the "
                                                  f"external file {entry[0]!r}",
                                                  evidence=str(entry[0])))
                if obj.is_virtual:
                    for vs in obj.virtual_sources():
                        if vs.file_name != ".":
                            ctx.add(HDF5_EXTERNAL.finding(
                                loc, f"virtual dataset /{name} reads {vs.file_name!r}",
                                evidence=str(vs.file_name)))
        return None

    h.visititems_links(visit)


class KerasArchiveScanner(Scanner):
    """Keras 3 ``.keras`` archives: a zip with ``config.json`` and ``metadata.json``."""

    name = "keras"
    priority = 40

    def sniff(self, source: Source) -> bool:
        # A damaged zip (no names) is the generic zip scanner's to report.
        names = zip_names(source) if is_zip(source) else None
        return names is not None and {"config.json", "metadata.json"} <= set(names)

    def scan(self, source: Source, ctx: ScanContext) -> None:
        loc = source.location
        ctx.examined(loc, self.name)
        if too_deep(ctx, loc):
            return
        from mlward._internal.sources.zips import ZipArchive  # only a zip needs zipfile

        archive = ZipArchive.open(source, ctx)
        if archive is None:
            return
        try:
            for info in archive.members:
                if info.filename == "config.json":
                    text = _read_small(archive, info, loc.child(info.filename), ctx)
                    if text is not None:
                        report_config(text, loc.child(info.filename), ctx, info.filename)
                elif info.filename != "metadata.json":
                    archive.dispatch_member(info)
        finally:
            archive.close()


def _read_small(archive: ZipArchive, info: Any, member: Location,
                ctx: ScanContext) -> bytes | None:
    """A small member's bytes, or None (reported) when it is too large or damaged."""
    if info.file_size > MAX_CONFIG_BYTES:
        ctx.add(KERAS_MALFORMED.finding(member, f"{info.filename} declares {info.file_size} "
                                        "bytes"))
        ctx.skip(member, f"{info.filename} too large to judge", inconclusive=True)
        return None
    with Spool() as spool:
        if not archive.extract(info, spool):
            return None
        with spool.open() as stream:
            return stream.read(MAX_CONFIG_BYTES + 1)
