"""PyTorch checkpoints: the zip format (``torch.save`` since 1.6) and the legacy pickle
sequence (``_use_new_zipfile_serialization=False``).

Pickles are judged by the pickle machine (:func:`~mlward.scanners.pickle.scan_pickle_stream`);
tensor storage is recognised by its place in the file and never read, so the time to scan a
checkpoint does not grow with its tensors.
"""

from __future__ import annotations

import re
import zipfile

from mlward.scanners.archive import is_zip
from mlward.scanners.interface import ScanContext, Scanner
from mlward.scanners.pickle import scan_pickle_stream
from mlward.sources import Source
from mlward.sources.archives import Spool, ZipArchive, too_deep

LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
"""The number a legacy checkpoint pickles first (as a LONG1 of 10 bytes)."""
LEGACY_PICKLES = 5
"""Magic number, protocol version, sys info, the object, the storage keys; raw bytes follow."""

_STORAGE = re.compile(r"(?:[^/]+/)?data/[^/]+")
"""Tensor storage members: ``<prefix>/data/<key>``, raw bytes that torch never unpickles."""


def torch_zip_names(source: Source) -> list[str] | None:
    """The member names when ``source`` is a PyTorch zip checkpoint, else None."""
    if not is_zip(source):
        return None
    try:
        with source.open() as f, zipfile.ZipFile(f) as zf:
            names = zf.namelist()
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):
        return None
    if {"config.json", "metadata.json"} <= set(names):
        return None  # a Keras archive
    if any(n == "data.pkl" or n.endswith(("/data.pkl", "/.data/version"))
           for n in names):
        return names
    return None


class TorchZipScanner(Scanner):
    """``torch.save`` zip checkpoints (and TorchScript archives).

    Every ``.pkl`` member is judged as a pickle whatever its first bytes; storage members
    under ``data/`` are counted, not read; any other member is scanned by content.
    """

    name = "pytorch-zip"
    priority = 150

    def sniff(self, source: Source) -> bool:
        return torch_zip_names(source) is not None

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        if too_deep(ctx, source.location):
            return
        archive = ZipArchive.open(source, ctx)
        if archive is None:
            return
        storages = 0
        storage_bytes = 0
        try:
            for info in archive.members:
                name = info.filename
                if _STORAGE.fullmatch(name):
                    storages += 1
                    storage_bytes += info.file_size
                elif name.endswith(".pkl"):
                    loc = source.location.child(name)
                    with Spool() as spool:
                        archive.extract(info, spool)
                        if spool.size:
                            ctx.examined(loc, "pickle")
                            with spool.open() as f:
                                result = scan_pickle_stream(f, loc, ctx)
                            if not result.complete:
                                ctx.skip(loc, "pickle analysis incomplete", inconclusive=True)
                else:
                    archive.dispatch_member(info)
        finally:
            archive.close()
        if storages:
            ctx.skip(source.location, f"{storages} tensor storage member(s), {storage_bytes} "
                     "bytes: raw tensor data, not read", inconclusive=False)


class TorchLegacyScanner(Scanner):
    """Legacy checkpoints: five pickles, then raw storage bytes that are never parsed."""

    name = "pytorch-legacy"
    priority = 150

    def sniff(self, source: Source) -> bool:
        head = source.head(32)
        return head[:1] == b"\x80" and b"\x8a\x0a" + LEGACY_MAGIC in head

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        with source.open() as f:
            result = scan_pickle_stream(f, source.location, ctx, max_pickles=LEGACY_PICKLES)
        if not result.complete:
            ctx.skip(source.location, "pickle analysis incomplete", inconclusive=True)
        elif result.pickles < LEGACY_PICKLES:
            ctx.skip(source.location, f"truncated legacy checkpoint: {result.pickles} of "
                     f"{LEGACY_PICKLES} pickles (torch cannot load it)", inconclusive=False)
        elif source.size is not None and source.size > result.end_offset:
            ctx.skip(source.location, f"{source.size - result.end_offset} bytes of raw tensor "
                     "storage: not read", inconclusive=False)
