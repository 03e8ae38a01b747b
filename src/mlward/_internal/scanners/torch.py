"""PyTorch checkpoints: the zip format (``torch.save`` since 1.6), the legacy pickle
sequence (``_use_new_zipfile_serialization=False``) and the oldest, tar-based format.

Pickles are judged by the pickle machine
(:func:`~mlward._internal.scanners.pickle.scan_pickle_stream`);
tensor storage is recognised by its place in the file and never read, so the time to scan a
checkpoint does not grow with its tensors.
"""

from __future__ import annotations

import io
import re
import struct
from functools import cache
from typing import TYPE_CHECKING, BinaryIO

from mlward._internal.scanners.archive import is_zip
from mlward._internal.scanners.facts import Tensor, model_fact
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.scanners.pickle import (
    looks_like_pickle,
    scan_pickle_stream,
)
from mlward._internal.sources import Source
from mlward._internal.sources.archives import (
    Spool,
    dispatch,
    extract_tar_member,
    iter_tar,
    sniff_tar,
    tar_names,
    too_deep,
    zip_names,
)
from mlward.findings import Location

if TYPE_CHECKING:
    import zipfile

    from mlward._internal.sources.zips import ZipArchive

LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
"""The number a legacy checkpoint pickles first (as a LONG1 of 10 bytes)."""
LEGACY_PICKLES = 5
"""Magic number, protocol version, sys info, the object, the storage keys; raw bytes follow."""

_STORAGE = re.compile(r"(?:[^/]+/)?data/[^/]+")
"""Tensor storage members: ``<prefix>/data/<key>``, raw bytes that torch never unpickles."""
_METADATA = re.compile(r"(?:[^/]+/)?(?:version|\.format_version|\.storage_alignment|byteorder"
                       r"|\.data/version|\.data/serialization_id)")
"""Small records torch writes beside the pickle (format version, byte order, an id)."""
_METADATA_VALUE = re.compile(rb"[\w.\-]{0,64}\s*")


def torch_zip_names(source: Source) -> list[str] | None:
    """The member names when ``source`` is a PyTorch zip checkpoint, else None."""
    names = zip_names(source) if is_zip(source) else None
    if names is None:
        return None
    if {"config.json", "metadata.json"} <= set(names):
        return None  # a Keras archive
    if any(n == "data.pkl" or n.endswith(("/data.pkl", "/.data/version"))
           for n in names):
        return names
    return None


class TorchZipScanner(Scanner):
    """``torch.save`` zip checkpoints (and TorchScript archives).

    Every ``.pkl`` member is judged as a pickle whatever its first bytes (and whatever the
    case of its name: torch's reader ignores it); storage members under ``data/`` are counted,
    not read, unless their first bytes are a pickle's; any other member is scanned by
    content.
    """

    name = "pytorch-zip"
    priority = 150

    def sniff(self, source: Source) -> bool:
        return torch_zip_names(source) is not None

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        if too_deep(ctx, source.location):
            return
        from mlward._internal.sources.zips import ZipArchive  # only a zip needs zipfile

        archive = ZipArchive.open(source, ctx)
        if archive is None:
            return
        storages = 0
        storage_bytes = 0
        tensors: list[Tensor] | None = None
        try:
            for info in archive.members:
                name = info.filename
                if name.lower().endswith(".pkl"):  # torch finds names regardless of case
                    loc = source.location.child(name)
                    with Spool() as spool:
                        archive.extract(info, spool)
                        if spool.size:
                            _scan_pickle(spool, loc, ctx)
                            if name.lower().endswith("data.pkl"):
                                tensors = _tensors(spool)
                elif _STORAGE.fullmatch(name) and not _pickle_head(archive.head(info)):
                    storages += 1
                    storage_bytes += info.file_size
                elif _METADATA.fullmatch(name) and info.file_size <= 128:
                    _check_metadata(archive, info, source.location.child(name), ctx)
                else:
                    archive.dispatch_member(info)
        finally:
            archive.close()
        model_fact(ctx, source.location, self.name, framework="pytorch", tensors=tensors,
                   storages=storages, storage_bytes=storage_bytes)
        if storages:
            ctx.skip(source.location, f"{storages} tensor storage member(s), {storage_bytes} "
                     "bytes: raw tensor data, not read", inconclusive=False)


