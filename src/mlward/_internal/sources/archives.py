"""Members of containers, read with bounds: zip, tar and 7z archives, compressed streams.

Everything here reads hostile input. Sizes a header claims are checked against the
:class:`~mlward._internal.scanners.interface.Limits` before anything is read; decompression is
incremental, charged to the scan's byte budget and stopped at the member limit or when a
member expands like a bomb; member names and link targets are checked for escapes
(zip-slip, tar-slip). Problems are reported to the :class:`ScanContext` as findings or
inconclusive skips; nothing here raises for bad input.

Decompressed bytes land in a :class:`Spool` (memory up to 64 MiB, then a temporary file),
which becomes the :class:`~mlward._internal.sources.Source` that the scan engine dispatches.
"""

from __future__ import annotations

import bz2
import importlib.util
import io
import itertools
import lzma
import os
import posixpath
import re
import stat
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from mlward._internal.sources import Source, zipviews
from mlward.errors import MissingExtra
from mlward.findings import Location, Severity
from mlward.rules import (
    ARCHIVE_BOMB,
    ARCHIVE_DAMAGED,
    ARCHIVE_DUPLICATE_MEMBER,
    ARCHIVE_LINK,
    ARCHIVE_OUTSIDE_DATA,
    ARCHIVE_PATH_TRAVERSAL,
    ARCHIVE_SPECIAL_FILE,
    ARCHIVE_TOO_DEEP,
    ZIP_READERS_DISAGREE,
)

if TYPE_CHECKING:
    import tarfile

    from mlward._internal.scanners.interface import ScanContext

CHUNK = 1 << 20
SPOOL_MEMORY = 64 << 20
"""Decompressed bytes kept in memory; past this a member spills to a temporary file."""
BOMB_FLOOR = 64 << 20
"""A member is a bomb when it expands more than ``max_ratio`` times AND past this size:
below it, expansion costs nothing worth flagging (sparse tensors compress very well)."""

MAX_OUTSIDE = 16
"""Ranges of bytes outside a zip's members that are reported and judged (a zip written by
a framework has none; more than this is a crafted file, already reported)."""

_DRIVE = re.compile(r"^[A-Za-z]:")
_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
           NotImplementedError, RuntimeError)
"""What a damaged zip or stream raises; the tar readers add ``tarfile.TarError``. (tarfile is
imported where a tar is read: every file's sniff asks whether it is one, and the answer is
nearly always no, before tarfile is needed.)"""
"""What the standard readers raise on damaged or unsupported input."""


def member_path_problem(name: str) -> str | None:
    """Why extracting a member called ``name`` would write outside the target folder.

    None when the name is safe. Both ``/`` and ``\\`` count as separators, since Windows
    extractors honour either. Other scanners (a .keras zip, a SavedModel tar) call this on
    their member names.
    """
    if "\x00" in name:
        return "name contains a NUL byte"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "path climbs out with '..'"
    return None


def link_target_problem(member: str, target: str) -> str | None:
    """Why a link ``member -> target`` points outside the archive's folder, or None."""
    if target.startswith(("/", "\\")) or _DRIVE.match(target):
        return "absolute link target"
    target = target.replace("\\", "/")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(member), target))
    if joined == ".." or joined.startswith("../"):
        return "link target climbs out of the archive"
    return None


def check_member_name(ctx: ScanContext, location: Location, name: str) -> bool:
    """Report a path-traversal finding for a bad member name; True when the name is safe."""
    problem = member_path_problem(name)
    if problem is None:
        return True
    ctx.add(ARCHIVE_PATH_TRAVERSAL.finding(location.child(name), f"member name escapes the "
                                           f"extraction folder: {problem}", evidence=name))
    return False


def too_deep(ctx: ScanContext, location: Location) -> bool:
    """True (with a finding and an inconclusive skip) when members of ``location`` would sit
    past the nesting limit; call it before extracting anything."""
    if ctx.depth + 1 <= ctx.limits.max_depth:
        return False
    ctx.add(ARCHIVE_TOO_DEEP.finding(
        location, f"containers nested more than {ctx.limits.max_depth} deep"))
    ctx.skip(location, f"nested deeper than {ctx.limits.max_depth} containers; inner content "
             "not examined", inconclusive=True)
    return True


# -- spooling ---------------------------------------------------------------------------


