"""pip requirements files: ``-r``/``-c`` includes, markers, hashes, options, and lines that
name no version (editable installs, URLs, VCS references), which are reported, not dropped.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from mlward._internal.scanners.deps.model import Dependency, DependencyError
from mlward.findings import Location

MAX_INCLUDE_DEPTH = 10
MAX_FILE_BYTES = 8 << 20
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=?\s*)(\S+)")
_EDITABLE = re.compile(r"^(-e|--editable)(?:\s*=?\s*)(\S+)")
_URLISH = re.compile(r"^(\w+\+)?(https?|file|ftp|git|ssh)://|^\.{0,2}/|\.(whl|zip|tar\.gz)$")
_HASH = re.compile(r"--hash[=\s]+([A-Za-z0-9]+:[0-9A-Fa-f]+)")
_OPTIONS_WITH_VALUE = ("--hash", "-i", "--index-url", "--extra-index-url", "-f",
                       "--find-links", "--trusted-host", "--config-settings", "--global-option")


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, content) with comments removed and ``\\`` continuations joined."""
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buf:
            start = n
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(p.strip() for p in buf).strip()
        buf = []
        if joined:
            yield start, joined


def _strip_options(line: str) -> str:
    """The requirement part of a line: ``--hash=...`` and other per-line options removed."""
    words = line.split()
    kept: list[str] = []
    skip_next = False
    for w in words:
        if skip_next:
            skip_next = False
            continue
        if w.startswith(_OPTIONS_WITH_VALUE):
            skip_next = "=" not in w and w in _OPTIONS_WITH_VALUE
            continue
        kept.append(w)
    return " ".join(kept)


def _with_hashes(dep: Dependency | None, line: str) -> Dependency | None:
    """``dep`` with the ``--hash`` values its line pins."""
    hashes = tuple(h.lower() for h in _HASH.findall(line))
    return replace(dep, hashes=hashes) if dep is not None and hashes else dep


def parse_requirement(text: str, location: Location, origin: str) -> Dependency | None:
    """One requirement string (PEP 508); None for a bare option line."""
    text = text.strip()
    if not text or (text.startswith("-") and not _EDITABLE.match(text)):
        return None
    if m := _EDITABLE.match(text):
        target = m.group(2)
        name = re.search(r"#egg=([\w.\-]+)", target)
        return Dependency(name.group(1) if name else target, location,
                          unresolvable=f"editable install of {target}", origin=origin)
    if _URLISH.search(text.split(";")[0].strip()):
        return Dependency(text.split(";")[0].strip(), location,
                          unresolvable="URL or path reference: no version to check",
                          origin=origin)
    try:
        req = Requirement(text)
    except InvalidRequirement:
        # The line itself is not echoed: a malformed line may well be a pasted secret.
        raise DependencyError(f"line {location.line}: not a valid requirement "
                              "(PEP 508)") from None
    marker = str(req.marker) if req.marker else None
    if req.url:
        return Dependency(req.name, location, marker=marker,
                          unresolvable=f"direct reference to {req.url}: no version to check",
                          origin=origin)
    return Dependency(req.name, location, str(req.specifier), marker, origin=origin)


def parse_requirements(path: Path, display: str | None = None, *, _depth: int = 0,
                       _seen: frozenset[Path] = frozenset()) -> list[Dependency]:
    """The requirements of ``path`` and the files it includes; constraints pin them."""
    if _depth > MAX_INCLUDE_DEPTH:
        raise DependencyError(f"{path}: includes nested deeper than {MAX_INCLUDE_DEPTH}")
    real = path.resolve()
    if real in _seen:
        return []  # an include cycle adds nothing new
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DependencyError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    text = path.read_text(encoding="utf-8", errors="replace")
    return _parse_text(text, path, display or str(path), _depth, _seen | {real})


def parse_requirements_text(text: str, display: str, origin: str = "requirements"
                            ) -> list[Dependency]:
    """Requirements given as text with no folder (``-r`` lines are not followed)."""
    deps = []
    for line_no, line in logical_lines(text):
        dep = _with_hashes(parse_requirement(_strip_options(line),
                                             Location(display).at(line=line_no), origin), line)
        if dep is not None:
            deps.append(dep)
    return deps


def _parse_text(text: str, path: Path, display: str, depth: int,
                seen: frozenset[Path]) -> list[Dependency]:
    deps: list[Dependency] = []
    pins: dict[str, Dependency] = {}
    for line_no, line in logical_lines(text):
        loc = Location(display).at(line=line_no)
        if m := _INCLUDE.match(line):
            target = m.group(2)
            if "://" in target:
                deps.append(Dependency(target, loc, unresolvable="remote requirements file "
                                       "(not fetched)", origin="requirements"))
                continue
            inc = (path.parent / target)
            if not inc.is_file():
                raise DependencyError(f"{display}:{line_no}: included file {target} not found")
            included = parse_requirements(inc, str(Path(display).parent / target),
                                          _depth=depth + 1, _seen=seen)
            if m.group(1) in ("-c", "--constraint"):
                pins.update((d.key, d) for d in included if d.version)
            else:
                deps.extend(included)
            continue
        dep = _with_hashes(parse_requirement(_strip_options(line), loc, "requirements"), line)
        if dep is not None:
            deps.append(dep)
    if pins:
        deps = [pins[d.key] if not d.version and not d.unresolvable and d.key in pins else d
                for d in deps]
    return deps


_PIP = re.compile(r"^[%!]?(.*/)?pip(3(\.\d+)?)?$")
_TAKES_VALUE = frozenset({"-r", "-c", "-i", "--index-url", "--extra-index-url", "-f",
                          "--find-links", "--target", "-t", "--prefix", "--root"})


def split_pip_install(command: str) -> list[str] | None:
    """The requirements a ``pip install`` command line names, or None if it is not one.

    ``-e PATH`` stays one item (``-e PATH``) so that it is reported as an editable install.
    """
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    at = next((i for i in range(1, len(words))
               if words[i] == "install" and _PIP.match(words[i - 1])), None)
    if at is None:
        return None
    args: list[str] = []
    pending_value = False
    editable = False
    for w in words[at + 1:]:
        if w in ("&&", ";", "|", "||"):
            break
        if pending_value:
            pending_value = False
        elif editable:
            args.append(f"-e {w}")
            editable = False
        elif w in ("-e", "--editable"):
            editable = True
        elif w in _TAKES_VALUE:
            pending_value = True
        elif not w.startswith("-"):
            args.append(w)
    return args