def _pickle_head(head: bytes) -> bool:
    """Whether a member named like tensor storage starts like a pickle: then it is judged
    (torch never unpickles storage, but another loader, or a name torch resolves another
    way, may), else it stays unread. Most tensor bytes fail on the first byte: a pickle's
    first opcode takes nothing from the stack."""
    return head[:1] in _first_opcodes() and looks_like_pickle(io.BytesIO(head), head)


@cache
def _first_opcodes() -> frozenset[bytes]:
    import pickletools  # the opcode table, once, on the first checkpoint

    return frozenset(op.code.encode("latin-1") for op in pickletools.opcodes
                     if not op.stack_before)


def _tensors(spool: Spool) -> list[Tensor] | None:
    """The tensors the checkpoint's pickle describes (for the ``model`` fact)."""
    from mlward._internal.scanners.pickle.tensors import torch_tensors

    with spool.open() as f:
        return torch_tensors(f)


def _check_metadata(archive: ZipArchive, info: zipfile.ZipInfo, loc: Location,
                    ctx: ScanContext) -> None:
    """A metadata record that looks like one (``3``, ``little``) is known and done; anything
    else under such a name is scanned by content like any other member."""
    with Spool() as spool:
        archive.extract(info, spool)
        with spool.open() as f:
            value = f.read(129)
        if _METADATA_VALUE.fullmatch(value):
            ctx.examined(loc, "pytorch-metadata")
        elif spool.size:
            dispatch(ctx, spool, loc)


class TorchLegacyScanner(Scanner):
    """Legacy checkpoints: five pickles, then raw storage bytes that are never parsed."""

    name = "pytorch-legacy"
    priority = 150

    def sniff(self, source: Source) -> bool:
        head = source.head(32)
        return head[:1] == b"\x80" and b"\x8a\x0a" + LEGACY_MAGIC in head

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        model_fact(ctx, source.location, self.name, framework="pytorch")
        with source.open() as f:
            result = scan_pickle_stream(f, source.location, ctx, max_pickles=LEGACY_PICKLES)
        if not result.complete:
            return
        if result.pickles < LEGACY_PICKLES:  # damaged: not examined to its end
            ctx.skip(source.location, f"truncated legacy checkpoint: {result.pickles} of "
                     f"{LEGACY_PICKLES} pickles (torch cannot load it)", inconclusive=True)
        elif source.size is not None and source.size > result.end_offset:
            ctx.skip(source.location, f"{source.size - result.end_offset} bytes of raw tensor "
                     "storage: not read", inconclusive=False)


def _scan_pickle(spool: Spool, location: Location, ctx: ScanContext) -> None:
    ctx.examined(location, "pickle")
    with spool.open() as f:
        scan_pickle_stream(f, location, ctx)


# -- the tar format (torch < 0.4 wrote it; torch.load still reads it) -----------------------

_ELEMENT_SIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
    "ByteStorage": 1, "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
    "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
}
_SMALL_PICKLE = 1 << 20
"""A record pickle (a count, a storage's key and type) larger than this is not a record."""
_MAX_NDIM = 64
_INT_OPS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})


class _Stop(Exception):
    """The record stream cannot be followed further (the reason is the message)."""