class Spool:
    """Bytes written once, then re-opened for reading any number of times.

    Kept in memory up to :data:`SPOOL_MEMORY`, then in a temporary file removed on close.
    """

    def __init__(self) -> None:
        self._memory: io.BytesIO | None = io.BytesIO()
        self._data = b""
        self._path: Path | None = None
        self._file: IO[bytes] | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        if self._memory is not None and self.size + len(data) > SPOOL_MEMORY:
            import tempfile  # only once a member outgrows memory

            fd, name = tempfile.mkstemp(prefix="mlward-spool-")
            self._path = Path(name)
            self._file = os.fdopen(fd, "wb")
            self._file.write(self._memory.getbuffer())
            self._memory = None
        if self._file is not None:
            self._file.write(data)
        elif self._memory is not None:
            self._memory.write(data)
        self.size += len(data)

    def _finish(self) -> None:
        if self._memory is not None:
            self._data = self._memory.getvalue()
            self._memory = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def open(self) -> BinaryIO:
        self._finish()
        if self._path is not None:
            return open(self._path, "rb")
        return io.BytesIO(self._data)

    def source(self, location: Location) -> Source:
        self._finish()
        return Source(location, self.open, size=self.size, fs_path=self._path)

    def close(self) -> None:
        self._finish()
        self._data = b""
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def copy_bounded(read: Callable[[int], bytes], spool: Spool, location: Location,
                 ctx: ScanContext, *, compressed_size: int | None) -> bool:
    """Copy ``read`` to ``spool`` until EOF within the limits; True when all was copied.

    Stops, reporting why (a bomb finding, or an inconclusive skip), when the member passes
    ``limits.max_member_bytes``, the scan's byte budget, or expands past ``max_ratio`` times
    ``compressed_size``. Errors from ``read`` propagate to the caller.
    """
    limits = ctx.limits
    if not ctx.charge(location, 0):  # the input's budget is spent: read nothing more
        return False
    while True:
        chunk = read(CHUNK)
        if not chunk:
            return True
        total = spool.size + len(chunk)
        if (compressed_size is not None and total > BOMB_FLOOR
                and total > limits.max_ratio * max(compressed_size, 1)):
            ctx.add(ARCHIVE_BOMB.finding(
                location, f"expands more than {limits.max_ratio:g} times its compressed size "
                f"({compressed_size} bytes); reading stopped at {total} bytes"))
            ctx.skip(location, "decompression bomb: not read to the end", inconclusive=True)
            return False
        if total > limits.max_member_bytes:
            ctx.skip(location, f"larger than the member limit ({limits.max_member_bytes} bytes)"
                     "; not read to the end", inconclusive=True)
            return False
        if not ctx.charge(location, len(chunk)):
            return False
        spool.write(chunk)


def dispatch(ctx: ScanContext, spool: Spool, location: Location) -> None:
    """Hand decompressed bytes to the scan engine as a nested source."""
    ctx.scan_child(spool.source(location))


# -- compressed streams -------------------------------------------------------------------


class _StreamReader:
    """A compressed stream decompressed incrementally, at most ``n`` bytes per read.

    Unlike the standard file wrappers, each read returns what was decompressed so far
    before reporting damage, so the bytes before a truncation are still judged.
    Concatenated gzip, bz2 and xz streams are read one after the other.
    """

    def __init__(self, raw: BinaryIO, kind: str) -> None:
        self._raw = raw
        self._kind = kind
        self._pending = b""
        self._d = self._new()

    def _new(self) -> Any:
        if self._kind == "lz4":
            import lz4.frame

            return lz4.frame.LZ4FrameDecompressor()
        if self._kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self._kind == "zlib":
            return zlib.decompressobj()
        if self._kind == "bz2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE if self._kind == "lzma"
                                     else lzma.FORMAT_XZ)

    def _take(self) -> bytes:
        data, self._pending = self._pending or self._raw.read(CHUNK), b""
        if not data:
            raise EOFError(f"{self._kind} stream ended before its end marker")
        return data

    def _next_stream(self) -> bool:
        rest = self._d.unused_data or self._raw.read(CHUNK)
        magic = {"gzip": b"\x1f\x8b", "bz2": b"BZh", "xz": b"\xfd7zXZ\x00",
                 "lz4": LZ4_MAGIC}.get(self._kind)
        if magic is None or not rest.startswith(magic):
            return False  # trailing bytes after the stream are ignored, as loaders do
        self._d = self._new()
        self._pending = rest
        return True

    def read(self, n: int) -> bytes:
        while True:
            if self._d.eof and not self._next_stream():
                return b""
            if self._kind in ("gzip", "zlib"):
                out: bytes = self._d.decompress(self._d.unconsumed_tail or self._take(), n)
            else:
                data = self._take() if self._d.needs_input else b""
                out = self._d.decompress(data, max_length=n)
            if out:
                return out


LZ4_MAGIC = b"\x04\x22\x4d\x18"


def sniff_stream(head: bytes) -> str | None:
    """The compression of a stream starting with ``head``; weak magics (zlib, lzma) count
    only when the head decompresses to something."""
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head.startswith(b"BZh") and head[3:4].isdigit() and head[4:10] == b"1AY&SY":
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(LZ4_MAGIC):
        return "lz4"
    if head[:1] == b"\x5d" and head[1:3] == b"\x00\x00" and len(head) >= 13:
        return "lzma" if _lzma_alone_ok(head) else None
    if _zlib_header(head):
        try:
            return "zlib" if zlib.decompressobj().decompress(head, 64) else None
        except zlib.error:
            return None
    return None


