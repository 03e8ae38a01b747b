"""How each reader sees one zip file, and where the readers disagree.

Zip readers disagree more than readers of any other container, and each disagreement is a
way to show a scanner one archive and a loader another:

- Python's :mod:`zipfile` reads the central directory found just before the end record,
  shifts every offset by the bytes in front of the archive, and refuses a member whose local
  name differs from its central name, whose CRC is wrong or whose encryption flag is set.
- PyTorch's reader (miniz) reads the central directory at the offset the end record
  *states*, shifts nothing, never compares names, looks names up regardless of case, and is
  built without CRC checks (``MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS``).
- Streaming readers walk the local headers from the start of the file, never see the central
  directory, and take each member's sizes and method from its local header.

:func:`read_views` reads the three views from the headers alone (nothing is decompressed
unless a member's end can only be found that way), and :func:`compare` lists where they
disagree and which bytes lie outside every member. The archive reader
(:class:`~mlward._internal.sources.archives.ZipArchive`) then judges every interpretation.
"""

from __future__ import annotations

import bisect
import struct
import zlib
from collections.abc import Callable, Iterable
from typing import BinaryIO, NamedTuple

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
END_SIG = b"PK\x05\x06"
END64_SIG = b"PK\x06\x06"
LOCATOR_SIG = b"PK\x06\x07"
DESCRIPTOR_SIG = b"PK\x07\x08"
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_END64 = struct.Struct("<4sQHHIIQQQQ")
_LOCATOR = struct.Struct("<4sIQI")
ENCRYPTED = 0x01
DESCRIPTOR = 0x08
MAX_COMMENT = 0xFFFF
PEEK = 64
"""Bytes of each member's (raw) data kept from the walk: enough to sniff a pickle."""
_HEADER_READ = _LOCAL.size + 448
"""One read per local header: the fixed part, a usual name and extra field, and the peek."""


class Entry(NamedTuple):
    """One member as one reader sees it."""

    name: bytes
    """The name as stored (readers decode it differently; bytes compare exactly)."""
    header: int
    """Offset of the member's local header in the file."""
    method: int
    flags: int
    crc: int
    compress_size: int
    file_size: int

    @property
    def text(self) -> str:
        """The name as zipfile decodes it (UTF-8 when flagged, else cp437)."""
        if self.flags & 0x800:
            return self.name.decode("utf-8", "replace")
        return self.name.decode("cp437")


class Local(NamedTuple):
    """A local header, read at its offset."""

    entry: Entry
    data: int
    """Where the member's data starts."""
    end: int
    """Where the member ends (its data, then its data descriptor if any); past the file's
    end when the member is cut short."""
    peek: bytes
    """The first :data:`PEEK` bytes of the raw (possibly compressed) data."""


class End(NamedTuple):
    """The end of central directory record (zip64 fields applied)."""

    position: int
    """Offset of the (32-bit) end record."""
    cd_offset: int
    """The central directory's offset as the record states it."""
    cd_size: int
    entries: int
    zip64: bool
    stop: int
    """Where the record and its comment end."""

    @property
    def python_cd_start(self) -> int:
        """Where zipfile reads the directory: just before the end record (and the zip64
        record and locator)."""
        return self.position - self.cd_size - (76 if self.zip64 else 0)


class Views:
    """What each reader sees; None where a reader cannot open the archive."""

    def __init__(self, size: int, end: End | None, python: list[Entry] | None,
                 pytorch: list[Entry] | None) -> None:
        self.size = size
        self.end = end
        self.python = python
        """Python's zipfile: the directory before the end record, offsets shifted."""
        self.pytorch = pytorch
        """PyTorch's reader (miniz): the directory where the end record says, unshifted."""
        self.locals: dict[int, Local] = {}
        """Every local header read, by offset: the walk's and those the directories name."""
        self.walked: list[int] = []
        """Offsets of the local headers a streaming reader finds, in order."""
        self.outside: list[tuple[int, int, str]] = []
        """Byte ranges (start, end, where) that no member covers."""


class Disagreement(NamedTuple):
    message: str
    evidence: str
    extra: Entry | None = None
    """A member one reader reads differently from zipfile: to be judged as well."""


