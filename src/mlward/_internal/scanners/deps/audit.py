"""``mlward deps``: collect dependencies from files, folders and the running environment,
match them against a vulnerability source, and build one report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mlward._internal.pipeline import SKIP_DIRS
from mlward._internal.scanners.deps import NO_DATA
from mlward._internal.scanners.deps.check import (
    DependencyResult,
    check_dependencies,
    findings_for,
    parser_for,
    read_dependencies,
)
from mlward._internal.scanners.deps.manifests import installed_distributions
from mlward._internal.scanners.deps.model import Dependency, DependencyError
from mlward._internal.vulndb import VulnSource
from mlward._internal.vulndb.match import PackageResult
from mlward._version import __version__
from mlward.errors import ScanError
from mlward.findings import Examined, Location, Report, Skipped, sort_findings


@dataclass(frozen=True)
class Audit:
    report: Report
    results: tuple[DependencyResult, ...]


def dependency_files(root: Path) -> list[Path]:
    """Dependency files under ``root`` (a file is returned as it is)."""
    if not root.is_dir():
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and d != ".venv")
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                with open(path, "rb") as f:
                    head = f.read(4096)
            except OSError:
                continue
            if parser_for(name, head) is not None:
                found.append(path)
    return found


def audit(paths: Sequence[Path], *, environment: bool, source: VulnSource | None) -> Audit:
    """Dependencies of ``paths`` (and of this environment), matched against ``source``.

    With ``source`` None nothing is matched: every file gets an inconclusive skip.
    """
    started = datetime.now(timezone.utc)
    skipped: list[Skipped] = []
    examined: list[Examined] = []
    deps: list[Dependency] = []
    for root in paths:
        if not root.exists():
            raise ScanError(f"no such file or directory: {root}")
        for path in dependency_files(root):
            try:
                kind, found = read_dependencies(path)
            except (DependencyError, OSError) as exc:
                skipped.append(Skipped(Location(str(path)), str(exc), inconclusive=True))
                continue
            examined.append(Examined(Location(str(path)), f"dependencies ({kind})"))
            deps.extend(found)
    if environment:
        installed = installed_distributions()
        deps.extend(installed)
        examined.extend(Examined(d.location, "installed distribution") for d in installed)
    if source is None:
        results = [DependencyResult(d, PackageResult((), None)) for d in deps]
        places = sorted({d.location.path for d in deps if not d.unresolvable})
        skipped.extend(Skipped(Location(p), NO_DATA, inconclusive=True) for p in places)
    else:
        results = check_dependencies(deps, source)
    return Audit(
        Report(findings=tuple(sort_findings(findings_for(results))), skipped=tuple(skipped),
               examined=tuple(examined), started=started, finished=datetime.now(timezone.utc),
               version=__version__,
               inputs=tuple(str(p) for p in paths) + (("<environment>",) if environment
                                                       else ())),
        tuple(results))
