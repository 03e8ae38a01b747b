"""``mlward deps``: collect dependencies from files, folders and the running environment,
match them against a vulnerability source, and build one report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mlward._internal.scanners.deps import NO_DATA
from mlward._internal.scanners.deps.check import (
    DependencyResult,
    check_dependencies,
    findings_for,
    parser_for,
    read_dependencies,
)
from mlward._internal.scanners.deps.environment import find_environment
from mlward._internal.scanners.deps.manifests import installed_distributions
from mlward._internal.scanners.deps.model import Dependency, DependencyError
from mlward._internal.vulndb import VulnSource, assess
from mlward._internal.vulndb.match import PackageResult, Vulnerability
from mlward._internal.walk import Walk, unreadable
from mlward._version import __version__
from mlward.errors import ScanError
from mlward.findings import Fact, Location, Report, ReportBuilder, TargetKind
from mlward.settings import Settings


@dataclass(frozen=True)
class Audit:
    report: Report
    results: tuple[DependencyResult, ...]
    by_file: Mapping[str, tuple[DependencyResult, ...]]
    """The results of each dependency file read, by its URI (a requirements file's includes
    with it): what the scan's dependency scanner finds in that file."""


def vulnerability_fact(v: Vulnerability) -> dict[str, object]:
    """What a dependency fact says about one of its vulnerabilities (policies read it)."""
    return {"id": v.id, "ids": list(v.ids),
            "severity": v.severity.label if v.severity is not None else None,
            "cvss": v.score, "fixed": list(v.fixed), "published": v.published}


def dependency_files(walk: Walk, inputs: Sequence[Path]) -> list[tuple[Path, str]]:
    """Dependency files under ``inputs`` (files given are returned as they are), with their
    location URIs; the same walk (excludes, ignore files, virtual environments) as ``scan``."""
    found = []
    for item in walk.files(inputs):
        if Path(item.path) in (Path(p).absolute() for p in inputs):
            found.append((Path(item.path), item.uri))
            continue
        try:
            with open(item.path, "rb") as f:
                head = f.read(4096)
        except OSError as exc:
            walk.unreadable(item.path, exc)
            continue
        if parser_for(Path(item.path).name, head) is not None:
            found.append((Path(item.path), item.uri))
    return found


def audit(paths: Sequence[Path], *, environment: bool, source: VulnSource | None,
          settings: Settings | None = None, python: Path | None = None) -> Audit:
    """Dependencies of ``paths`` (and of this environment with ``environment``, of the
    environment ``python`` names with it), matched against ``source``.

    With ``source`` None nothing is matched: every file gets an inconclusive skip.
    """
    from mlward._internal.pipeline import scan_root
    from mlward._internal.triage import make_triage

    settings = settings or Settings()
    started = datetime.now(timezone.utc)
    for root in paths:
        if not root.exists():
            raise ScanError(f"no such file or directory: {root}")
    other = None if python is None else find_environment(python)
    root_dir = scan_root(settings, paths)
    builder = ReportBuilder(TargetKind.ENVIRONMENT if (environment or other) and not paths
                            else TargetKind.DEPENDENCIES, started=started, version=__version__,
                            root=str(root_dir),
                            inputs=[str(p) for p in paths] + (["<environment>"] if environment
                                                               else [])
                            + ([f"<python {other.given}>"] if other else []))
    walk = Walk.for_settings(root_dir, settings)
    deps: list[Dependency] = []
    spans: dict[str, slice] = {}
    for path, uri in dependency_files(walk, paths):
        try:
            kind, found = read_dependencies(path, uri)
        except PermissionError as exc:
            builder.merge(skipped=[unreadable(Location(uri), exc,
                                              ignore=settings.ignore_unreadable)])
            continue
        except (DependencyError, OSError) as exc:
            builder.skip(Location(uri), str(exc), inconclusive=True)
            continue
        builder.examine(Location(uri), f"dependencies ({kind})")
        spans[uri] = slice(len(deps), len(deps) + len(found))
        deps.extend(found)
    builder.merge(skipped=walk.skipped)
    installed = installed_distributions() if environment else []
    if other is not None:
        builder.fact(Fact(Location(other.given.as_uri()), "python-environment", {
            "site_packages": [str(p) for p in other.site_packages], "found_from": other.how}))
        installed += installed_distributions([str(p) for p in other.site_packages])
    deps.extend(installed)
    for d in installed:
        builder.examine(d.location, "installed distribution")
    assessment = None if source is None else assess(source, settings)
    if assessment is not None:
        assessment.record(builder)
    if source is None or assessment is None or assessment.blind:
        results = [DependencyResult(d, PackageResult((), None)) for d in deps]
        places: dict[str, list[str]] = {}
        for d in deps:
            if not d.unresolvable:
                places.setdefault(d.location.uri, []).append(d.key)
        for uri, names in sorted(places.items()):
            builder.skip(Location(uri), NO_DATA if assessment is None
                         else assessment.unchecked(names), inconclusive=True)
    else:
        results = check_dependencies(deps, source)
    builder.merge(findings_for(results))
    for r in results:
        d = r.dependency
        if not d.unresolvable:
            builder.fact(Fact(d.location, "dependency", {
                "name": d.key, "version": d.version, "specifier": d.specifier,
                "origin": d.origin,
                "vulnerabilities": [vulnerability_fact(v) for v in r.result.vulnerabilities]}))
    builder.stats["excluded"] = dict(sorted(walk.excluded.items()))
    report = builder.build(finished=datetime.now(timezone.utc),
                           triage=make_triage(settings, root_dir))
    return Audit(report, tuple(results),
                 {uri: tuple(results[span]) for uri, span in spans.items()})
