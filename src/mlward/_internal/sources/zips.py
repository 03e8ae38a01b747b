"""Zip archives, read with bounds: member names for sniffing, and :class:`ZipArchive`, which
lists, checks and reads the members of a zip as every reader sees them.

Its own module so that a scan imports :mod:`zipfile` (and :mod:`.zipviews`) only when it meets
a zip: most files are not, and every worker would otherwise load both. The rules for hostile
input are those of :mod:`.archives`.
"""

from __future__ import annotations

import io
import itertools
import stat
import zipfile
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from mlward._internal.sources import Source, zipviews
from mlward._internal.sources.archives import (
    BOMB_FLOOR,
    CHUNK,
    MAX_OUTSIDE,
    Spool,
    check_member_name,
    copy_bounded,
    damage_errors,
    dispatch,
    report_link,
)
from mlward.findings import Location, Severity
from mlward.rules import (
    ARCHIVE_BOMB,
    ARCHIVE_DAMAGED,
    ARCHIVE_DUPLICATE_MEMBER,
    ARCHIVE_OUTSIDE_DATA,
    ZIP_READERS_DISAGREE,
)

if TYPE_CHECKING:
    from mlward._internal.scanners.interface import ScanContext


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
        except damage_errors(IndexError, KeyError, OverflowError) as exc:
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
            except damage_errors():
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
        except damage_errors():
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
        except damage_errors() as exc:
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