class _Records:
    """The ``storages`` and ``tensors`` members: record pickles between raw bytes, read
    the way torch reads them, every pickle judged, the raw bytes skipped."""

    def __init__(self, f: BinaryIO, size: int, location: Location, ctx: ScanContext) -> None:
        self.f = f
        self.size = size
        self.location = location
        self.ctx = ctx

    def pickle(self) -> tuple[list[int], list[str]]:
        """Judge the next pickle; return the integers and class names it holds."""
        import pickletools  # legacy (pre-zip) checkpoints only

        start = self.f.tell()
        result = scan_pickle_stream(self.f, self.location, self.ctx, max_pickles=1)
        if not result.complete:
            raise _Stop("")  # the pickle scanner has reported why
        if result.pickles < 1:
            raise _Stop("a record pickle is missing")
        if result.end_offset - start > _SMALL_PICKLE:
            raise _Stop("a record pickle is too large to be one")
        self.f.seek(start)
        data = self.f.read(result.end_offset - start)
        ints: list[int] = []
        names: list[str] = []
        strings: list[str] = []
        try:
            for op, arg, _ in pickletools.genops(io.BytesIO(data)):
                if op.name in _INT_OPS and isinstance(arg, int):
                    ints.append(arg)
                elif op.name == "GLOBAL" and isinstance(arg, str):
                    names.append(arg.rsplit(" ", 1)[-1])
                elif isinstance(arg, str):
                    strings.append(arg)
                elif op.name == "STACK_GLOBAL" and strings:
                    names.append(strings[-1])
        except ValueError as exc:
            raise _Stop(f"record pickle unreadable: {exc}") from None
        return ints, names

    def count(self) -> int:
        ints, _ = self.pickle()
        if not ints or not 0 <= ints[0] <= self.ctx.limits.max_members:
            raise _Stop("record count missing or over the member limit")
        return ints[0]

    def skip(self, n: int) -> None:
        if n < 0 or self.f.tell() + n > self.size:
            raise _Stop("raw bytes run past the end of the member (torch cannot load it)")
        self.f.seek(n, io.SEEK_CUR)

    def int(self, fmt: str) -> int:
        raw = self.f.read(struct.calcsize(fmt))
        if len(raw) < struct.calcsize(fmt):
            raise _Stop("member ends inside a record (torch cannot load it)")
        value: int = struct.unpack(fmt, raw)[0]
        return value

    def storages(self) -> None:
        for _ in range(self.count()):
            _, names = self.pickle()
            size = next((_ELEMENT_SIZE[n] for n in names if n in _ELEMENT_SIZE), None)
            if size is None:
                raise _Stop(f"unknown storage type {names}")
            self.skip(self.int("<q") * size)
        self.pickle()  # storage views

    def tensors(self) -> None:
        for _ in range(self.count()):
            self.pickle()
            ndim = self.int("<i")
            if not 0 <= ndim <= _MAX_NDIM:
                raise _Stop(f"tensor with {ndim} dimensions")
            self.skip(4 + 16 * ndim + 8)


class TorchTarScanner(Scanner):
    """The oldest checkpoints: a tar of ``sys_info``, ``pickle``, ``storages``, ``tensors``.

    ``storages`` and ``tensors`` interleave small pickles with raw bytes: they are followed
    record by record as torch does, so every pickle is judged and no raw byte is parsed.
    """

    name = "pytorch-tar"
    priority = 150

    def sniff(self, source: Source) -> bool:
        return sniff_tar(source.head(512)) and {"pickle", "storages", "tensors"} <= tar_names(
            source, 16)

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        if too_deep(ctx, source.location):
            return
        for tar, info in iter_tar(source, ctx):
            loc = source.location.child(info.name)
            with Spool() as spool:
                extract_tar_member(tar, info, spool, loc, ctx)
                if not spool.size:
                    continue
                if info.name in ("sys_info", "pickle"):
                    _scan_pickle(spool, loc, ctx)
                elif info.name in ("storages", "tensors"):
                    ctx.examined(loc, f"pytorch-tar {info.name}")
                    with spool.open() as f:
                        records = _Records(f, spool.size, loc, ctx)
                        try:
                            if info.name == "storages":
                                records.storages()
                            else:
                                records.tensors()
                        except _Stop as stop:
                            if str(stop):
                                ctx.skip(loc, f"{info.name}: {stop}; the rest not examined",
                                         inconclusive=True)
                else:
                    dispatch(ctx, spool, loc)
