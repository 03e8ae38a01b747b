"""Dependencies: find what a project declares or locks, and match it against OSV advisories.

:func:`parser_for` recognises a dependency file by its name and a look at its content;
:func:`read_dependencies` parses one; :func:`check_dependencies` matches a list against a
:class:`~mlward.vulndb.VulnSource` and :func:`findings_for` turns the results into findings.

In ``mlward scan`` the data comes from ``$MLWARD_VULN_DB`` or the export ``mlward vulndb
update`` downloaded. Without either, each dependency file is examined and listed, and gets one
inconclusive skip saying its dependencies were not checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlward.errors import MlwardError
from mlward.findings import Finding, Severity
from mlward.rules import UNRESOLVABLE_DEPENDENCY, VULNERABLE_DEPENDENCY, VULNERABLE_RANGE
from mlward.scanners.deps.manifests import (
    notebook_pip_lines,
    parse_conda_environment,
    parse_pipfile_lock,
    parse_poetry_lock,
    parse_pylock,
    parse_pyproject,
    parse_uv_lock,
)
from mlward.scanners.deps.model import Dependency, DependencyError
from mlward.scanners.deps.requirements import parse_requirements, parse_requirements_text
from mlward.scanners.interface import ScanContext, Scanner
from mlward.sources import Source
from mlward.vulndb import VulnSource, configured_path, local_source
from mlward.vulndb.match import PackageResult, Vulnerability, check_range, check_version

MAX_FILE_BYTES = 8 << 20
NO_DATA = ("vulnerability data not available: dependencies not checked "
           "(run `mlward vulndb update`, set MLWARD_VULN_DB, or use `mlward deps --vuln-db`)")

Parser = Callable[[str, str], list[Dependency]]

_REQUIREMENTS = re.compile(r"(^|[\-_.])(requirements|constraints|reqs)([\-_.][\w.\-]*)?\.(txt|in)$")


def parser_for(name: str, head: bytes) -> tuple[str, Parser] | None:
    """The kind of dependency file and its parser, or None when the file is not one."""
    if b"\0" in head:
        return None
    lower = name.lower().rsplit("/", 1)[-1]
    table: list[tuple[bool, str, Parser]] = [
        (bool(_REQUIREMENTS.search(lower)), "requirements",
         lambda text, display: parse_requirements_text(text, display)),
        (lower == "pyproject.toml" and (b"[project" in head or b"[tool" in head
                                        or b"dependencies" in head), "pyproject",
         parse_pyproject),
        (lower == "poetry.lock" and b"[[package]]" in head, "poetry.lock", parse_poetry_lock),
        (lower == "uv.lock" and b"[[package]]" in head, "uv.lock", parse_uv_lock),
        (lower == "pipfile.lock" and head.lstrip().startswith(b"{"), "Pipfile.lock",
         parse_pipfile_lock),
        (bool(re.fullmatch(r"pylock(\.[\w\-]+)?\.toml", lower)) and b"packages" in head,
         "pylock", parse_pylock),
        (bool(re.fullmatch(r"(environment|conda|env)[\w\-.]*\.ya?ml", lower))
         and b"dependencies:" in head, "conda", parse_conda_environment),
        (lower.endswith(".ipynb") and b'"cells"' in head, "notebook", notebook_pip_lines),
    ]
    return next(((kind, fn) for match, kind, fn in table if match), None)


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


class DependencyScanner(Scanner):
    """Requirements files, pyproject.toml, lock files and conda environments."""

    name = "dependencies"
    priority = 300

    def sniff(self, source: Source) -> bool:
        found = parser_for(source.name, source.head())
        return found is not None and found[0] != "notebook"  # notebooks: the notebook scanner

    def scan(self, source: Source, ctx: ScanContext) -> None:
        loc = source.location
        if source.size is not None and source.size > MAX_FILE_BYTES:
            ctx.skip(loc, f"dependency file larger than {MAX_FILE_BYTES} bytes",
                     inconclusive=True)
            return
        try:
            if source.fs_path is not None and not loc.members:
                kind, deps = read_dependencies(source.fs_path, loc.path)
            else:
                with source.open() as f:
                    text = f.read(MAX_FILE_BYTES).decode("utf-8", errors="replace")
                found = parser_for(source.name, source.head())
                assert found is not None  # sniff accepted it
                kind, deps = found[0], found[1](text, loc.container_path)
        except DependencyError as exc:
            ctx.skip(loc, f"dependency file not understood: {exc}", inconclusive=True)
            return
        ctx.examined(loc, f"dependencies ({kind})")
        path = configured_path()
        if path is None:
            for finding in findings_for(DependencyResult(d, PackageResult((), None))
                                        for d in deps):
                ctx.add(finding)
            if any(not d.unresolvable for d in deps):
                ctx.skip(loc, NO_DATA, inconclusive=True)
            return
        try:
            results = check_dependencies(deps, local_source(path))
        except MlwardError as exc:
            ctx.skip(loc, f"dependencies not checked: {exc.diagnostics()}", inconclusive=True)
            return
        for finding in findings_for(results):
            ctx.add(finding)


__all__ = ["Dependency", "DependencyError", "DependencyResult", "check_dependencies",
           "findings_for", "parser_for", "read_dependencies"]
