"""HDF5 written by pandas (``to_hdf``) and PyTables: the pickles PyTables unpickles on read.

PyTables stores two things as pickles, and unpickles them while reading:

- attributes whose value is not a plain number or string (pandas writes lists and dicts this
  way: ``info``, ``non_index_axes``, ``index_cols``): PyTables calls ``pickle.loads`` on any
  byte-string attribute ending in ``.`` as soon as it is accessed, and pandas accesses its
  attributes (``pandas_type`` first) on ``read_hdf``;
- ``VLArray`` datasets with the ``object`` pseudo-atom: every row is a pickle. pandas' "fixed"
  format writes object (string or mixed) columns this way.

Each is judged by the pickle scanner; h5py reads the raw bytes and never unpickles (it does
not know PyTables' conventions). This runs after the HDF5 scanner of Keras files, which
checks the same file for external links.
"""

from __future__ import annotations

import io
from typing import Any

from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.scanners.keras import HDF5_MAGIC
from mlward._internal.scanners.pickle import looks_like_pickle, scan_pickle_stream
from mlward._internal.sources import Source
from mlward.errors import MissingExtra
from mlward.findings import Location
from mlward.rules import DATASET_MALFORMED

MAX_OBJECTS = 100_000
MAX_ATTRIBUTE_BYTES = 16 << 20
MAX_ROWS = 100_000
"""Rows of one object VLArray judged (pandas writes one row per block)."""
MAX_ROW_BYTES = 256 << 20
_OFFSETS = (0, 512, 1024, 2048)
# What h5py raises on damaged input.
_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError, IndexError, SystemError)


class PyTablesScanner(Scanner):
    """Pickled attributes and object VLArrays in any HDF5 file PyTables could open."""

    name = "pytables-hdf5"
    priority = 65  # after the Keras HDF5 scanner, which claims the file
    supplementary = True

    def sniff(self, source: Source) -> bool:
        head = source.head()
        return any(head[o:o + 8] == HDF5_MAGIC for o in _OFFSETS)

    def scan(self, source: Source, ctx: ScanContext) -> None:
        try:
            import h5py
        except ImportError:
            ctx.skip(source.location, MissingExtra("h5py", "data").diagnostics(),
                     inconclusive=True)
            return
        loc = source.location
        from mlward._internal.scanners.keras import global_heap_problem

        target = source.fs_path
        if target is None:
            with source.open() as f:
                problem = global_heap_problem(f)
        else:
            problem = global_heap_problem(target)
        if problem:  # libhdf5 would loop forever reading attributes through this heap
            ctx.add(DATASET_MALFORMED.finding(loc, f"HDF5 file is damaged: {problem}"))
            ctx.skip(loc, "HDF5 global heap would hang the HDF5 library; not read",
                     inconclusive=True)
            return
        try:
            if source.fs_path is not None:
                with h5py.File(source.fs_path, "r") as h:
                    self._judge(h5py, h, loc, ctx)
            else:
                with source.open() as f, h5py.File(f, "r") as h:
                    self._judge(h5py, h, loc, ctx)
        except _ERRORS as exc:  # what was judged before the damage stands
            ctx.add(DATASET_MALFORMED.finding(loc, f"HDF5 file is damaged: {exc}"))
            ctx.skip(loc, "HDF5 file is damaged: pickles past the damage not judged",
                     inconclusive=True)

    def _judge(self, h5py: Any, h: Any, loc: Location, ctx: ScanContext) -> None:
        pickles = 0
        pandas = False
        objects: list[tuple[str, Any]] = [("", h)]

        def collect(name: str, obj: Any) -> bool | None:
            objects.append((name, obj))
            return True if len(objects) > MAX_OBJECTS else None

        h.visititems(collect)
        if len(objects) > MAX_OBJECTS:
            ctx.skip(loc, f"more than {MAX_OBJECTS} HDF5 objects; the rest not checked for "
                     "pickles", inconclusive=True)
        for name, obj in objects:
            for attr in obj.attrs:
                if attr == "pandas_type":
                    pandas = True
                raw = _attribute_bytes(obj.attrs, attr)
                if raw is not None and looks_like_pickle(io.BytesIO(raw), raw[:4096], whole=True):
                    pickles += 1
                    scan_pickle_stream(io.BytesIO(raw), loc.child(f"/{name} attribute {attr}"),
                                       ctx)
            if isinstance(obj, h5py.Dataset) and _is_object_vlarray(obj):
                pickles += self._rows(obj, name, loc, ctx)
        if pickles or pandas or "PYTABLES_FORMAT_VERSION" in h.attrs:
            ctx.examined(loc, "pandas-hdf5" if pandas else self.name)
            ctx.fact(loc, "dataset", format="pandas-hdf5" if pandas else "pytables-hdf5",
                     pickles=pickles)

    @staticmethod
    def _rows(ds: Any, name: str, loc: Location, ctx: ScanContext) -> int:
        """Judge each row of an object VLArray (each is one pickle)."""
        if ds.ndim != 1:
            return 0
        if ds.id.get_storage_size() > MAX_ROW_BYTES:
            ctx.skip(loc.child(f"/{name}"), f"object column larger than {MAX_ROW_BYTES} bytes: "
                     "its pickles were not judged", inconclusive=True)
            return 0
        rows = int(min(ds.shape[0], MAX_ROWS))
        if ds.shape[0] > MAX_ROWS:
            ctx.skip(loc.child(f"/{name}"), f"only the first {MAX_ROWS} pickled rows judged",
                     inconclusive=True)
        for i in range(rows):
            scan_pickle_stream(io.BytesIO(bytes(ds[i].tobytes())),
                               loc.child(f"/{name} row {i}"), ctx)
        return rows


def _attribute_bytes(attrs: Any, attr: str) -> bytes | None:
    """The attribute's value when it is a byte string PyTables would try to unpickle."""
    try:
        info = attrs.get_id(attr)
        if info.get_storage_size() > MAX_ATTRIBUTE_BYTES:
            return None
        value = attrs[attr]
    except _ERRORS:
        return None
    raw = bytes(value) if isinstance(value, bytes) else None
    return raw if raw and raw.endswith(b".") else None


def _is_object_vlarray(ds: Any) -> bool:
    try:
        return bytes(ds.attrs.get("PSEUDOATOM", b"")) == b"object" and bytes(
            ds.attrs.get("CLASS", b"")) == b"VLARRAY"
    except _ERRORS:
        return False
