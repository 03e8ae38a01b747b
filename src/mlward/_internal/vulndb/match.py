"""PEP 440 matching of versions and requirement ranges against OSV advisories.

A version is affected by an ECOSYSTEM range when it lies in ``[introduced, fixed)`` or
``[introduced, last_affected]`` for some pair of events (events are ordered by version, as the
OSV schema asks), or when it is in the record's explicit ``versions`` list. Versions that are
not valid PEP 440 never match a range (they are compared by string against the list only).

An unpinned requirement (``mlflow>=2``) is matched against every version a record names (its
list and its range boundaries) that the requirement allows: the advisory applies when one of
them is affected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlward._internal.vulndb.records import Advisory, Affected
from mlward.findings import Severity


@lru_cache(maxsize=65536)
def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


_ZERO = Version("0")


@lru_cache(maxsize=65536)
def _listed(versions: tuple[str, ...]) -> frozenset[Version]:
    return frozenset(v for v in map(parse_version, versions) if v is not None)


@lru_cache(maxsize=65536)
def _intervals(events: tuple[tuple[str, str], ...]
               ) -> list[tuple[Version, Version | None, bool]]:
    """(start, end, end_inclusive) intervals of one range; end None means no upper bound."""
    parsed = []
    for kind, text in events:
        if kind == "limit":
            continue
        v = _ZERO if (kind == "introduced" and text == "0") else parse_version(text)
        if v is None:
            return []  # a range we cannot order is not evidence either way
        parsed.append((v, kind))
    # Sort by version; at equal versions an introduced event opens before a fix closes.
    parsed.sort(key=lambda p: (p[0], p[1] != "introduced"))
    out: list[tuple[Version, Version | None, bool]] = []
    start: Version | None = None
    for v, kind in parsed:
        if kind == "introduced":
            if start is None:
                start = v
        elif start is not None:
            out.append((start, v, kind == "last_affected"))
            start = None
    if start is not None:
        out.append((start, None, False))
    return out


def version_affected(affected: Affected, version: str) -> bool:
    """True when ``version`` of the package is affected."""
    if version in affected.versions:
        return True
    v = parse_version(version)
    if v is None:
        return False
    if v in _listed(affected.versions):
        return True
    for events in affected.ranges:
        for start, end, inclusive in _intervals(events):
            if v < start:
                continue
            if end is None or v < end or (inclusive and v == end):
                return True
    return False


def candidate_versions(affected: Affected) -> list[str]:
    """Every version the record names: its list and the boundaries of its ranges."""
    names = list(affected.versions)
    for events in affected.ranges:
        names.extend(v for kind, v in events if kind != "introduced" or v != "0")
    return names


def affected_in_range(affected: Affected, specifier: str) -> list[str]:
    """The versions a record names that ``specifier`` allows and that are affected (unordered)."""
    try:
        spec = SpecifierSet(specifier)
    except InvalidSpecifier:
        return []
    hits = set()
    for text in candidate_versions(affected):
        v = parse_version(text)
        if (v is not None and spec.contains(v, prereleases=True)
                and version_affected(affected, text)):
            hits.add(text)
    # No bound at all: an advisory that affects anything affects this requirement.
    if not hits and not specifier.strip() and (
            any(_intervals(r) for r in affected.ranges) or affected.versions):
        hits.add("any")
    return list(hits)  # ordered once, when advisories are merged


@dataclass(frozen=True)
class Vulnerability:
    """One flaw in one package, merged across the ids it is published under."""

    package: str
    ids: tuple[str, ...]
    summary: str
    severity: Severity | None
    score: float | None
    vector: str | None
    fixed: tuple[str, ...]
    cwes: tuple[str, ...]
    affected_versions: tuple[str, ...] = ()
    """For an unpinned requirement: the allowed versions that are affected."""
    published: str | None = None
    """The earliest publication date among the merged records (``YYYY-MM-DD``)."""

    @property
    def id(self) -> str:
        return self.ids[0]


@dataclass(frozen=True)
class PackageResult:
    vulnerabilities: tuple[Vulnerability, ...]
    upgrade: str | None
    """The smallest version above the current one that no known advisory affects."""


def _id_rank(i: str) -> tuple[int, str]:
    order = ("GHSA-", "PYSEC-", "CVE-")
    return next((n for n, p in enumerate(order) if i.startswith(p)), len(order)), i


def merge_aliases(name: str, advisories: Iterable[Advisory],
                  affected_versions: dict[str, list[str]] | None = None) -> list[Vulnerability]:
    """Group advisories that name each other (id or alias) into one vulnerability each."""
    advs = [a for a in advisories if not a.withdrawn]
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a in advs:
        for alias in a.aliases:
            parent[find(alias)] = find(a.id)
    groups: dict[str, list[Advisory]] = {}
    for a in advs:
        groups.setdefault(find(a.id), []).append(a)
    out = []
    for members in groups.values():
        ids = sorted({i for a in members for i in a.ids}, key=_id_rank)
        rated = [a for a in members if a.severity is not None]
        best = max(rated, key=lambda a: (a.severity, a.score or 0), default=None)
        fixed = sorted({v for a in members for v in a.fixed_versions(name)},
                       key=lambda t: (parse_version(t) or _ZERO, t))
        versions = sorted({v for a in members for v in (affected_versions or {}).get(a.id, [])},
                          key=lambda t: (parse_version(t) or _ZERO, t))
        out.append(Vulnerability(
            package=canonicalize_name(name), ids=tuple(ids),
            summary=next((a.summary for a in members if a.summary), ids[0]),
            severity=best.severity if best else None,
            score=best.score if best else None,
            vector=best.vector if best else next((a.vector for a in members if a.vector), None),
            fixed=tuple(fixed), cwes=tuple(sorted({c for a in members for c in a.cwes})),
            affected_versions=tuple(versions),
            published=min((a.published for a in members if a.published), default=None)))
    return sorted(out, key=lambda v: _id_rank(v.id))


def smallest_upgrade(name: str, version: str | None, advisories: Sequence[Advisory]) -> str | None:
    """The lowest fixed version (above ``version``) that no advisory for ``name`` affects."""
    current = parse_version(version) if version else None
    live = [a for a in advisories if not a.withdrawn]
    entries = [af for a in live for af in a.for_package(name)]
    candidates = {v for af in entries for r in af.ranges for k, v in r if k == "fixed"}
    ordered = sorted((v, t) for t in candidates if (v := parse_version(t)) is not None)
    for v, text in ordered:
        if current is not None and v <= current:
            continue
        if not any(version_affected(af, text) for af in entries):
            return text
    return None


def check_version(name: str, version: str, advisories: Sequence[Advisory]) -> PackageResult:
    """The vulnerabilities of an exact version of ``name``."""
    hits = [a for a in advisories if not a.withdrawn
            and any(version_affected(af, version) for af in a.for_package(name))]
    if not hits:
        return PackageResult((), None)
    return PackageResult(tuple(merge_aliases(name, hits)),
                         smallest_upgrade(name, version, advisories))


def check_range(name: str, specifier: str, advisories: Sequence[Advisory]) -> PackageResult:
    """The vulnerabilities some version allowed by ``specifier`` has (an unpinned requirement)."""
    versions: dict[str, list[str]] = {}
    for a in advisories:
        if a.withdrawn:
            continue
        found = [v for af in a.for_package(name) for v in affected_in_range(af, specifier)]
        if found:
            versions[a.id] = found
    if not versions:
        return PackageResult((), None)
    hits = [a for a in advisories if a.id in versions]
    return PackageResult(tuple(merge_aliases(name, hits, versions)),
                         smallest_upgrade(name, None, advisories))
