"""Object-storage prefixes: ``s3://bucket/prefix``, ``gs://bucket/prefix``,
``az://container/prefix`` (fsspec; see :mod:`mlward._internal.sources.remote` for why).

A listing is one flat ``find`` under the prefix (S3 returns a thousand keys a request); every
object becomes a work unit that carries its URL and size, so a worker's first request for it
is already a ranged read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from mlward._internal.sources.remote import filesystem, scheme_of
from mlward._internal.walk import Item, Walk
from mlward.errors import MissingExtra, ScanError
from mlward.findings import Location, ReportBuilder


class StoredObject(NamedTuple):
    url: str
    """``scheme://bucket/key``: the object's absolute location URI."""
    key: str
    """The key relative to the prefix listed (the object's name when the prefix is one)."""
    size: int


def list_objects(url: str) -> list[StoredObject]:
    """Every object under ``url``, sorted by key. Raises :class:`~mlward.errors.ScanError`
    when the prefix cannot be listed, and :class:`~mlward.errors.MissingExtra` when the
    store's fsspec package is not installed."""
    scheme = scheme_of(url)
    fs = filesystem(scheme)
    base = url.split("://", 1)[1].strip("/")
    if not base:
        raise ScanError(f"{url}: name a bucket (and optionally a prefix)")
    try:
        found = fs.find(base, detail=True)
    except MissingExtra:
        raise
    except Exception as exc:  # the SDKs' own errors: credentials, no such bucket, network
        raise ScanError(f"cannot list {url}: {type(exc).__name__}: {exc}") from None
    out = []
    for path in sorted(found):
        info = found[path]
        if info.get("type") == "directory":
            continue
        rel = path[len(base):].lstrip("/") if path.startswith(base) else path
        out.append(StoredObject(f"{scheme}://{path}", rel or path.rsplit("/", 1)[-1],
                                int(info.get("size") or 0)))
    return out


def expand_prefix(url: str, walk: Walk, builder: ReportBuilder) -> Iterator[Item]:
    """Work units for every object under ``url``; ``--exclude`` patterns match keys relative
    to the prefix. An empty prefix is inconclusive: a typo must not read as a clean bucket."""
    objects = list_objects(url)
    if not objects:
        builder.skip(Location(url.rstrip("/")), "no objects under this prefix",
                     inconclusive=True)
    for obj in objects:
        if walk.excludes(obj.key):
            walk.leave_out(obj.url, "excluded by the exclude settings", uri=obj.url)
        else:
            yield Item(obj.url, obj.url, obj.size)
