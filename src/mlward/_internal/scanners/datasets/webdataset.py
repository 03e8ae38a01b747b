"""WebDataset shards: tars whose members the loader decodes by extension.

WebDataset groups members by key (``000123.jpg``, ``000123.cls``, ``000123.pyd``) and decodes
each by its last extension: ``.pyd`` and ``.pickle`` members go straight to ``pickle.loads``.
Scanning by content alone would let such a member through when its first bytes do not look
like a pickle (it would be "unrecognised", which counts as nothing to judge), yet the loader
unpickles it all the same. Here those members are judged as pickles whatever they look like:
a member that does not parse is a malformed pickle and inconclusive. Every other member is
handed back to the scan engine, as the generic tar scanner does.
"""

from __future__ import annotations

from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.scanners.pickle import scan_pickle_stream
from mlward._internal.sources import Source
from mlward._internal.sources.archives import (
    Spool,
    dispatch,
    extract_tar_member,
    iter_tar,
    read_stream,
    sniff_tar,
    tar_names,
    too_deep,
)
from mlward.findings import Location

PICKLE_EXTENSIONS = frozenset({"pyd", "pickle"})
"""What webdataset's default decoders unpickle (``basichandlers``)."""
SNIFF_MEMBERS = 1000


def loader_unpickles(name: str) -> bool:
    """Whether webdataset unpickles the member (``.gz`` members after gunzipping them)."""
    base = name.rsplit("/", 1)[-1].lower().removesuffix(".gz")
    return base.rsplit(".", 1)[-1] in PICKLE_EXTENSIONS


def _judge(spool: Spool, loc: Location, ctx: ScanContext) -> None:
    ctx.examined(loc, "pickle (webdataset member)")
    with spool.open() as stream:
        scan_pickle_stream(stream, loc, ctx)


class WebDatasetScanner(Scanner):
    name = "webdataset"
    priority = 290  # before the generic tar scanner

    def sniff(self, source: Source) -> bool:
        if not sniff_tar(source.head(512)):
            return False
        return any(loader_unpickles(n) for n in tar_names(source, SNIFF_MEMBERS))

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        if too_deep(ctx, source.location):
            return
        samples: set[str] = set()
        pickled = 0
        for tar, info in iter_tar(source, ctx):
            loc = source.location.child(info.name)
            samples.add(info.name.split(".", 1)[0])
            with Spool() as spool:
                complete = extract_tar_member(tar, info, spool, loc, ctx)
                if not loader_unpickles(info.name):
                    if spool.size:
                        dispatch(ctx, spool, loc)
                    continue
                pickled += 1
                if not (complete or spool.size):
                    continue
                if info.name.lower().endswith(".gz"):
                    ctx.examined(loc, "gzip")
                    inner = loc.child(info.name.rsplit("/", 1)[-1][:-3])
                    with Spool() as plain:
                        read_stream(spool.source(loc), "gzip", ctx, plain, inner)
                        _judge(plain, inner, ctx)
                else:
                    _judge(spool, loc, ctx)
        ctx.fact(source.location, "dataset", format="webdataset", samples=len(samples),
                 pickled_members=pickled)
