"""The data model every scanner produces: severities, locations, findings, skips, reports.

All result types are named tuples, so that a report, once built, cannot be changed by the
code that formats or records it. (Not frozen dataclasses: importing :mod:`dataclasses` pulls in
:mod:`inspect` and costs every ``mlward`` run about 25 ms of start-up, a sixth of scanning a
checkpoint; the types here need nothing a named tuple lacks.)
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple


class Severity(enum.IntEnum):
    """Ordered severities: ``Severity.CRITICAL > Severity.HIGH`` holds."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (choose from {names})") from None

    def __str__(self) -> str:
        return self.label


class Verdict(enum.Enum):
    """The judgement on one examined file.

    ``DANGEROUS`` always wins: a file whose analysis stopped early but already showed a
    dangerous reference is dangerous, not merely inconclusive.
    """

    CLEAN = "clean"
    SUSPICIOUS = "suspicious"
    INCONCLUSIVE = "inconclusive"
    DANGEROUS = "dangerous"

    def __str__(self) -> str:
        return self.value


class Location(NamedTuple):
    """Where something is: a file, a path of members inside containers, and a position.

    ``members`` reads outermost first: ``("inner.zip", "archive/data.pkl")`` is the member
    ``archive/data.pkl`` of ``inner.zip``, itself a member of ``path``.
    """

    path: str
    members: tuple[str, ...] = ()
    offset: int | None = None
    line: int | None = None
    column: int | None = None
    cell: int | None = None
    output: int | None = None

    def child(self, member: str) -> Location:
        """The location of ``member`` inside this container."""
        return Location(self.path, (*self.members, member))

    def at(self, *, offset: int | None = None, line: int | None = None,
           column: int | None = None, cell: int | None = None,
           output: int | None = None) -> Location:
        """This location with a position inside it."""
        return Location(self.path, self.members, offset, line, column, cell, output)

    @property
    def container_path(self) -> str:
        """File and member path, without the position: ``a.zip > b.pkl``."""
        return " > ".join((self.path, *self.members))

    def __str__(self) -> str:
        text = self.container_path
        parts = []
        if self.cell is not None:
            parts.append(f"cell {self.cell}")
        if self.output is not None:
            parts.append(f"output {self.output}")
        if self.line is not None:
            parts.append(f"line {self.line}" + (f":{self.column}" if self.column else ""))
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        return f"{text} ({', '.join(parts)})" if parts else text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.members:
            out["members"] = list(self.members)
        for name in ("offset", "line", "column", "cell", "output"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


class Finding(NamedTuple):
    """One thing a person should look at."""

    rule_id: str
    severity: Severity
    location: Location
    message: str
    evidence: str | None = None
    remediation: str | None = None
    cwe: str | None = None
    details: Mapping[str, Any] = MappingProxyType({})  # shared and read-only

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule_id": self.rule_id,
            "severity": self.severity.label,
            "location": self.location.to_dict(),
            "message": self.message,
        }
        if self.evidence is not None:
            out["evidence"] = self.evidence
        if self.remediation:
            out["remediation"] = self.remediation
        if self.cwe:
            out["cwe"] = self.cwe
        if self.details:
            out["details"] = dict(self.details)
        return out


class Skipped(NamedTuple):
    """Something not examined (or not examined fully), and why.

    ``inconclusive`` is true when the thing might matter but could not be judged (a size limit,
    a damaged archive, a missing optional extra): such a file is never reported clean and
    makes the scan exit 2. It is false for things that are simply not in scope (a README).
    """

    location: Location
    reason: str
    inconclusive: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location.to_dict(),
            "reason": self.reason,
            "inconclusive": self.inconclusive,
        }


class Examined(NamedTuple):
    """A file or member that a scanner examined, with the format it was recognised as."""

    location: Location
    format: str


