"""The data model every mlward command produces: severities, locations, findings, facts,
skips, and the report that carries them.

All result types are named tuples: immutable and hashable, so a report, once built, cannot be
changed by the code that formats or records it. (Not frozen dataclasses: importing
:mod:`dataclasses` pulls in :mod:`inspect` and costs every ``mlward`` run about 25 ms of
start-up, a sixth of scanning a checkpoint; the types here need nothing a named tuple lacks.)

Every report is built by :class:`ReportBuilder` (one place sorts, de-duplicates and
fingerprints findings and applies waivers) and survives ``Report.from_dict(r.to_dict()) == r``.
This module imports nothing else of mlward.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # at run time only where a report is built or read: a worker needs neither
    from datetime import datetime

SCHEMA_VERSION = "2.0"
"""Version of the report's JSON shape: the major part changes when a reader written for the
previous shape would misread the new one."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


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
        """``"High"``, ``"HIGH"`` and ``" high "`` all parse; anything else is a ValueError."""
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


class TargetKind(str, enum.Enum):
    """What a report is about."""

    FILES = "files"
    """Files and folders (``mlward scan``)."""
    DEPENDENCIES = "dependencies"
    """Dependency declarations and lock files (``mlward deps``)."""
    ENVIRONMENT = "environment"
    """An installed Python environment (``mlward deps --env``)."""
    SERVER = "server"
    """Live servers probed over the network (``mlward probe``)."""
    BUCKET = "bucket"
    """Object storage and cloud accounts."""
    REPOSITORY = "repository"
    """A whole project: several checks over one tree (gate, audit, bom)."""
    DATASET = "dataset"
    """Two versions of a dataset compared (``mlward data diff``)."""

    def __str__(self) -> str:
        return self.value


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def local_uri(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """The location URI of a local file: its POSIX path relative to ``root``, or a
    ``file://`` URI when it lies outside ``root``."""
    absolute = os.path.abspath(path)  # noqa: PTH100 (per file: strings, not Path objects)
    rel = os.path.relpath(absolute, root)
    if rel == os.curdir:
        return "."
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):  # noqa: PTH117
        from pathlib import Path

        return Path(absolute).as_uri()
    return rel.replace(os.sep, "/")


class Location(NamedTuple):
    """Where something is: a URI, a path of members inside containers, and a position.

    ``uri`` is either a POSIX path relative to the report's ``root`` (``models/clf.pt``: the
    same in every clone of a project), or an absolute URI for anything that is not a local file
    under the root (``http://host:5000/api``, ``s3://bucket/key``, ``pkg:pypi/torch@2.1.0``,
    ``file:///elsewhere/model.pkl``). ``members`` reads outermost first:
    ``("inner.zip", "archive/data.pkl")`` is the member ``archive/data.pkl`` of ``inner.zip``,
    itself inside ``uri``. The remaining fields are a region inside the innermost item.
    """

    uri: str
    members: tuple[str, ...] = ()
    offset: int | None = None
    line: int | None = None
    column: int | None = None
    cell: int | None = None
    output: int | None = None

    def child(self, member: str) -> Location:
        """The location of ``member`` inside this container."""
        return Location(self.uri, (*self.members, member))

    def inside(self, name: str) -> Location:
        """The location of the file ``name`` (a relative POSIX path) in the folder this
        location names."""
        return Location(name if self.uri in (".", "") else f"{self.uri.rstrip('/')}/{name}")

    def at(self, *, offset: int | None = None, line: int | None = None,
           column: int | None = None, cell: int | None = None,
           output: int | None = None) -> Location:
        """This location with a position inside it."""
        return Location(self.uri, self.members, offset, line, column, cell, output)

    @property
    def scheme(self) -> str:
        """The URI scheme (``http``, ``s3``, ``pkg``, ...), ``""`` for a root-relative path."""
        m = _SCHEME.match(self.uri)
        return m.group(0)[:-1].lower() if m and len(m.group(0)) > 2 else ""

    @property
    def is_local(self) -> bool:
        """True for a path relative to the report's root (a file of the scanned tree)."""
        return not self.scheme

    @property
    def container_path(self) -> str:
        """URI and member path, without the position: ``a.zip > b.pkl``."""
        return " > ".join((self.uri, *self.members))

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
        out: dict[str, Any] = {"uri": self.uri}
        if self.members:
            out["members"] = list(self.members)
        for name in _REGION:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Location:
        return cls(data["uri"], tuple(data.get("members", ())),
                   *(data.get(name) for name in _REGION))


_REGION = ("offset", "line", "column", "cell", "output")


