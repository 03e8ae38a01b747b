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

import importlib.util
import io
import os
import posixpath
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from mlward._internal.sources import Source
from mlward.errors import MissingExtra
from mlward.findings import Location, Severity
from mlward.rules import (
    ARCHIVE_BOMB,
    ARCHIVE_DAMAGED,
    ARCHIVE_DUPLICATE_MEMBER,
    ARCHIVE_LINK,
    ARCHIVE_PATH_TRAVERSAL,
    ARCHIVE_SPECIAL_FILE,
    ARCHIVE_TOO_DEEP,
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
_ERRORS = (OSError, EOFError, ValueError, zlib.error, NotImplementedError, RuntimeError)


def damage_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """What damaged input raises while a stream or zip is read, and ``more``. Called in
    ``except`` clauses, so only once something was raised: lzma and zipfile (whose
    exceptions are among them) are imported where a file needs them, not for every scan."""
    import lzma
    import zipfile

    return (*_ERRORS, lzma.LZMAError, zipfile.BadZipFile, *more)
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
            import bz2

            return bz2.BZ2Decompressor()
        import lzma

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
    import lzma  # only for a head that starts like an lzma stream

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
        except damage_errors() as exc:
            ctx.add(ARCHIVE_DAMAGED.finding(
                source.location, f"{kind} stream damaged after {spool.size} bytes: {exc}"))
            ctx.skip(location, f"{kind} stream damaged; judged on the bytes before the damage",
                     inconclusive=True)
            return False


# -- zip (the archive itself: :mod:`.zips`) ---------------------------------------------


def zip_names(source: Source) -> list[str] | None:
    """The member names of a zip (for sniffing; nothing reported), None when unreadable.

    Read once per source: several sniffers ask.
    """
    if "zip_names" not in source.sniffed:
        import zipfile  # here: only sources that look like zips get this far

        try:
            with source.open() as f, zipfile.ZipFile(f) as zf:
                source.sniffed["zip_names"] = zf.namelist()
        except damage_errors(KeyError, IndexError, OverflowError):  # hostile directories
            source.sniffed["zip_names"] = None
    names = source.sniffed["zip_names"]
    return list(names) if isinstance(names, list) else None


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

    errors = damage_errors(tarfile.TarError)
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
        except damage_errors(tarfile.TarError):
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
    except damage_errors(tarfile.TarError) as exc:
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
