"""Generic containers: zip, tar and 7z archives, and gzip/bz2/xz/lzma/zlib streams.

Each member (or the decompressed stream) is handed back to the scan engine, which sniffs it
by content like any file: a pickle inside a zip inside a tar.gz is judged as a pickle.
Specific zip formats (PyTorch checkpoints, numpy .npz, Keras) have their own scanners that
run first; these are the fallback.
"""

from __future__ import annotations

from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward._internal.sources.archives import (
    SEVEN_ZIP_MAGIC,
    Spool,
    cut_zlib,
    decompressed_name,
    dispatch,
    extract_tar_member,
    iter_tar,
    read_7z,
    read_stream,
    sniff_stream,
    sniff_tar,
    too_deep,
    zip_names,
)

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
"""A zip's first member, or its end record (an empty zip is only that)."""


def is_zip(source: Source) -> bool:
    return source.head(4) in ZIP_MAGICS


def ends_like_zip(source: Source) -> bool:
    """A zip behind other bytes: its end record in the last bytes, and a directory zipfile
    reads (a self-extracting archive, or a pickle with a zip appended, which torch.load
    runs as a pickle while zip readers see the zip)."""
    size = source.size
    if size is None or size < 22:
        return False
    head = source.head()
    if len(head) == size:
        tail = head[-22:]
    else:
        with source.open() as f:
            f.seek(size - 22)
            tail = f.read(22)
    return tail[:4] == ZIP_MAGICS[1] and zip_names(source) is not None


class ZipScanner(Scanner):
    """Any zip: every file member is extracted (bounded) and scanned by content; a zip
    behind other bytes too (the bytes in front are judged as well)."""

    name = "zip"
    priority = 300

    def sniff(self, source: Source) -> bool:
        return is_zip(source) or ends_like_zip(source)

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        if too_deep(ctx, source.location):
            return
        from mlward._internal.sources.zips import ZipArchive  # only a zip needs zipfile

        archive = ZipArchive.open(source, ctx)
        if archive is None:
            return
        try:
            for info in archive.members:
                archive.dispatch_member(info)
        finally:
            archive.close()


class TarScanner(Scanner):
    """A tar archive (compressed tars arrive here after their stream is decompressed)."""

    name = "tar"
    priority = 300

    def sniff(self, source: Source) -> bool:
        return sniff_tar(source.head(512))

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        if too_deep(ctx, source.location):
            return
        for tar, info in iter_tar(source, ctx):
            loc = source.location.child(info.name)
            with Spool() as spool:
                extract_tar_member(tar, info, spool, loc, ctx)
                if spool.size:
                    dispatch(ctx, spool, loc)


class SevenZipScanner(Scanner):
    """A 7z archive, through py7zr (the ``archives`` extra)."""

    name = "7z"
    priority = 300

    def sniff(self, source: Source) -> bool:
        return source.head(6) == SEVEN_ZIP_MAGIC

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        if too_deep(ctx, source.location):
            return
        spools = read_7z(source, ctx) or {}
        try:
            for name, spool in spools.items():
                if spool.size:
                    dispatch(ctx, spool, source.location.child(name))
        finally:
            for spool in spools.values():
                spool.close()


_COMPRESSED_PICKLE_SUFFIXES = (".joblib", ".jbl", ".pkl", ".pickle", ".z", ".zlib")
"""Names under which a zlib stream too short to sniff is still judged (as damaged)."""


class CompressedStreamScanner(Scanner):
    """A gzip, bz2, xz, lzma (alone) or zlib stream: a compressed pickle, a joblib file
    compressed any way joblib does, a .tar.gz. The content is decompressed with bounds and
    scanned by content."""

    name = "compressed"
    priority = 300

    def sniff(self, source: Source) -> bool:
        head = source.head()
        return sniff_stream(head) is not None or (
            source.name.lower().endswith(_COMPRESSED_PICKLE_SUFFIXES) and cut_zlib(head))

    def scan(self, source: Source, ctx: ScanContext) -> None:
        kind = sniff_stream(source.head()) or "zlib"
        ctx.examined(source.location, kind)
        if too_deep(ctx, source.location):
            return
        loc = source.location.child(decompressed_name(source.name, kind))
        with Spool() as spool:
            read_stream(source, kind, ctx, spool, loc)
            if spool.size:
                dispatch(ctx, spool, loc)