def _zlib_header(head: bytes) -> bool:
    """zlib's two-byte header (deflate, a window size, the check bits, no dictionary), and
    not text: ``x^2 + y^2`` opens like one, but compressed bytes are printable only by
    chance (6 in a row about once in 350)."""
    return (len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7
            and (head[0] << 8 | head[1]) % 31 == 0 and not head[1] & 0x20
            and (len(head) < 8 or bool(head.translate(None, _PRINTABLE))))


_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\n\r"


def cut_zlib(head: bytes) -> bool:
    """Whether ``head`` (a whole short file) is a zlib stream that ends before its first
    byte of output: joblib's default compression cut inside its Huffman tables (its first
    hundred bytes or so), which :func:`sniff_stream` cannot tell from chance."""
    if not _zlib_header(head):
        return False
    stream = zlib.decompressobj()
    try:
        out = stream.decompress(head, 64)
    except zlib.error:
        return False
    return not out and not stream.eof and not stream.unconsumed_tail


def _lzma_alone_ok(head: bytes) -> bool:
    try:
        return bool(lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(head, 64))
    except lzma.LZMAError:
        return False


def open_stream(kind: str, raw: BinaryIO) -> Callable[[int], bytes]:
    """An incremental reader of the decompressed bytes of ``raw``."""
    return _StreamReader(raw, kind).read


def decompressed_name(name: str, kind: str) -> str:
    """The member name shown for the content of compressed stream ``name``."""
    base = name.rsplit("/", 1)[-1]
    lower = base.lower()
    if lower.endswith((".tgz", ".tbz2", ".txz")):
        return base[: base.rfind(".")] + ".tar"
    for suffix in (".gz", ".bz2", ".xz", ".lzma", ".zlib", ".z", ".lz4"):
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return f"{base} ({kind}-decompressed)"


def read_stream(source: Source, kind: str, ctx: ScanContext, spool: Spool,
                location: Location) -> bool:
    """Decompress ``source`` into ``spool``; True when the whole stream was read.

    Damage (truncation, corrupt data) is a finding; what was decompressed before it stays in
    the spool to be judged.
    """
    if kind == "lz4" and importlib.util.find_spec("lz4") is None:
        ctx.skip(source.location, MissingExtra("lz4", "archives").diagnostics(),
                 inconclusive=True)
        return False
    with source.open() as raw:
        try:
            return copy_bounded(open_stream(kind, raw), spool, location, ctx,
                                compressed_size=source.size)
        except _ERRORS as exc:
            ctx.add(ARCHIVE_DAMAGED.finding(
                source.location, f"{kind} stream damaged after {spool.size} bytes: {exc}"))
            ctx.skip(location, f"{kind} stream damaged; judged on the bytes before the damage",
                     inconclusive=True)
            return False


# -- zip --------------------------------------------------------------------------------


def zip_names(source: Source) -> list[str] | None:
    """The member names of a zip (for sniffing; nothing reported), None when unreadable.

    Read once per source: several sniffers ask.
    """
    if "zip_names" not in source.sniffed:
        try:
            with source.open() as f, zipfile.ZipFile(f) as zf:
                source.sniffed["zip_names"] = zf.namelist()
        except (*_ERRORS, KeyError, IndexError, OverflowError):  # hostile directories
            source.sniffed["zip_names"] = None
    names = source.sniffed["zip_names"]
    return list(names) if isinstance(names, list) else None


class ZipMember(zipfile.ZipInfo):
    """A member as a reader other than zipfile sees it (PyTorch's reader, a streaming
    reader): read from ``data_offset`` with its own sizes and method, never through
    zipfile."""

    __slots__ = ("data_offset",)

    def __init__(self, entry: zipviews.Entry, data_offset: int) -> None:
        super().__init__(entry.text)
        self.header_offset = entry.header
        self.compress_type = entry.method
        self.flag_bits = entry.flags
        self.CRC = entry.crc
        self.compress_size = entry.compress_size
        self.file_size = entry.file_size
        self.data_offset = data_offset


def _python_entry(info: zipfile.ZipInfo) -> zipviews.Entry:
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    try:
        raw = info.orig_filename.encode(encoding)
    except UnicodeEncodeError:
        raw = info.orig_filename.encode("utf-8", "surrogateescape")
    return zipviews.Entry(raw, info.header_offset, info.compress_type, info.flag_bits,
                          info.CRC, info.compress_size, info.file_size)


