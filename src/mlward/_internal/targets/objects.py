"""Object-storage prefixes: ``s3://bucket/prefix``, ``gs://bucket/prefix``,
``az://container/prefix`` (listed and read by :mod:`mlward._internal.sources.remote`).

Every object becomes a work unit that carries its URL and size, so a worker's first request
for it is already a ranged read.
"""

from __future__ import annotations

from collections.abc import Iterator

from mlward._internal.sources.remote import list_objects
from mlward._internal.walk import Item, Walk
from mlward.findings import Location, ReportBuilder


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
