"""Parse dependency files and match them against OSV advisories.

:func:`parser_for` picks the parser for a dependency file; :func:`read_dependencies` parses
one; :func:`check_dependencies` matches a list against a
:class:`~mlward._internal.vulndb.VulnSource`
and :func:`findings_for` turns the results into findings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlward._internal.scanners.deps import MAX_FILE_BYTES, dependency_kind
from mlward._internal.scanners.deps.manifests import (
    notebook_pip_lines,
    parse_conda_environment,
    parse_pipfile_lock,
    parse_poetry_lock,
    parse_pylock,
    parse_pyproject,
    parse_uv_lock,
)
from mlward._internal.scanners.deps.model import Dependency, DependencyError
from mlward._internal.scanners.deps.requirements import parse_requirements, parse_requirements_text
from mlward.findings import Finding, Severity
from mlward.rules import UNRESOLVABLE_DEPENDENCY, VULNERABLE_DEPENDENCY, VULNERABLE_RANGE

if TYPE_CHECKING:
    from mlward._internal.vulndb import VulnSource
    from mlward._internal.vulndb.match import PackageResult, Vulnerability
# The advisory index and matcher load when a dependency file is met, not at start-up.


Parser = Callable[[str, str], list[Dependency]]

def parser_for(name: str, head: bytes) -> tuple[str, Parser] | None:
    """The kind of dependency file and its parser, or None when the file is not one."""
    kind = dependency_kind(name, head)
    return None if kind is None else (kind, _PARSERS[kind])


_PARSERS: dict[str, Parser] = {
    "requirements": lambda text, display: parse_requirements_text(text, display),
    "pyproject": parse_pyproject,
    "poetry.lock": parse_poetry_lock,
    "uv.lock": parse_uv_lock,
    "Pipfile.lock": parse_pipfile_lock,
    "pylock": parse_pylock,
    "conda": parse_conda_environment,
    "notebook": notebook_pip_lines,
}


def read_dependencies(path: Path, display: str | None = None) -> tuple[str, list[Dependency]]:
    """The kind and dependencies of one file; :class:`DependencyError` if it is not one."""
    display = display or str(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DependencyError(f"{display}: larger than {MAX_FILE_BYTES} bytes")
    with open(path, "rb") as f:
        head = f.read(4096)
    found = parser_for(path.name, head)
    if found is None:
        raise DependencyError(f"{display}: not a dependency file mlward knows")
    kind, parse = found
    if kind == "requirements":  # follows -r/-c includes next to the file
        return kind, parse_requirements(path, display)
    return kind, parse(path.read_text(encoding="utf-8", errors="replace"), display)


@dataclass(frozen=True)
class DependencyResult:
    dependency: Dependency
    result: PackageResult


def check_dependencies(deps: Sequence[Dependency], source: VulnSource) -> list[DependencyResult]:
    """Match every resolvable dependency against ``source`` (one lookup for all names)."""
    from mlward._internal.vulndb.match import PackageResult, check_range, check_version

    names = {d.key for d in deps if not d.unresolvable}
    advisories = source.advisories_for(names)
    out = []
    for d in deps:
        advs = advisories.get(d.key, [])
        if d.unresolvable or not advs:
            out.append(DependencyResult(d, PackageResult((), None)))
        elif d.version:
            out.append(DependencyResult(d, check_version(d.key, d.version, advs)))
        else:
            out.append(DependencyResult(d, check_range(d.key, d.specifier, advs)))
    return out


def _details(d: Dependency, v: Vulnerability, upgrade: str | None) -> dict[str, object]:
    details: dict[str, object] = {
        "package": d.key, "ids": list(v.ids), "declared": d.specifier or "any",
        "fixed_versions": list(v.fixed), "origin": d.origin,
    }
    if d.version:
        details["version"] = d.version
    else:
        details["unpinned"] = True
        details["affected_versions_in_range"] = list(v.affected_versions)
    if upgrade:
        details["upgrade_to"] = upgrade
    if v.score is not None:
        details["cvss_score"] = v.score
    if v.vector:
        details["cvss_vector"] = v.vector
    if v.severity is None:
        details["severity_source"] = "unrated (reported as high)"
    if d.marker:
        details["marker"] = d.marker
    return details


def findings_for(results: Iterable[DependencyResult]) -> list[Finding]:
    """MW501 (exact versions), MW502 (unpinned ranges) and MW503 (no version to check)."""
    findings = []
    for r in results:
        d = r.dependency
        if d.unresolvable:
            findings.append(UNRESOLVABLE_DEPENDENCY.finding(
                d.location, f"{d.name}: {d.unresolvable}", evidence=d.name,
                details={"package": d.name, "origin": d.origin}))
            continue
        for v in r.result.vulnerabilities:
            severity = v.severity if v.severity is not None else Severity.HIGH
            fixed = f"fixed in {', '.join(v.fixed)}" if v.fixed else "no fixed version"
            upgrade = (f"smallest safe upgrade {r.result.upgrade}" if r.result.upgrade
                       else "no known release clears every advisory")
            fix = f" ({fixed}; {upgrade})"
            summary = v.summary if len(v.summary) <= 120 else v.summary[:119] + "…"
            ids = ", ".join(v.ids)
            if d.version:
                message = f"{d.name} {d.version} is affected by {ids}: {summary}{fix}"
                rule = VULNERABLE_DEPENDENCY
            else:
                shown = ", ".join(v.affected_versions[:5]) + (
                    ", ..." if len(v.affected_versions) > 5 else "")
                message = (f"{d.display} (unpinned) allows versions affected by {ids} "
                           f"({shown}): {summary}{fix}")
                rule = VULNERABLE_RANGE
            findings.append(rule.finding(d.location, message, evidence=v.id, severity=severity,
                                         details=_details(d, v, r.result.upgrade)))
    return findings


__all__ = ["Dependency", "DependencyError", "DependencyResult", "check_dependencies",
           "findings_for", "parser_for", "read_dependencies"]
