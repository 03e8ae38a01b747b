"""Can this vulnerability data answer? What it covers, how old it is, and when it is blind.

A data folder that exists but holds no usable advisories (empty, another layout, every record
malformed, or only other ecosystems' records) would match nothing and make every dependency
look clean: that is blindness, and callers report those dependencies as not checked
(inconclusive, exit 2). Data that can answer may still deserve a warning the user sees in
every output format: it is older than ``vuln_db_max_age_days`` (the newest record's
``modified`` time is the data's date: a copy or a clone resets file times, record times stay),
its age is unknown, some records could not be read, or one of several sources is empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlward.findings import Fact, Location, ReportBuilder, local_uri

if TYPE_CHECKING:
    from mlward._internal.vulndb import VulnSource

ECOSYSTEM = "PyPI"
"""The ecosystem of every dependency mlward reads (conda packages are mapped to PyPI)."""
MAX_NAMED = 10


@dataclass(frozen=True)
class Coverage:
    """What one source holds."""

    description: str
    where: str
    """Its path or URL."""
    advisories: Mapping[str, int] = field(default_factory=dict)
    """Readable records per ecosystem."""
    records: int = 0
    unreadable: int = 0
    newest: datetime | None = None
    """The latest ``modified`` time of its records (UTC); None when no record has one."""
    live: bool = False
    """A service answering now (the OSV API): every ecosystem, never stale."""

    def covers(self, ecosystem: str) -> bool:
        return self.live or self.advisories.get(ecosystem, 0) > 0

    def gap(self, ecosystem: str) -> str:
        """Why this source has nothing for ``ecosystem`` (when it has nothing)."""
        if self.records == 0:
            return f"{self.description} holds no OSV records"
        if self.unreadable >= self.records:
            return f"{self.description}: all {self.records} records are unreadable"
        others = sorted(e for e, n in self.advisories.items() if n)
        if others:
            return f"{self.description} covers {', '.join(others)} but not {ecosystem}"
        return f"{self.description} holds no {ecosystem} advisories"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.description, "live": self.live, "records": self.records,
                "unreadable": self.unreadable, "advisories": dict(self.advisories),
                "newest_record": None if self.newest is None else self.newest.isoformat()}


@dataclass(frozen=True)
class Assessment:
    coverages: tuple[Coverage, ...]
    blind: str | None
    """Why dependencies cannot be checked against this data, or None when they can."""
    warnings: tuple[str, ...]

    def unchecked(self, names: Iterable[str]) -> str:
        """The skip reason for a place whose packages ``names`` went unchecked."""
        listed = sorted(set(names))
        shown = ", ".join(listed[:MAX_NAMED]) + (", ..." if len(listed) > MAX_NAMED else "")
        return (f"{self.blind}: {len(listed)} package(s) not checked"
                + (f" ({shown})" if listed else ""))

    def record(self, builder: ReportBuilder) -> None:
        """Put the data's facts and warnings in a report: ``stats["warnings"]``, which the
        text writer prints, SARIF carries as tool notifications and JSON as it is."""
        root = builder.root or os.curdir
        for c in self.coverages:
            where = c.where if c.live else local_uri(c.where, root)
            builder.fact(Fact(Location(where), "vulnerability-data", c.to_dict()))
        if self.warnings:
            listed = builder.stats.setdefault("warnings", [])
            listed.extend(w for w in self.warnings if w not in listed)


def assess(source: VulnSource, *, max_age_days: int, now: datetime,
           ecosystem: str = ECOSYSTEM) -> Assessment:
    """Whether ``source`` can check ``ecosystem`` packages, and what the user must be told."""
    coverages = tuple(source.coverage())
    covering = [c for c in coverages if c.covers(ecosystem)]
    blind = None
    if not covering:
        blind = ("vulnerability data unusable (" + "; ".join(c.gap(ecosystem) for c in coverages)
                 + ")")
    warnings = []
    for c in coverages:
        if c.live:
            continue
        if covering and not c.covers(ecosystem):
            warnings.append(f"{c.gap(ecosystem)} (ignored: other data covers {ecosystem})")
        if 0 < c.unreadable < c.records:
            warnings.append(f"{c.description}: {c.unreadable} of {c.records} records could "
                            "not be read (`mlward vulndb index` lists them)")
        if not c.covers(ecosystem):
            continue
        if c.newest is None:
            warnings.append(f"{c.description}: no record carries a date, so the data's age "
                            "is unknown")
        elif (now - c.newest).days > max_age_days:
            warnings.append(f"{c.description} is {(now - c.newest).days} days old (newest "
                            f"record {c.newest:%Y-%m-%d}; warned after {max_age_days} days, "
                            "vuln_db_max_age_days): refresh it, e.g. `mlward vulndb update`")
    return Assessment(coverages, blind, tuple(warnings))