def _zip64_sizes(extra: bytes, fields: list[str], values: dict[str, int]) -> None:
    """Apply a zip64 extra field (0x0001): the listed fields that are 0xFFFFFFFF, in order."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, n = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            body = extra[pos + 4:pos + 4 + n]
            at = 0
            for name in fields:
                if values[name] in (0xFFFFFFFF, 0xFFFF) and at + 8 <= len(body):
                    values[name] = struct.unpack_from("<Q", body, at)[0]
                    at += 8
            return
        pos += 4 + n


def read_local(f: BinaryIO, offset: int, size: int,
               central: Entry | None = None) -> Local | None:
    """The local header at ``offset``, or None when there is none. Where the member ends
    needs its sizes: from the header, else (a data descriptor) from ``central`` when the
    descriptor after the data confirms it, else unknown (``end`` = -1)."""
    if offset < 0 or offset + _LOCAL.size > size:
        return None
    f.seek(offset)
    block = f.read(_HEADER_READ)
    if len(block) < _LOCAL.size or block[:4] != LOCAL_SIG:
        return None
    (_, _, flags, method, _, _, crc, csize, usize, nlen,
     xlen) = _LOCAL.unpack_from(block)
    data = offset + _LOCAL.size + nlen + xlen
    if data > size:
        return None
    if len(block) < _LOCAL.size + nlen + xlen + PEEK:
        f.seek(offset + _LOCAL.size)
        block = block[:_LOCAL.size] + f.read(nlen + xlen + PEEK)
    name = block[_LOCAL.size:_LOCAL.size + nlen]
    if 0xFFFFFFFF in (csize, usize):
        values = {"file_size": usize, "compress_size": csize}
        _zip64_sizes(block[_LOCAL.size + nlen:_LOCAL.size + nlen + xlen],
                     ["file_size", "compress_size"], values)
        csize, usize = values["compress_size"], values["file_size"]
    entry = Entry(name, offset, method, flags, crc, csize, usize)
    peek = block[_LOCAL.size + nlen + xlen:_LOCAL.size + nlen + xlen + PEEK]
    if not flags & DESCRIPTOR:
        return Local(entry, data, data + entry.compress_size, peek)
    if central is not None:
        found = _descriptor(f, data + central.compress_size, central.compress_size)
        if found is not None and found[0] == central.crc:
            entry = Entry(name, offset, method, flags, central.crc, central.compress_size,
                          central.file_size)
            return Local(entry, data, data + central.compress_size + found[2], peek)
    return Local(entry, data, -1, peek)


def _descriptor(f: BinaryIO, offset: int, stored: int) -> tuple[int, int, int] | None:
    """The data descriptor at ``offset`` of a member of ``stored`` bytes, as (CRC,
    uncompressed size, length), when its size field matches; else None. A descriptor is an
    optional signature, the CRC, then 32-bit or (zip64) 64-bit sizes."""
    f.seek(offset)
    raw = f.read(24)
    sig = 4 if raw[:4] == DESCRIPTOR_SIG else 0
    body = raw[sig:]
    if len(body) < 12:
        return None
    crc, csize, usize = struct.unpack_from("<III", body)
    if csize == stored:
        return crc, usize, sig + 12
    if len(body) >= 20:
        csize64, usize64 = struct.unpack_from("<QQ", body, 4)
        if csize64 == stored:
            return crc, usize64, sig + 20
    return None


def follow(f: BinaryIO, local: Local, size: int, charge: Callable[[int], bool]) -> Local:
    """A member whose sizes are in a data descriptor, followed the way a streaming reader
    follows it: to the end of its deflate stream, or (stored) to the first descriptor whose
    size field matches; its sizes and CRC are then the descriptor's. When the end cannot be
    found (a cut download), the member runs to the end of the file, with unknown sizes
    (``file_size`` -1), and ``end`` is -1. ``charge`` is told the bytes decompressed on the
    way and stops the walk when it returns False."""
    stored = _stream_length(f, local, charge)
    if stored is None:
        entry = local.entry._replace(compress_size=max(size - local.data, 0), file_size=-1)
        return local._replace(entry=entry, end=-1)
    found = _descriptor(f, local.data + stored, stored)
    crc, usize, length = found if found is not None else (local.entry.crc, -1, 0)
    entry = local.entry._replace(crc=crc, compress_size=stored, file_size=usize)
    return local._replace(entry=entry, end=local.data + stored + length)


def _stream_length(f: BinaryIO, local: Local, charge: Callable[[int], bool]) -> int | None:
    f.seek(local.data)
    if local.entry.method == 0:
        return find_descriptor(f, local.data)
    if local.entry.method != 8:
        return None
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    consumed = 0
    while not d.eof:
        chunk = d.unconsumed_tail
        if not chunk:
            chunk = f.read(1 << 20)
            consumed += len(chunk)
            if not chunk:
                return None
        try:
            out = d.decompress(chunk, 1 << 20)
        except zlib.error:
            return None
        if not charge(len(out)):
            return None
    return consumed - len(d.unused_data)


def find_descriptor(f: BinaryIO, start: int) -> int | None:
    """The size of a stored member of unknown size: the distance to a data descriptor
    (signature, CRC, sizes) whose size field matches it."""
    f.seek(start)
    offset = 0
    tail = b""
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            return None
        data = tail + chunk
        base = offset - len(tail)
        at = data.find(DESCRIPTOR_SIG)
        while at >= 0:
            stored = base + at
            fields = data[at + 8:at + 12]
            if len(fields) < 4:
                break
            if stored >= 0 and struct.unpack("<I", fields)[0] == stored & 0xFFFFFFFF:
                return stored
            at = data.find(DESCRIPTOR_SIG, at + 1)
        tail = data[-24:]
        offset += len(chunk)


def read_end(f: BinaryIO, size: int) -> End | None:
    """The end record, found as zipfile finds it (the last 22 bytes, else the last
    occurrence of its signature within a comment's reach), zip64 record applied."""
    if size < _END.size:
        return None
    f.seek(size - _END.size)
    tail = f.read(_END.size)
    at = size - _END.size
    if tail[:4] != END_SIG or tail[-2:] != b"\x00\x00":
        start = max(size - _END.size - MAX_COMMENT, 0)
        f.seek(start)
        window = f.read(size - start)
        found = window.rfind(END_SIG)
        if found < 0 or found + _END.size > len(window):
            return None
        at = start + found
        tail = window[found:found + _END.size]
    (_, _, _, _, count, cd_size, cd_offset, comment) = _END.unpack(tail)
    stop = at + _END.size + comment
    zip64 = False
    if at >= _LOCATOR.size + _END64.size:
        f.seek(at - _LOCATOR.size)
        locator = f.read(_LOCATOR.size)
        if locator[:4] == LOCATOR_SIG:
            f.seek(at - _LOCATOR.size - _END64.size)
            record = f.read(_END64.size)
            if record[:4] == END64_SIG:
                (_, _, _, _, _, _, _, count, cd_size, cd_offset) = _END64.unpack(record)
                zip64 = True
    return End(at, cd_offset, cd_size, count, zip64, min(stop, size))


def read_central(f: BinaryIO, start: int, end: End, size: int,
                 limit: int) -> list[Entry] | None:
    """The central directory at ``start`` as miniz reads it, or None when there is none."""
    if start < 0 or start + end.cd_size > size:
        return None
    f.seek(start)
    data = f.read(min(end.cd_size, 64 << 20))
    entries: list[Entry] = []
    pos = 0
    for _ in range(min(end.entries, limit)):
        if pos + _CENTRAL.size > len(data) or data[pos:pos + 4] != CENTRAL_SIG:
            return None
        (_, _, _, flags, method, _, _, crc, csize, usize, nlen, xlen, clen, _, _, _,
         offset) = _CENTRAL.unpack_from(data, pos)
        name = data[pos + _CENTRAL.size:pos + _CENTRAL.size + nlen]
        values = {"file_size": usize, "compress_size": csize, "header": offset}
        extra = data[pos + _CENTRAL.size + nlen:pos + _CENTRAL.size + nlen + xlen]
        _zip64_sizes(extra, ["file_size", "compress_size", "header"], values)
        entries.append(Entry(name, values["header"], method, flags, crc,
                             values["compress_size"], values["file_size"]))
        pos += _CENTRAL.size + nlen + xlen + clen
    return entries


def read_views(f: BinaryIO, size: int, python: list[Entry] | None, *, limit: int,
               charge: Callable[[int], bool]) -> Views:
    """Read what each reader sees. ``python`` is zipfile's member list (None when zipfile
    cannot open the archive); ``limit`` bounds the members read per view."""
    end = read_end(f, size)
    pytorch: list[Entry] | None = None
    if end is not None:
        concat = end.python_cd_start - end.cd_offset
        if python is not None and concat == 0:
            pytorch = python
        else:
            pytorch = read_central(f, end.cd_offset, end, size, limit)
    views = Views(size, end, python, pytorch)
    centrals: dict[int, Entry] = {}
    for entries in (pytorch, python):
        for e in entries or ():
            centrals.setdefault(e.header, e)
    for offset, entry in centrals.items():
        local = read_local(f, offset, size, entry)
        if local is not None:
            views.locals[offset] = local
    _walk(f, views, centrals, limit, charge)
    return views


def _walk(f: BinaryIO, views: Views, centrals: dict[int, Entry], limit: int,
          charge: Callable[[int], bool]) -> None:
    """The local headers from the start of the file, as a streaming reader follows them,
    and the bytes between them that no member covers."""
    size = views.size
    known = sorted(o for o in centrals if 0 <= o < size)
    directory = size
    if views.end is not None and 0 <= views.end.python_cd_start <= views.end.position:
        directory = views.end.python_cd_start
    if views.end is not None and views.end.stop < size:
        views.outside.append((views.end.stop, size, "after the end record"))
    f.seek(0)
    pos = 0
    if f.read(4) != LOCAL_SIG:
        first = known[0] if known else _first_signature(f, size)
        if not first:
            return
        views.outside.append((0, first, "before the first member"))
        pos = first
    while pos < directory and len(views.walked) < limit:
        local = views.locals.get(pos) or read_local(f, pos, size, centrals.get(pos))
        if local is None:
            at = bisect.bisect_right(known, pos)
            following = known[at] if at < len(known) else None
            if following is None:
                break
            views.outside.append((pos, following, "between members"))
            pos = following
            continue
        if local.end < 0:
            local = follow(f, local, size, charge)
        views.locals[pos] = local
        views.walked.append(pos)
        if local.end < 0 or local.end > size:
            return  # cut short, or an end that cannot be found: nothing after it is known
        pos = local.end
    f.seek(pos)
    if pos < directory and f.read(4) not in (CENTRAL_SIG, END_SIG, END64_SIG):
        views.outside.append((pos, directory, "after the last member"))


def _first_signature(f: BinaryIO, size: int) -> int | None:
    """The offset of the first local header signature in the file (bounded search)."""
    f.seek(0)
    data = f.read(min(size, 16 << 20))
    at = data.find(LOCAL_SIG)
    return at if at >= 0 else None


def compare(views: Views) -> list[Disagreement]:
    """Where the readers disagree, with the members only some of them read."""
    found: list[Disagreement] = []
    python = views.python
    pytorch = views.pytorch
    listed = {e.header for e in python or ()} | {e.header for e in pytorch or ()}
    if python is None and pytorch is not None:
        found.append(Disagreement(
            f"Python's zipfile cannot open this archive; PyTorch's reader can, and reads "
            f"{len(pytorch)} member(s)", f"{len(pytorch)} member(s)"))
    if python is not None and views.end is not None and pytorch is None:
        found.append(Disagreement(
            "PyTorch's reader cannot open this archive: no central directory at the offset "
            "its end record states, where zipfile (shifting offsets by the bytes in front) "
            "finds one", f"directory stated at {views.end.cd_offset}"))
    if python is not None and pytorch is not None and pytorch is not python:
        ours = {(e.name, e.header, e.compress_size, e.method) for e in python}
        theirs = [e for e in pytorch if (e.name, e.header, e.compress_size, e.method)
                  not in ours]
        for e in theirs:
            found.append(Disagreement(
                f"PyTorch's reader finds member {e.text!r} (at offset {e.header}) where "
                "Python's zipfile does not: they read different central directories",
                e.text, e))
    for entries in (python, pytorch if pytorch is not python else None):
        for e in entries or ():
            found.extend(_against_local(e, views.locals.get(e.header)))
    for offset in views.walked:
        if (python is not None or pytorch is not None) and offset not in listed:
            e = views.locals[offset].entry
            found.append(Disagreement(
                f"member {e.text!r} (at offset {offset}) is in the local headers only: "
                "streaming readers read it, the central directory does not list it",
                e.text, e))
    return _unique(found)


def _against_local(e: Entry, local: Local | None) -> Iterable[Disagreement]:
    """How the local header of a listed member disagrees with its central entry."""
    if local is None:
        return
    loc = local.entry
    if loc.name != e.name:
        yield Disagreement(
            f"member {e.text!r} is named {loc.text!r} in its local header: zipfile refuses "
            "it, PyTorch's reader and streaming readers read it", f"{e.text} / {loc.text}")
    if (loc.flags ^ e.flags) & ENCRYPTED:
        yield Disagreement(
            f"member {e.text!r}: the encryption flag is set in one header and not in the "
            "other; readers that trust either one read it differently", e.text)
    sized = not loc.flags & DESCRIPTOR
    if loc.method != e.method or (sized and (loc.compress_size, loc.file_size)
                                  != (e.compress_size, e.file_size)):
        yield Disagreement(
            f"member {e.text!r}: its local header says method {loc.method}, "
            f"{loc.compress_size} bytes stored, {loc.file_size} bytes; the central directory "
            f"says method {e.method}, {e.compress_size}, {e.file_size}: streaming readers "
            "read other bytes than zipfile and PyTorch", e.text, loc)


def _unique(found: list[Disagreement]) -> list[Disagreement]:
    seen: set[tuple[str, Entry | None]] = set()
    out = []
    for d in found:
        if (d.message, d.extra) not in seen:
            seen.add((d.message, d.extra))
            out.append(d)
    return out