class Suppression(NamedTuple):
    """Why a finding is not counted: a waiver that names it, or an inline comment.

    A suppressed finding stays in every machine-readable report (SARIF ``suppressions``);
    it just does not fail the run.
    """

    kind: str
    """``waiver`` (from settings or a waivers file) or ``inline`` (a comment beside it)."""
    reason: str
    owner: str | None = None
    expires: str | None = None
    """ISO date after which the waiver stops applying (and is itself reported)."""
    source: str | None = None
    """Where the waiver is declared (a file and line, or ``settings``)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self._asdict().items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Suppression:
        return cls(**{k: data.get(k) for k in cls._fields})  # type: ignore[arg-type]


class Finding(NamedTuple):
    """One thing a person should look at.

    ``fingerprint`` identifies the finding across runs, clones and edits: it covers the rule,
    the location without its line/offset/cell (which shift), and the evidence (what was found),
    not the message wording. ``baseline`` is ``"new"`` or ``"unchanged"`` when the run
    compared against a baseline, else None.
    """

    rule_id: str
    severity: Severity
    location: Location
    message: str
    evidence: str | None = None
    remediation: str | None = None
    cwe: str | None = None
    details: Mapping[str, Any] = _EMPTY  # shared and read-only
    fingerprint: str = ""
    suppression: Suppression | None = None
    baseline: str | None = None

    @property
    def counts(self) -> bool:
        """Whether this finding fails a run: not suppressed and not already in the baseline."""
        return self.suppression is None and self.baseline != "unchanged"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule_id": self.rule_id,
            "severity": self.severity.label,
            "location": self.location.to_dict(),
            "message": self.message,
            "fingerprint": self.fingerprint,
        }
        if self.evidence is not None:
            out["evidence"] = self.evidence
        if self.remediation:
            out["remediation"] = self.remediation
        if self.cwe:
            out["cwe"] = self.cwe
        if self.details:
            out["details"] = dict(self.details)
        if self.suppression is not None:
            out["suppression"] = self.suppression.to_dict()
        if self.baseline is not None:
            out["baseline"] = self.baseline
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        sup = data.get("suppression")
        return cls(
            rule_id=data["rule_id"], severity=Severity.parse(data["severity"]),
            location=Location.from_dict(data["location"]), message=data["message"],
            evidence=data.get("evidence"), remediation=data.get("remediation") or None,
            cwe=data.get("cwe") or None, details=data.get("details") or _EMPTY,
            fingerprint=data.get("fingerprint", ""),
            suppression=Suppression.from_dict(sup) if sup else None,
            baseline=data.get("baseline"),
        )


class Fact(NamedTuple):
    """Something observed that is not a problem: a model's format and tensor count, a
    server's version, a bucket's ACL. Structured data for the BOM, policies and dashboards,
    so that none of them re-parses finding messages.

    ``kind`` names the shape of ``data`` (``model``, ``server``, ``dependency``, ...).
    """

    location: Location
    kind: str
    data: Mapping[str, Any] = _EMPTY

    def to_dict(self) -> dict[str, Any]:
        return {"location": self.location.to_dict(), "kind": self.kind, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fact:
        return cls(Location.from_dict(data["location"]), data["kind"], data.get("data") or _EMPTY)


class Skipped(NamedTuple):
    """Something not examined (or not examined fully), and why.

    ``inconclusive`` is true when the thing might matter but could not be judged (a size limit,
    a damaged archive, a missing optional extra): such a file is never reported clean and
    makes the run exit 2. It is false for things that are simply not in scope (a README, a
    folder excluded by the settings).
    """

    location: Location
    reason: str
    inconclusive: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"location": self.location.to_dict(), "reason": self.reason,
                "inconclusive": self.inconclusive}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Skipped:
        return cls(Location.from_dict(data["location"]), data["reason"],
                   bool(data.get("inconclusive")))


class Examined(NamedTuple):
    """A file or member that a scanner examined, with the format it was recognised as."""

    location: Location
    format: str

    def to_dict(self) -> dict[str, Any]:
        return {"location": self.location.to_dict(), "format": self.format}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Examined:
        return cls(Location.from_dict(data["location"]), data["format"])


class Report(NamedTuple):
    """Everything one run produced. Build it with :class:`ReportBuilder`."""

    kind: TargetKind
    findings: tuple[Finding, ...]
    facts: tuple[Fact, ...]
    skipped: tuple[Skipped, ...]
    examined: tuple[Examined, ...]
    started: datetime
    finished: datetime
    version: str
    """The mlward version that produced the report."""
    root: str | None = None
    """The absolute folder that root-relative location URIs are relative to."""
    inputs: tuple[str, ...] = ()
    stats: Mapping[str, Any] = _EMPTY
    """Counts about the run (files walked, excluded by reason, ...): JSON values only.
    ``warnings``, when present, lists what the user must know although it did not make the
    run inconclusive (vulnerability data older than the configured age); every writer shows
    them."""
    schema_version: str = SCHEMA_VERSION

    @property
    def inconclusive(self) -> tuple[Skipped, ...]:
        return tuple(s for s in self.skipped if s.inconclusive)

    def uri_of(self, path: str | os.PathLike[str]) -> str:
        """The location URI this report gives the local file ``path``."""
        return local_uri(path, self.root or os.curdir)

    @property
    def counted(self) -> tuple[Finding, ...]:
        """The findings that fail a run (not waived, not in the baseline)."""
        return tuple(f for f in self.findings if f.counts)

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        """Counted findings at or above ``threshold``."""
        return tuple(f for f in self.counted if f.severity >= threshold)

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.counted), default=None)

    def verdicts(self) -> dict[str, Verdict]:
        """A verdict per file that was examined, had findings or was inconclusive, and per
        folder examined as a whole (the worst verdict under it). Waived findings do not
        count; findings already in a baseline do (the file is still what it is)."""
        out: dict[str, Verdict] = {}
        for e in self.examined:
            out.setdefault(e.location.uri, Verdict.CLEAN)
        for s in self.inconclusive:
            out[s.location.uri] = _worse(out.get(s.location.uri), Verdict.INCONCLUSIVE)
        for f in self.findings:
            if f.suppression is not None:
                continue
            v = (Verdict.DANGEROUS if f.severity >= Severity.HIGH
                 else Verdict.SUSPICIOUS if f.severity >= Severity.MEDIUM else Verdict.CLEAN)
            out[f.location.uri] = _worse(out.get(f.location.uri), v)
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
        return dict.fromkeys(item.location.uri for item in items)

    def _folder_links(self, paths: Mapping[str, object]) -> list[tuple[str, str]]:
        """(path, folder) for every path under an examined folder."""
        examined = {e.location.uri for e in self.examined}
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
        """0 nothing counted at or above ``fail_on``; 1 findings at or above it;
        2 something could not be examined, or the run was interrupted (its workers went
        away: ``stats["interrupted"]``), whatever it found."""
        if self.stats.get("interrupted"):
            return 2
        if self.at_or_above(fail_on):
            return 1
        if self.inconclusive:
            return 2
        return 0

    def counts(self) -> dict[str, int]:
        """Counted findings per severity, most severe first."""
        counts = {s.label: 0 for s in sorted(Severity, reverse=True)}
        for f in self.counted:
            counts[f.severity.label] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values. ``summary`` is derived (and ignored by ``from_dict``)."""
        return {
            "schema_version": self.schema_version,
            "tool": {"name": "mlward", "version": self.version},
            "kind": str(self.kind),
            "root": self.root,
            "inputs": list(self.inputs),
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "stats": dict(self.stats),
            "summary": {
                "examined": len(self.examined),
                "findings": self.counts(),
                "suppressed": sum(1 for f in self.findings if f.suppression is not None),
                "baseline_unchanged": sum(1 for f in self.findings if f.baseline == "unchanged"),
                "skipped": len(self.skipped),
                "inconclusive": len(self.inconclusive),
                "verdicts": {k: str(v) for k, v in sorted(self.verdicts().items())},
            },
            "findings": [f.to_dict() for f in self.findings],
            "facts": [f.to_dict() for f in self.facts],
            "skipped": [s.to_dict() for s in self.skipped],
            "examined": [e.to_dict() for e in self.examined],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Read a report written by :meth:`to_dict` (raises ValueError on another shape)."""
        version = str(data.get("schema_version", ""))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"report schema version {version or 'missing'} is not "
                             f"{SCHEMA_VERSION.split('.')[0]}.x (made by another mlward?)")
        from datetime import datetime

        try:
            return cls(
                kind=TargetKind(data["kind"]),
                findings=tuple(Finding.from_dict(f) for f in data["findings"]),
                facts=tuple(Fact.from_dict(f) for f in data.get("facts", ())),
                skipped=tuple(Skipped.from_dict(s) for s in data["skipped"]),
                examined=tuple(Examined.from_dict(e) for e in data["examined"]),
                started=datetime.fromisoformat(data["started"]),
                finished=datetime.fromisoformat(data["finished"]),
                version=data["tool"]["version"],
                root=data.get("root"),
                inputs=tuple(data.get("inputs", ())),
                stats=data.get("stats") or _EMPTY,
                schema_version=version,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an mlward report: missing or malformed {exc}") from None


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
    return (loc.uri, loc.members, *((v is not None, v or 0) for v in positions))


_NUMBERS = re.compile(r"\d+")


def fingerprint_key(f: Finding) -> str:
    """What identifies a finding across runs: rule, location without its region, and the
    evidence (or, without evidence, the message with its numbers blanked, since messages
    quote offsets and counts that shift)."""
    what = f.evidence if f.evidence is not None else _NUMBERS.sub("#", f.message)
    return "\x1f".join((f.rule_id, f.location.uri, *f.location.members, "\x1e", what))


_sha256: Any = None


def load_sha256() -> Any:
    """SHA-256, for fingerprints: CPython's own module where it has one (``_sha2`` from
    3.12, ``_sha256`` before), else ``hashlib``'s. The digests are the same; ``hashlib``
    loads OpenSSL, which costs a one-file scan 2 to 4 ms for a few digests."""
    global _sha256
    if _sha256 is None:
        import importlib

        for module in ("_sha2", "_sha256", "hashlib"):
            try:
                _sha256 = importlib.import_module(module).sha256
                break
            except (ImportError, AttributeError):
                continue
    return _sha256


def fingerprint(findings: Sequence[Finding]) -> list[Finding]:
    """The findings with their fingerprints set. Equal keys (the same secret twice in one
    file) are told apart by their order of appearance, which survives line shifts."""
    sha256 = load_sha256()
    seen: dict[str, int] = {}
    out = []
    for f in findings:
        key = fingerprint_key(f)
        n = seen.get(key, 0)
        seen[key] = n + 1
        digest = sha256(f"{key}\x1d{n}".encode("utf-8", "surrogatepass")).hexdigest()
        out.append(f._replace(fingerprint=digest[:32]))
    return out


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and mappings as dicts, as JSON gives them back; anything
    JSON cannot hold (bytes from a hostile header, a stray object) becomes text, so that a
    scanner's slip can never make a report unwritable."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


Triage = Callable[[list[Finding]], list[Finding]]
"""Applied by :meth:`ReportBuilder.build` to the fingerprinted findings: sets suppressions
(waivers) and baseline states."""


class ReportBuilder:
    """The one place reports are made: collect, then :meth:`build`.

    Commands (scan, deps, probe, cloud, ...) add what they found; ``build`` de-duplicates,
    sorts, fingerprints, applies the triage (waivers, baseline) and freezes the report.
    """

    def __init__(self, kind: TargetKind, *, started: datetime, version: str,
                 root: str | None = None, inputs: Iterable[str] = ()) -> None:
        self.kind = kind
        self.started = started
        self.version = version
        self.root = root
        self.inputs = tuple(inputs)
        self.findings: list[Finding] = []
        self.facts: list[Fact] = []
        self.skipped: list[Skipped] = []
        self.examined: list[Examined] = []
        self.stats: dict[str, Any] = {}

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def fact(self, fact: Fact) -> None:
        self.facts.append(fact)

    def skip(self, location: Location, reason: str, *, inconclusive: bool) -> None:
        self.skipped.append(Skipped(location, reason, inconclusive))

    def examine(self, location: Location, format: str) -> None:
        self.examined.append(Examined(location, format))

    def merge(self, findings: Iterable[Finding] = (), facts: Iterable[Fact] = (),
              skipped: Iterable[Skipped] = (), examined: Iterable[Examined] = ()) -> None:
        self.findings.extend(findings)
        self.facts.extend(facts)
        self.skipped.extend(skipped)
        self.examined.extend(examined)

    def build(self, *, finished: datetime, triage: Triage | None = None) -> Report:
        unique: dict[tuple[object, ...], Finding] = {}
        for f in self.findings:
            key = (f.rule_id, f.location, f.evidence, f.message)
            if key not in unique:
                unique[key] = f._replace(details=_jsonable(f.details) if f.details else _EMPTY)
        findings = fingerprint(sort_findings(unique.values()))
        if triage is not None:
            findings = triage(findings)
        facts = [f._replace(data=_jsonable(f.data)) for f in self.facts]
        return Report(
            kind=self.kind, findings=tuple(findings), facts=tuple(facts),
            skipped=tuple(self.skipped), examined=tuple(self.examined),
            started=self.started, finished=finished, version=self.version, root=self.root,
            inputs=self.inputs, stats=_jsonable(self.stats),
        )