class Report(NamedTuple):
    """Everything one scan produced."""

    findings: tuple[Finding, ...]
    skipped: tuple[Skipped, ...]
    examined: tuple[Examined, ...]
    started: datetime
    finished: datetime
    version: str
    inputs: tuple[str, ...] = ()

    @property
    def inconclusive(self) -> tuple[Skipped, ...]:
        return tuple(s for s in self.skipped if s.inconclusive)

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity >= threshold)

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def verdicts(self) -> dict[str, Verdict]:
        """A verdict per file that was examined, had findings or was inconclusive, and per
        folder examined as a whole (the worst verdict under it)."""
        out: dict[str, Verdict] = {}
        for e in self.examined:
            out.setdefault(e.location.path, Verdict.CLEAN)
        for s in self.inconclusive:
            out[s.location.path] = _worse(out.get(s.location.path), Verdict.INCONCLUSIVE)
        for f in self.findings:
            v = (Verdict.DANGEROUS if f.severity >= Severity.HIGH
                 else Verdict.SUSPICIOUS if f.severity >= Severity.MEDIUM else Verdict.CLEAN)
            out[f.location.path] = _worse(out.get(f.location.path), v)
        # A folder examined as a whole (a model repository) takes the worst verdict of
        # everything under it.
        for path, folder in self._folder_links(out):
            out[folder] = _worse(out[folder], out[path])
        return out

    def folders(self) -> list[str]:
        """Folders examined as a whole (model repositories), sorted."""
        return sorted({folder for _, folder in self._folder_links(self._paths())})

    def _paths(self) -> dict[str, None]:
        items: list[Examined | Skipped | Finding] = [*self.examined, *self.skipped, *self.findings]
        return dict.fromkeys(item.location.path for item in items)

    def _folder_links(self, paths: Mapping[str, object]) -> list[tuple[str, str]]:
        """(path, folder) for every path under an examined folder."""
        examined = {e.location.path for e in self.examined}
        above: dict[str, list[str]] = {}  # directory -> examined folders at or above it

        def folders_above(directory: str) -> list[str]:
            if directory not in above:
                parent = os.path.dirname(directory)  # noqa: PTH120 (plain strings, hot loop)
                here = [directory] if directory in examined else []
                above[directory] = here + (
                    folders_above(parent) if parent and parent != directory else [])
            return above[directory]

        return [(path, folder) for path in paths
                for folder in folders_above(os.path.dirname(path))]  # noqa: PTH120

    def exit_code(self, fail_on: Severity) -> int:
        """0 nothing at or above ``fail_on``; 1 findings at or above it; 2 inconclusive."""
        if self.at_or_above(fail_on):
            return 1
        if self.inconclusive:
            return 2
        return 0

    def counts(self) -> dict[str, int]:
        counts = {s.label: 0 for s in sorted(Severity, reverse=True)}
        for f in self.findings:
            counts[f.severity.label] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": {"name": "mlward", "version": self.version},
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "inputs": list(self.inputs),
            "summary": {
                "examined": len(self.examined),
                "findings": self.counts(),
                "skipped": len(self.skipped),
                "inconclusive": len(self.inconclusive),
                "verdicts": {k: str(v) for k, v in sorted(self.verdicts().items())},
            },
            "findings": [f.to_dict() for f in self.findings],
            "skipped": [s.to_dict() for s in self.skipped],
            "examined": [
                {"location": e.location.to_dict(), "format": e.format} for e in self.examined
            ],
        }


_ORDER = [Verdict.CLEAN, Verdict.SUSPICIOUS, Verdict.INCONCLUSIVE, Verdict.DANGEROUS]


def _worse(a: Verdict | None, b: Verdict) -> Verdict:
    if a is None:
        return b
    return a if _ORDER.index(a) >= _ORDER.index(b) else b


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then by location."""
    return sorted(findings, key=lambda f: (-f.severity, _position_key(f.location), f.rule_id))


def _position_key(loc: Location) -> tuple[object, ...]:
    # Positions may be None (a whole-file finding beside a cell/line one): None sorts first.
    positions = (loc.offset, loc.line, loc.column, loc.cell, loc.output)
    return (loc.path, loc.members, *((v is not None, v or 0) for v in positions))
