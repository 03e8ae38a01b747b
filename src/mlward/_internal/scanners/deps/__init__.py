"""Dependencies: find what a project declares or locks, and match it against OSV advisories.

This module is what ``mlward scan`` loads for every tree: it recognises dependency files by
name and a look at their content (:func:`dependency_kind`) and loads the parsers and the
advisory matcher (:mod:`mlward._internal.scanners.deps.check`) only when it meets one.

In ``mlward scan`` the data comes from ``$MLWARD_VULN_DB`` or the export ``mlward vulndb
update`` downloaded. Without either, each dependency file is examined and listed, and gets one
inconclusive skip saying its dependencies were not checked.
"""

from __future__ import annotations

import re

from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward.errors import MlwardError
from mlward.findings import Location, ReportBuilder
from mlward.settings import Settings

MAX_FILE_BYTES = 8 << 20
NO_DATA = ("vulnerability data not available: dependencies not checked "
           "(run `mlward vulndb update`, set MLWARD_VULN_DB, or use `mlward deps --vuln-db`)")

_REQUIREMENTS = re.compile(r"(^|[\-_.])(requirements|constraints|reqs)([\-_.][\w.\-]*)?\.(txt|in)$")
_PYLOCK = re.compile(r"pylock(\.[\w\-]+)?\.toml")
_CONDA = re.compile(r"(environment|conda|env)[\w\-.]*\.ya?ml")


def dependency_kind(name: str, head: bytes) -> str | None:
    """The kind of dependency file (``requirements``, ``pyproject``, ...), or None."""
    if b"\0" in head:
        return None
    lower = name.lower().rsplit("/", 1)[-1]
    table: list[tuple[bool, str]] = [
        (bool(_REQUIREMENTS.search(lower)), "requirements"),
        (lower == "pyproject.toml" and (b"[project" in head or b"[tool" in head
                                        or b"dependencies" in head), "pyproject"),
        (lower == "poetry.lock" and b"[[package]]" in head, "poetry.lock"),
        (lower == "uv.lock" and b"[[package]]" in head, "uv.lock"),
        (lower == "pipfile.lock" and head.lstrip().startswith(b"{"), "Pipfile.lock"),
        (bool(_PYLOCK.fullmatch(lower)) and b"packages" in head, "pylock"),
        (bool(_CONDA.fullmatch(lower)) and b"dependencies:" in head, "conda"),
        (lower.endswith(".ipynb") and b'"cells"' in head, "notebook"),
    ]
    return next((kind for match, kind in table if match), None)


class DependencyScanner(Scanner):
    """Requirements files, pyproject.toml, lock files and conda environments."""

    name = "dependencies"
    priority = 300

    def sniff(self, source: Source) -> bool:
        kind = dependency_kind(source.name, source.head())
        return kind is not None and kind != "notebook"  # notebooks: the notebook scanner

    def scan(self, source: Source, ctx: ScanContext) -> None:
        from mlward._internal.scanners.deps.check import (
            DependencyResult,
            check_dependencies,
            findings_for,
            parser_for,
            read_dependencies,
        )
        from mlward._internal.scanners.deps.model import DependencyError
        from mlward._internal.vulndb import assess, source_for
        from mlward._internal.vulndb.match import PackageResult

        loc = source.location
        if source.size is not None and source.size > MAX_FILE_BYTES:
            ctx.skip(loc, f"dependency file larger than {MAX_FILE_BYTES} bytes",
                     inconclusive=True)
            return
        try:
            if source.fs_path is not None and not loc.members:
                kind, deps = read_dependencies(source.fs_path, loc.uri)
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
        if not ctx.settings.match_dependency_files and in_tree(loc):
            return  # the caller's dependency audit matches this file (`mlward bom`)
        checkable = [d.key for d in deps if not d.unresolvable]
        try:
            vulns = source_for(ctx.settings)
            assessment = None if vulns is None else assess(vulns, ctx.settings)
        except MlwardError as exc:
            ctx.skip(loc, f"dependencies not checked: {exc.diagnostics()}", inconclusive=True)
            return
        if vulns is None or assessment is None or assessment.blind:
            for finding in findings_for(DependencyResult(d, PackageResult((), None))
                                        for d in deps):
                ctx.add(finding)
            if checkable:
                ctx.skip(loc, NO_DATA if assessment is None else assessment.unchecked(checkable),
                         inconclusive=True)
            return
        try:
            results = check_dependencies(deps, vulns)
        except MlwardError as exc:
            ctx.skip(loc, f"dependencies not checked: {exc.diagnostics()}", inconclusive=True)
            return
        for finding in findings_for(results):
            ctx.add(finding)


def in_tree(location: Location) -> bool:
    """A file of the scanned tree itself, not an archive member nor a remote object: a file
    the dependency audit (:mod:`mlward._internal.scanners.deps.audit`) reads too, so one that
    :attr:`~mlward.settings.Settings.match_dependency_files` can leave to it."""
    return location.is_local and not location.members


def note_data(builder: ReportBuilder, settings: Settings) -> None:
    """Put the vulnerability data's facts and warnings (its age, unreadable records) in a
    report whose dependency files were checked against it."""
    from mlward._internal.vulndb import assess, source_for

    try:
        source = source_for(settings)
        if source is not None:
            assess(source, settings).record(builder)
    except MlwardError:
        return  # each dependency file already says why it was not checked