class ZipArchive:
    """A zip opened for scanning: members listed and checked, then read one by one.

    The members are those Python's zipfile lists, plus every member that PyTorch's reader
    or a streaming reader would read differently (:mod:`.zipviews`): each interpretation is
    judged. Bytes outside every member are judged by content as they are found.
    """

    def __init__(self, source: Source, ctx: ScanContext, stream: BinaryIO,
                 zf: zipfile.ZipFile | None, raw: BinaryIO, views: zipviews.Views) -> None:
        self.source = source
        self._ctx = ctx
        self._stream = stream
        self._zf = zf
        self._raw = raw
        self.views = views
        self.members: list[zipfile.ZipInfo] = []
        """Members to read: files (not folders or links), in archive order, within limits;
        then the members only other readers see."""
        self.names: list[str] = []
        """Every member name zipfile lists, folders and links included."""
        self.overlapping = False
        """True when members share bytes (a zip bomb); the members are then not read."""

    @classmethod
    def open(cls, source: Source, ctx: ScanContext) -> ZipArchive | None:
        """Open and check the zip; None (with a finding and a skip) when no reader can."""
        loc = source.location
        stream = source.open()
        zf: zipfile.ZipFile | None = None
        try:
            zf = zipfile.ZipFile(stream)
            python: list[zipviews.Entry] | None = [
                _python_entry(i) for i in zf.infolist()[: ctx.limits.max_members]]
        except (*_ERRORS, IndexError, KeyError, OverflowError) as exc:
            ctx.add(ARCHIVE_DAMAGED.finding(loc, f"zip directory unreadable by Python's "
                                            f"zipfile: {exc}"))
            python = None
        raw = source.open()
        size = source.size if source.size is not None else raw.seek(0, io.SEEK_END)
        views = zipviews.read_views(raw, size, python, limit=ctx.limits.max_members,
                                    charge=lambda n: ctx.charge(loc, n))
        archive = cls(source, ctx, stream, zf, raw, views)
        archive._check()
        if zf is None:
            found = len(archive.members)
            ctx.skip(loc, f"zip directory unreadable; {found} member(s) read from local "
                     "headers or PyTorch's view, the rest not examined", inconclusive=True)
            if not found:
                archive.close()
                return None
        return archive

    def _check(self) -> None:
        ctx, loc = self._ctx, self.source.location
        infos = self._zf.infolist() if self._zf is not None else []
        if len(infos) > ctx.limits.max_members:
            ctx.skip(loc, f"{len(infos)} members, over the limit of {ctx.limits.max_members}; "
                     "the rest not examined", inconclusive=True)
            infos = infos[: ctx.limits.max_members]
        self.names = [i.filename for i in infos]
        self._duplicates(infos)
        for info in infos:
            check_member_name(ctx, loc, info.filename)
        ordered = sorted((i for i in infos if i.compress_size), key=lambda i: i.header_offset)
        for a, b in itertools.pairwise(ordered):
            if a.header_offset + a.compress_size > b.header_offset:
                self.overlapping = True
                ctx.add(ARCHIVE_BOMB.finding(
                    loc, f"members {a.filename!r} and {b.filename!r} share bytes "
                    "(overlapping entries)", evidence=f"{a.filename} @ {a.header_offset}, "
                    f"{b.filename} @ {b.header_offset}"))
                ctx.skip(loc, "overlapping zip entries; members not examined",
                         inconclusive=True)
                return
        for info in infos:
            if info.filename.endswith("/"):
                continue
            if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
                self._report_link(info)
                continue
            self.members.append(info)
        self._other_readers()
        self._outside()

    def _duplicates(self, infos: list[zipfile.ZipInfo]) -> None:
        """Names listed twice, or twice but for case (PyTorch's reader ignores case): high
        when the copies differ, since readers then load different bytes."""
        groups: dict[str, list[zipfile.ZipInfo]] = {}
        for info in infos:
            groups.setdefault(info.filename.lower(), []).append(info)
        for group in groups.values():
            if len(group) < 2:
                continue
            names = sorted({i.filename for i in group})
            differ = len({(i.CRC, i.file_size) for i in group}) > 1
            what = (f"{len(group)} members are named {names[0]!r}" if len(names) == 1 else
                    f"members {', '.join(map(repr, names))} differ only in case")
            self._ctx.add(ARCHIVE_DUPLICATE_MEMBER.finding(
                self.source.location.child(names[0]),
                what + ("; their contents differ" if differ else ""),
                evidence=", ".join(names), severity=Severity.HIGH if differ else None))

    def _other_readers(self) -> None:
        """Report where PyTorch's reader and streaming readers disagree with zipfile, and
        add the members they read differently."""
        ctx, loc = self._ctx, self.source.location
        views = self.views
        seen = {(i.header_offset, i.compress_size, i.compress_type) for i in self.members}
        extras: list[zipviews.Entry] = []
        for d in zipviews.compare(views):
            ctx.add(ZIP_READERS_DISAGREE.finding(loc, d.message, evidence=d.evidence))
            if d.extra is not None:
                extras.append(d.extra)
        if views.python is None:  # zipfile cannot open it: what the others read is all
            extras.extend(views.pytorch or ())
            extras.extend(views.locals[o].entry for o in views.walked)
        for entry in extras:
            key = (entry.header, entry.compress_size, entry.method)
            local = views.locals.get(entry.header)
            if key in seen or entry.name.endswith(b"/"):
                continue
            seen.add(key)
            if local is None:
                ctx.skip(loc.child(entry.text), "no local header where the central directory "
                         "points; not read", inconclusive=True)
                continue
            check_member_name(ctx, loc, local.entry.text)
            self.members.append(ZipMember(entry, local.data))

    def _outside(self) -> None:
        """Judge the bytes no member covers by content (a pickle in front of a zip is what
        torch.load runs: it sees no zip magic at byte 0)."""
        ctx, loc = self._ctx, self.source.location
        regions = self.views.outside
        if len(regions) > MAX_OUTSIDE:
            ctx.skip(loc, f"{len(regions)} ranges of bytes outside the members; those after "
                     f"the first {MAX_OUTSIDE} not examined", inconclusive=True)
        for start, end, where in regions[:MAX_OUTSIDE]:
            name = f"[{where}: bytes {start}-{end - 1}]"
            ctx.add(ARCHIVE_OUTSIDE_DATA.finding(
                loc, f"{end - start} bytes {where} (offsets {start} to {end - 1}) belong to "
                "no member", evidence=name))
            if not ctx.charge(loc, 0):
                return
            self._raw.seek(start)
            with Spool() as spool:
                copy_bounded(_Window(self._raw, end - start).read, spool, loc.child(name),
                             ctx, compressed_size=None)
                if spool.size:
                    dispatch(ctx, spool, loc.child(name))

    def _report_link(self, info: zipfile.ZipInfo) -> None:
        target = "?"
        if self._zf is not None:
            try:
                with self._zf.open(info) as f:
                    target = f.read(4096).decode("utf-8", "replace")
            except _ERRORS:
                pass
        report_link(self._ctx, self.source.location, info.filename, target, "symbolic")

    def declared_problem(self, info: zipfile.ZipInfo) -> bool:
        """Report (and return True) when a member's declared sizes forbid reading it."""
        ctx, loc = self._ctx, self.source.location.child(info.filename)
        limits = ctx.limits
        if (info.file_size > BOMB_FLOOR
                and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
            ctx.add(ARCHIVE_BOMB.finding(
                loc, f"declares {info.file_size} bytes from {info.compress_size} compressed "
                f"(over {limits.max_ratio:g}:1)"))
            ctx.skip(loc, "decompression bomb: not read", inconclusive=True)
            return True
        if info.file_size > limits.max_member_bytes:
            ctx.skip(loc, f"declares {info.file_size} bytes, over the member limit "
                     f"({limits.max_member_bytes} bytes); not read", inconclusive=True)
            return True
        return False

    def _raw_reader(self, info: zipfile.ZipInfo) -> Callable[[int], bytes] | None:
        """The member's bytes as PyTorch's reader or a streaming reader reads them: from
        its data (after the local header), with the sizes and method ``info`` gives."""
        if isinstance(info, ZipMember):
            start = info.data_offset
        else:
            local = self.views.locals.get(info.header_offset)
            if local is None:
                return None
            start = local.data
        self._raw.seek(start)
        if info.compress_type == zipfile.ZIP_STORED:
            return _Window(self._raw, info.compress_size).read
        if info.compress_type == zipfile.ZIP_DEFLATED:
            return _RawDeflate(self._raw, info.compress_size).read
        return None

    def head(self, info: zipfile.ZipInfo, n: int = zipviews.PEEK) -> bytes:
        """The first ``n`` bytes of a member (to sniff it without reading it all)."""
        local = self.views.locals.get(info.header_offset)
        if (local is not None and info.compress_type == zipfile.ZIP_STORED
                and n <= len(local.peek)):
            return local.peek[: min(n, info.compress_size)]
        try:
            read = self._raw_reader(info)
            return read(n) if read is not None else b""
        except _ERRORS:
            return b""

    def extract(self, info: zipfile.ZipInfo, spool: Spool) -> bool:
        """Read a member into ``spool``, judging damaged members too; True when complete.

        A wrong CRC or size is reported as damage but the bytes are kept: PyTorch's reader
        does not check CRCs. A member zipfile refuses (names that differ between headers,
        an encryption flag) is read as PyTorch's reader reads it; one that no reader can
        read is inconclusive.
        """
        ctx, loc = self._ctx, self.source.location.child(info.filename)
        if self.declared_problem(info):
            return False
        crc = 0
        read: Callable[[int], bytes] | None

        def counted(n: int) -> bytes:
            nonlocal crc
            assert read is not None
            data = read(n)
            crc = zlib.crc32(data, crc)
            return data

        refused = ""
        try:
            if isinstance(info, ZipMember) or self._zf is None:
                read = self._raw_reader(info)
                if read is None:
                    ctx.skip(loc, f"compression method {info.compress_type} is not read "
                             "outside zipfile; not examined", inconclusive=True)
                    return False
                complete = copy_bounded(counted, spool, loc, ctx,
                                        compressed_size=info.compress_size)
            else:
                try:
                    stream = self._zf.open(info)
                except (RuntimeError, zipfile.BadZipFile, NotImplementedError) as exc:
                    read = self._raw_reader(info)
                    if read is None:
                        raise
                    refused = str(exc)
                    complete = copy_bounded(counted, spool, loc, ctx,
                                            compressed_size=info.compress_size)
                else:
                    with stream:
                        read = stream.read
                        # Judge members whose CRC is wrong too: checked below, as damage.
                        stream._expected_crc = None  # type: ignore[attr-defined]
                        complete = copy_bounded(counted, spool, loc, ctx,
                                                compressed_size=info.compress_size)
        except (RuntimeError, NotImplementedError) as exc:  # encrypted, unsupported
            ctx.skip(loc, f"cannot read member: {exc}", inconclusive=True)
            return False
        except _ERRORS as exc:
            ctx.add(ARCHIVE_DAMAGED.finding(
                loc, f"member damaged after {spool.size} bytes: {exc}"))
            ctx.skip(loc, "damaged member; judged on the bytes before the damage",
                     inconclusive=True)
            return False
        if info.flag_bits & zipviews.ENCRYPTED:
            return self._encrypted(info, spool, loc, complete and crc == info.CRC)
        if info.file_size < 0:  # a member cut short, sizes unknown: nothing to check
            pass
        elif complete and spool.size != info.file_size:
            ctx.add(ARCHIVE_DAMAGED.finding(
                loc, f"{spool.size} bytes where the header declares {info.file_size}",
                severity=Severity.HIGH))
        elif complete and crc != info.CRC:
            ctx.add(ARCHIVE_DAMAGED.finding(
                loc, "CRC-32 does not match the header: Python's zipfile refuses the member, "
                "PyTorch's reader (which checks no CRC) loads it; the bytes were examined",
                evidence=f"header {info.CRC:08x}, content {crc:08x}", severity=Severity.HIGH))
        if refused and not isinstance(info, ZipMember):
            ctx.skip(loc, f"zipfile refuses this member ({refused}); read as PyTorch's "
                     "reader reads it", inconclusive=False)
        return complete

    def _encrypted(self, info: zipfile.ZipInfo, spool: Spool, loc: Location,
                   plain: bool) -> bool:
        """A member flagged as encrypted, read as plain data: judged when it is plain (the
        CRC matches), else emptied and inconclusive."""
        if plain:
            self._ctx.add(ZIP_READERS_DISAGREE.finding(
                loc, "the member is flagged as encrypted but its data is plain: scanners that "
                "trust the flag skip it", evidence=info.filename))
            return True
        spool.close()
        self._ctx.skip(loc, "encrypted member; not examined", inconclusive=True)
        return False

    def dispatch_member(self, info: zipfile.ZipInfo) -> None:
        """Extract a member and hand what could be read to the scan engine."""
        with Spool() as spool:
            self.extract(info, spool)
            if spool.size:
                dispatch(self._ctx, spool, self.source.location.child(info.filename))

    def close(self) -> None:
        if self._zf is not None:
            self._zf.close()
        self._stream.close()
        self._raw.close()


class _Window:
    """At most ``size`` bytes of ``f`` from its current position."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self._left = size

    def read(self, n: int) -> bytes:
        data = self._f.read(min(n, self._left))
        self._left -= len(data)
        return data


class _RawDeflate:
    """A raw deflate stream from ``f`` (of ``size`` bytes when known); ``f`` is left just
    after the stream's end."""

    def __init__(self, f: BinaryIO, size: int | None) -> None:
        self._f = f
        self._left = size
        self._d = zlib.decompressobj(-zlib.MAX_WBITS)

    def read(self, n: int) -> bytes:
        while not self._d.eof:
            data = self._d.unconsumed_tail
            if not data:
                want = CHUNK if self._left is None else min(CHUNK, self._left)
                data = self._f.read(want)
                if self._left is not None:
                    self._left -= len(data)
                if not data:
                    raise EOFError("deflate stream ended before its end marker")
            out = self._d.decompress(data, n)
            if self._d.eof and self._d.unused_data:
                self._f.seek(-len(self._d.unused_data), io.SEEK_CUR)
            if out:
                return out
        return b""


# -- tar --------------------------------------------------------------------------------


class _Clamped(io.RawIOBase):
    """A seekable stream whose reads never ask for more than remains (a tar header can
    claim petabytes; some readers would allocate what they are asked for)."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self._raw = raw
        self._size = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        left = max(self._size - self._raw.tell(), 0)
        return self._raw.read(left if n is None or n < 0 else min(n, left))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


def report_link(ctx: ScanContext, location: Location, name: str, target: str,
                kind: str) -> None:
    problem = link_target_problem(name, target)
    message = f"{kind} link to {target!r}" + (f": {problem}" if problem else "")
    ctx.add(ARCHIVE_LINK.finding(location.child(name), message, evidence=f"{name} -> {target}",
                                 severity=None if problem else Severity.MEDIUM))


def iter_tar(source: Source, ctx: ScanContext) -> Iterator[tuple[tarfile.TarFile,
                                                                tarfile.TarInfo]]:
    """The regular-file members of a tar, after reporting unsafe names, links and devices.

    Stops at the member limit or at damage, reporting either. The tar stays open while the
    caller handles each member (use :func:`extract_tar_member`).
    """
    import tarfile

    errors = (*_ERRORS, tarfile.TarError)
    loc = source.location
    size = source.size if source.size is not None else 1 << 62
    with source.open() as raw:
        try:
            tar = tarfile.TarFile(fileobj=_Clamped(raw, size))
        except errors as exc:
            ctx.add(ARCHIVE_DAMAGED.finding(loc, f"tar unreadable: {exc}"))
            ctx.skip(loc, "tar unreadable; members not examined", inconclusive=True)
            return
        count = 0
        names: Counter[str] = Counter()
        with tar:
            while True:
                try:
                    info = tar.next()
                except errors as exc:
                    ctx.add(ARCHIVE_DAMAGED.finding(loc, f"tar damaged after {count} members: "
                                                    f"{exc}"))
                    ctx.skip(loc, "tar damaged; later members not examined", inconclusive=True)
                    return
                if info is None:
                    return
                count += 1
                if count > ctx.limits.max_members:
                    ctx.skip(loc, f"over {ctx.limits.max_members} members; the rest not "
                             "examined", inconclusive=True)
                    return
                names[info.name] += 1
                if names[info.name] == 2:
                    ctx.add(ARCHIVE_DUPLICATE_MEMBER.finding(
                        loc.child(info.name), f"several members are named {info.name!r}",
                        evidence=info.name))
                check_member_name(ctx, loc, info.name)
                if info.issym() or info.islnk():
                    report_link(ctx, loc, info.name, info.linkname,
                                "symbolic" if info.issym() else "hard")
                elif info.ischr() or info.isblk() or info.isfifo():
                    kind = "character device" if info.ischr() else (
                        "block device" if info.isblk() else "FIFO")
                    ctx.add(ARCHIVE_SPECIAL_FILE.finding(loc.child(info.name), f"{kind} member",
                                                         evidence=info.name))
                elif info.isfile():
                    yield tar, info


def tar_names(source: Source, limit: int) -> set[str]:
    """The names of the first ``limit`` members of a tar (for sniffing; nothing reported)."""
    import tarfile

    names: set[str] = set()
    size = source.size if source.size is not None else 1 << 62
    with source.open() as raw:
        try:
            with tarfile.TarFile(fileobj=_Clamped(raw, size)) as tar:
                for _ in range(limit):
                    info = tar.next()
                    if info is None:
                        break
                    names.add(info.name)
        except (*_ERRORS, tarfile.TarError):
            pass
    return names


def extract_tar_member(tar: tarfile.TarFile, info: tarfile.TarInfo, spool: Spool,
                       location: Location, ctx: ScanContext) -> bool:
    """Read a tar member into ``spool``; True when complete (damage is reported)."""
    if info.size > ctx.limits.max_member_bytes:
        ctx.skip(location, f"declares {info.size} bytes, over the member limit "
                 f"({ctx.limits.max_member_bytes} bytes); not read", inconclusive=True)
        return False
    import tarfile

    try:
        f = tar.extractfile(info)
        if f is None:
            return False
        with f:
            return copy_bounded(f.read, spool, location, ctx, compressed_size=None)
    except (*_ERRORS, tarfile.TarError) as exc:
        ctx.add(ARCHIVE_DAMAGED.finding(location, f"member damaged after {spool.size} bytes: "
                                        f"{exc}"))
        ctx.skip(location, "damaged member; judged on the bytes before the damage",
                 inconclusive=True)
        return False


def sniff_tar(head: bytes) -> bool:
    """True when ``head`` starts with a valid tar header (checksum verified)."""
    if len(head) < 512 or not _tar_checksum_may_match(head):
        return False
    import tarfile

    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def _tar_checksum_may_match(head: bytes) -> bool:
    """False when the first 512 bytes cannot be a tar header because the checksum they declare
    (octal, at bytes 148 to 155) is not the sum of the header's bytes (the checksum field
    counted as spaces), as unsigned or as signed bytes: what tarfile checks first, done here
    without importing it. True means only that tarfile must decide (it also reads base-256
    checksums)."""
    field = head[148:156]
    if field[:1] in (b"\x80", b"\xff"):
        return True
    try:
        declared = int(field.split(b"\0", 1)[0].decode("ascii").strip() or "0", 8)
    except ValueError:  # not octal (a UnicodeDecodeError is a ValueError too)
        return False
    block = head[:148] + head[156:512]
    unsigned = 256 + sum(block)
    signed = unsigned - 256 * sum(b > 127 for b in block)
    return declared in (unsigned, signed)


# -- 7z ---------------------------------------------------------------------------------

SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"


def read_7z(source: Source, ctx: ScanContext) -> dict[str, Spool] | None:
    """Extract the file members of a 7z archive into spools, after checking declared sizes.

    None when nothing could be extracted (the reason is reported). py7zr is optional:
    without it the archive is inconclusive with the install hint.
    """
    loc = source.location
    try:
        import py7zr
        from py7zr.io import Py7zIO, WriterFactory
    except ImportError:
        ctx.skip(loc, MissingExtra("py7zr", "archives").diagnostics(), inconclusive=True)
        return None
    limits = ctx.limits

    class _Writer(Py7zIO):
        def __init__(self, name: str) -> None:
            self.spool = Spool()
            self.name = name

        def write(self, s: bytes | bytearray) -> int:
            if self.spool.size + len(s) > limits.max_member_bytes:
                raise OverflowError(f"{self.name}: over the member limit")
            self.spool.write(bytes(s))
            return len(s)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def flush(self) -> None:
            pass

        def size(self) -> int:
            return self.spool.size

    class _Factory(WriterFactory):
        def __init__(self) -> None:
            self.out: dict[str, _Writer] = {}

        def create(self, filename: str) -> _Writer:
            self.out[filename] = _Writer(filename)
            return self.out[filename]

    # py7zr is not hardened for hostile input: on damaged archives it raises almost anything
    # (AssertionError, AttributeError, OverflowError, ...). Whatever it raises inside these
    # calls means the archive could not be read.
    errors = (Exception,)
    with source.open() as raw:
        archive = None
        try:
            archive = py7zr.SevenZipFile(raw, mode="r")
            encrypted = archive.needs_password()
            infos = [] if encrypted else archive.list()
        except errors as exc:
            if archive is not None:
                archive.close()
            ctx.add(ARCHIVE_DAMAGED.finding(loc, f"7z archive unreadable: {exc}"))
            ctx.skip(loc, "7z archive unreadable; members not examined", inconclusive=True)
            return None
        with archive:
            if encrypted:
                ctx.skip(loc, "encrypted 7z archive; members not examined", inconclusive=True)
                return None
            if len(infos) > limits.max_members:
                ctx.skip(loc, f"{len(infos)} members, over the limit of {limits.max_members}; "
                         "not examined", inconclusive=True)
                return None
            targets = []
            total = 0
            for info in infos:
                name = info.filename
                if not check_member_name(ctx, loc, name):
                    ctx.skip(loc.child(name), "unsafe member name; not extracted",
                             inconclusive=True)
                    continue
                if info.is_symlink:
                    report_link(ctx, loc, name, "?", "symbolic")
                    continue
                if info.is_directory:
                    continue
                total += info.uncompressed or 0
                if (info.uncompressed or 0) > limits.max_member_bytes:
                    ctx.skip(loc.child(name), f"declares {info.uncompressed} bytes, over the "
                             "member limit; not read", inconclusive=True)
                    continue
                targets.append(name)
            size = source.size or 1
            if total > BOMB_FLOOR and total > limits.max_ratio * size:
                ctx.add(ARCHIVE_BOMB.finding(
                    loc, f"declares {total} bytes from {size} (over {limits.max_ratio:g}:1)"))
                ctx.skip(loc, "decompression bomb: not extracted", inconclusive=True)
                return None
            if not targets:
                return {}
            if not ctx.charge(loc, total):
                return None
            factory = _Factory()
            try:
                archive.extract(targets=targets, factory=factory)
            except errors as exc:
                ctx.add(ARCHIVE_DAMAGED.finding(loc, f"7z archive damaged: {exc}"))
                ctx.skip(loc, "7z archive damaged; judged on what was extracted",
                         inconclusive=True)
            return {name: w.spool for name, w in factory.out.items()}
