"""OSV records reduced to what matching needs: ids, aliases, severity, PyPI ranges.

:func:`parse_record` accepts one OSV record (already decoded from JSON or YAML) and returns an
:class:`Advisory`, or None when the record has nothing for PyPI. Malformed records raise
:class:`~mlward.errors.FormatError`; the loaders count them instead of stopping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from packaging.utils import canonicalize_name

from mlward._internal.vulndb.cvss import base_score_v3, severity_of_score
from mlward.errors import FormatError
from mlward.findings import Severity

Event = tuple[str, str]


@lru_cache(maxsize=65536)
def _canonical(name: str) -> str:
    return canonicalize_name(name)
"""One range event: (``introduced`` | ``fixed`` | ``last_affected`` | ``limit``, version)."""

_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
_WORDS = {"CRITICAL": Severity.CRITICAL, "HIGH": Severity.HIGH, "MODERATE": Severity.MEDIUM,
          "MEDIUM": Severity.MEDIUM, "LOW": Severity.LOW}


@dataclass(frozen=True)
class Affected:
    """The versions of one PyPI package that an advisory affects."""

    package: str
    """PEP 503 normalised name."""
    ranges: tuple[tuple[Event, ...], ...]
    """ECOSYSTEM ranges only: GIT and SEMVER ranges say nothing about PyPI versions."""
    versions: tuple[str, ...]
    """The explicit ``versions`` list."""


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    affected: tuple[Affected, ...]
    severity: Severity | None = None
    """None when the record rates nothing."""
    score: float | None = None
    vector: str | None = None
    cwes: tuple[str, ...] = ()
    withdrawn: bool = False
    published: str | None = None
    """The record's ``published`` date (``YYYY-MM-DD``), when it has one: policies judge how
    long a fix has been available."""

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    def for_package(self, name: str) -> tuple[Affected, ...]:
        key = _canonical(name)
        return tuple(a for a in self.affected if a.package == key)

    def fixed_versions(self, name: str) -> list[str]:
        return [v for a in self.for_package(name) for r in a.ranges for k, v in r if k == "fixed"]

    def to_json(self) -> str:
        return json.dumps({
            "id": self.id, "aliases": self.aliases, "summary": self.summary,
            "affected": [[a.package, a.ranges, a.versions] for a in self.affected],
            "severity": None if self.severity is None else self.severity.label,
            "score": self.score, "vector": self.vector, "cwes": self.cwes,
            "withdrawn": self.withdrawn, "published": self.published,
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Advisory:
        d = json.loads(text)
        return cls(
            id=d["id"], aliases=tuple(d["aliases"]), summary=d["summary"],
            affected=tuple(Affected(p, tuple(tuple((k, v) for k, v in r) for r in rs),
                                    tuple(vs)) for p, rs, vs in d["affected"]),
            severity=None if d["severity"] is None else Severity.parse(d["severity"]),
            score=d["score"], vector=d["vector"], cwes=tuple(d["cwes"]),
            withdrawn=d["withdrawn"], published=d.get("published"),
        )


def _strings(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FormatError(f"{what} is not a list of strings")
    return list(value)


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FormatError(f"{what} is not a mapping")
    return value


def _severity(record: Mapping[str, Any]) -> tuple[Severity | None, float | None, str | None]:
    entries = record.get("severity") or []
    if not isinstance(entries, list):
        raise FormatError("severity is not a list")
    for entry in entries:
        entry = _mapping(entry, "severity entry")
        vector = entry.get("score")
        if entry.get("type") == "CVSS_V3" and isinstance(vector, str):
            score = base_score_v3(vector)
            if score is not None:
                return severity_of_score(score), score, vector
    # CVSS v4 vectors and unscored records: the database's own rating word, when it has one.
    word = _mapping(record.get("database_specific"), "database_specific").get("severity")
    vector = next((e.get("score") for e in entries if isinstance(e, Mapping)
                   and isinstance(e.get("score"), str)), None)
    if isinstance(word, str) and word.upper() in _WORDS:
        return _WORDS[word.upper()], None, vector
    return None, None, vector


def _ranges(affected: Mapping[str, Any]) -> tuple[tuple[Event, ...], ...]:
    out = []
    raw = affected.get("ranges") or []
    if not isinstance(raw, list):
        raise FormatError("ranges is not a list")
    for r in raw:
        r = _mapping(r, "range")
        if r.get("type") != "ECOSYSTEM":
            continue
        events = r.get("events")
        if not isinstance(events, list):
            raise FormatError("range events are not a list")
        evs: list[Event] = []
        for e in events:
            e = _mapping(e, "event")
            for kind in _EVENT_KINDS:
                if kind in e:
                    evs.append((kind, str(e[kind])))
        out.append(tuple(evs))
    return tuple(out)


def record_facts(record: object) -> tuple[set[str], str | None]:
    """The ecosystems a decoded OSV record names (``PyPI``, ``npm``, ``Debian``: release
    suffixes dropped) and its ``modified`` time as ``YYYY-MM-DDTHH:MM:SS`` (UTC), for the
    coverage and age of a database; a record that is not a mapping gives nothing."""
    if not isinstance(record, Mapping):
        return set(), None
    ecosystems = set()
    affected = record.get("affected")
    for a in affected if isinstance(affected, list) else []:
        pkg = a.get("package") if isinstance(a, Mapping) else None
        eco = pkg.get("ecosystem") if isinstance(pkg, Mapping) else None
        if isinstance(eco, str) and eco:
            ecosystems.add(eco.split(":", 1)[0])
    modified = record.get("modified")
    stamp = modified[:19] if isinstance(modified, str) and _STAMP.match(modified) else None
    return ecosystems, stamp


_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def parse_record(record: object) -> Advisory | None:
    """The PyPI part of one OSV record, or None when it affects no PyPI package."""
    rec = _mapping(record, "record")
    rid = rec.get("id")
    if not isinstance(rid, str) or not rid:
        raise FormatError("record has no id")
    affected = []
    raw_affected = rec.get("affected") or []
    if not isinstance(raw_affected, list):
        raise FormatError(f"{rid}: affected is not a list")
    for a in raw_affected:
        a = _mapping(a, "affected entry")
        pkg = _mapping(a.get("package"), "package")
        name = pkg.get("name")
        if pkg.get("ecosystem") != "PyPI" or not isinstance(name, str):
            continue
        versions = tuple(str(v) for v in (a.get("versions") or [])
                         if isinstance(v, (str, int, float)))
        affected.append(Affected(canonicalize_name(name), _ranges(a), versions))
    if not affected:
        return None
    severity, score, vector = _severity(rec)
    cwes = _strings(_mapping(rec.get("database_specific"), "database_specific").get("cwe_ids"),
                    "cwe_ids")
    summary = rec.get("summary") or rec.get("details") or ""
    summary = str(summary).strip().splitlines()[0] if str(summary).strip() else rid
    return Advisory(
        id=rid,
        aliases=tuple(a for a in _strings(rec.get("aliases"), "aliases") if a != rid),
        summary=summary[:300],
        affected=tuple(affected),
        severity=severity, score=score, vector=vector, cwes=tuple(cwes),
        withdrawn=bool(rec.get("withdrawn")), published=_date(rec.get("published")),
    )


def _date(value: object) -> str | None:
    """The date part of an RFC 3339 timestamp, or None when it is not one."""
    if not isinstance(value, str) or not re.match(r"\d{4}-\d{2}-\d{2}", value):
        return None
    return value[:10]
