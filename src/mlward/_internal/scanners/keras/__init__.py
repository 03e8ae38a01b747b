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

import json
from typing import Any

from mlward._internal.scanners.archive import is_zip
from mlward._internal.scanners.facts import Tensor, model_fact
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward._internal.sources.archives import Spool, ZipArchive, too_deep, zip_names
from mlward.errors import FormatError, MissingExtra
from mlward.findings import Location
from mlward.rules import HDF5_EXTERNAL, KERAS_MALFORMED

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# HDF5 allows a user block before the superblock, at 0 or a power of two from 512.
_HDF5_OFFSETS = (0, 512, 1024, 2048)
MAX_CONFIG_BYTES = 64 << 20
MAX_HDF5_OBJECTS = 100_000
CONFIG_ATTRS = ("model_config", "training_config")
# What h5py and zipfile raise on damaged input.
_HDF5_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError, IndexError,
                SystemError)  # h5py raises SystemError on some damaged files


def report_config(text: str | bytes, location: Location, ctx: ScanContext, what: str) -> None:
    """Parse and judge one Keras config; malformed or too deep is a finding."""
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

    def _scan_file(self, h5py: Any, target: object, loc: Location, ctx: ScanContext) -> None:
        try:
            self._judge(h5py, h5py.File(target, "r"), loc, ctx)
        except _HDF5_ERRORS as exc:  # damaged structure: what was judged before it stands
            ctx.add(KERAS_MALFORMED.finding(loc, f"HDF5 file is damaged: {exc}"))
            ctx.skip(loc, "HDF5 file is damaged", inconclusive=True)

    def _judge(self, h5py: Any, h: Any, loc: Location, ctx: ScanContext) -> None:
        with h:
            found = [name for name in CONFIG_ATTRS if name in h.attrs]
            ctx.examined(loc, "keras-hdf5" if found else self.name)
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
