"""Vulnerability data in the OSV schema: load (folder, zip, API), index, match (PEP 440).

Where data comes from (:func:`source_for`): the ``vuln_db`` setting, else the export that
``mlward vulndb update`` downloaded into the cache, plus the OSV API with ``online``. With none
of them there is no data, and callers must say the dependencies were not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlward._internal.lazy import lazy_attributes
from mlward._internal.vulndb.config import data_paths, exported_zip
from mlward.settings import Settings

if TYPE_CHECKING:
    from mlward._internal.vulndb.coverage import Assessment, Coverage
    from mlward._internal.vulndb.index import LocalIndex, open_index
    from mlward._internal.vulndb.records import Advisory

# The index (sqlite3, packaging, YAML) loads on first use (PEP 562): a scan asks
# for its data paths in every tree, and most trees hold no dependency file.
__getattr__ = lazy_attributes(__name__, {
    "LocalIndex": "index", "open_index": "index", "Advisory": "records"})


class VulnSource(Protocol):
    """Something that answers: which advisories name these packages?"""

    @property
    def description(self) -> str: ...

    def advisories_for(self, names: Iterable[str]) -> dict[str, list[Advisory]]: ...

    def coverage(self) -> list[Coverage]:
        """What the source holds (ecosystems, records, date): see :func:`assess`."""
        ...


class MergedSource:
    """Several sources answering as one; an advisory found in more than one counts once."""

    def __init__(self, sources: list[VulnSource]) -> None:
        self.sources = sources

    @property
    def description(self) -> str:
        return "; ".join(s.description for s in self.sources)

    def advisories_for(self, names: Iterable[str]) -> dict[str, list[Advisory]]:
        wanted = list(names)
        out: dict[str, dict[str, Advisory]] = {}
        for source in self.sources:
            for name, advs in source.advisories_for(wanted).items():
                for a in advs:
                    out.setdefault(name, {}).setdefault(a.id, a)
        return {name: list(by_id.values()) for name, by_id in out.items()}

    def coverage(self) -> list[Coverage]:
        return [c for source in self.sources for c in source.coverage()]


RECHECK_SECONDS = 60.0
"""How long an opened index is used before its data is fingerprinted again (see
:func:`local_source`)."""
_OPEN: dict[Path, tuple[LocalIndex, float]] = {}
"""Each data path's index, opened once per process, and when its data was last checked."""


def source_for(settings: Settings) -> VulnSource | None:
    """The advisories the settings point at, as one source; None when there are none."""
    sources: list[VulnSource] = [local_source(p, settings) for p in data_paths(settings)]
    if settings.online:
        from mlward._internal.vulndb.online import OsvApi

        sources.append(OsvApi(settings.osv_api))
    if not sources:
        return None
    return sources[0] if len(sources) == 1 else MergedSource(sources)


def assess(source: VulnSource, settings: Settings) -> Assessment:
    """Whether ``source`` can check dependencies, and the warnings to show with its answers
    (:mod:`mlward._internal.vulndb.coverage`)."""
    from datetime import datetime, timezone

    from mlward._internal.vulndb.coverage import assess as assess_coverage

    return assess_coverage(source, max_age_days=settings.vuln_db_max_age_days,
                           now=datetime.now(timezone.utc))


def local_source(path: Path, settings: Settings) -> LocalIndex:
    """The index of ``path``, opened once per process and rebuilt if the data changed.

    Whether the data changed is checked again only after :data:`RECHECK_SECONDS`: the check
    stats every file of a data folder (thousands), and one command asks for its source
    several times (``mlward bom``: before its scan and after it). Within a command nothing is
    lost: data that changes while it runs was checked against the data it had when it started
    (rebuilding then would only make its later answers, the report's facts about the data,
    disagree with its findings); a process that lives longer (a watch) sees the change at its
    next check.
    """
    import time

    from mlward._internal.vulndb.index import fingerprint, open_index

    key = Path(path).resolve()
    index, checked = _OPEN.get(key, (None, 0.0))
    now = time.monotonic()
    if index is not None and now - checked < RECHECK_SECONDS:
        return index
    if index is None or index.meta().get("fingerprint") != fingerprint(key):
        index = open_index(key, settings=settings)
    _OPEN[key] = (index, now)
    return index


__all__ = ["Advisory", "LocalIndex", "MergedSource", "VulnSource", "assess", "data_paths",
           "exported_zip", "local_source", "open_index", "source_for"]
