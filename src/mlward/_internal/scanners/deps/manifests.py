"""Project manifests and lock files: pyproject.toml (PEP 621, Poetry), poetry.lock, uv.lock,
Pipfile.lock, pylock.toml (PEP 751), conda environment.yml, notebooks' ``%pip install`` lines,
and the running environment's installed distributions.

Each parser takes the file's text and its display name and returns :class:`Dependency` items
with the line where each package is named (found by text search: TOML and JSON parsers keep no
positions).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from packaging.utils import canonicalize_name

from mlward._internal.scanners.deps.model import Dependency, DependencyError
from mlward._internal.scanners.deps.requirements import (
    parse_requirement,
    parse_requirements_text,
    split_pip_install,
)
from mlward.findings import Location

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# conda package names whose PyPI name differs; others are the same on both.
CONDA_TO_PYPI = {
    "pytorch": "torch", "pytorch-cpu": "torch", "pytorch-gpu": "torch",
    "py-xgboost": "xgboost", "py-lightgbm": "lightgbm", "tensorflow-base": "tensorflow",
    "py-opencv": "opencv-python", "libopencv": "opencv-python",
    "matplotlib-base": "matplotlib",
}
CONDA_NOT_PYPI = frozenset({"python", "pip", "cudatoolkit", "cudnn", "libgcc-ng", "openssl",
                            "libstdcxx-ng", "mkl", "blas", "ca-certificates"})


class _Lines:
    """Finds the line where a name appears, searching forward from the last hit."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def find(self, *needles: str, after: int = 0) -> int | None:
        for n in range(after, len(self.lines)):
            if all(x in self.lines[n] for x in needles):
                return n + 1
        return None


def _toml(text: str, display: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DependencyError(f"{display}: not valid TOML ({exc})") from None


def _table(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def poetry_constraint(text: str) -> str:
    """Poetry's version syntax (``^1.2``, ``~1.2``, ``1.2.*``, ``*``) as a PEP 440 specifier."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part or part == "*":
            continue
        if part[0] in "^~" and not part.startswith("~="):
            nums = [int(x) if x.isdigit() else 0 for x in part.lstrip("^~").split(".")]
            nums += [0] * (3 - len(nums))
            if part[0] == "^":
                bump = next((i for i, x in enumerate(nums) if x), len(nums) - 1)
            else:
                bump = min(1, len(part.lstrip("~").split(".")) - 1)
            upper = [*nums[:bump], nums[bump] + 1]
            out.append(f">={part.lstrip('^~')},<{'.'.join(map(str, upper))}")
        elif part[0].isdigit():
            out.append(f"=={part}")
        else:
            out.append(part.replace(" ", ""))
    return ",".join(out)


def parse_pyproject(text: str, display: str) -> list[Dependency]:
    data = _toml(text, display)
    lines = _Lines(text)
    deps: list[Dependency] = []

    def add_pep508(items: Iterable[object], origin: str) -> None:
        for item in items:
            if isinstance(item, str):
                line = lines.find(f'"{item}') or lines.find(item.split(";")[0].strip())
                dep = parse_requirement(item, Location(display).at(line=line), origin)
                if dep is not None:
                    deps.append(dep)

    project = _table(data.get("project"))
    add_pep508(_list(project.get("dependencies")), "pyproject")
    for group in _table(project.get("optional-dependencies")).values():
        add_pep508(_list(group), "pyproject")
    for group in _table(data.get("dependency-groups")).values():
        add_pep508(_list(group), "pyproject")
    poetry = _table(_table(data.get("tool")).get("poetry"))
    tables = [_table(poetry.get("dependencies")), _table(poetry.get("dev-dependencies"))]
    tables += [_table(_table(g).get("dependencies"))
               for g in _table(poetry.get("group")).values()]
    for table in tables:
        for name, spec in table.items():
            if name.lower() == "python":
                continue
            loc = Location(display).at(line=lines.find(name, "="))
            if isinstance(spec, Mapping):
                ref = next((k for k in ("git", "path", "url") if k in spec), None)
                if ref:
                    deps.append(Dependency(name, loc, unresolvable=f"{ref} reference "
                                           f"{spec[ref]}: no version to check", origin="poetry"))
                    continue
                spec = spec.get("version", "*")
            if isinstance(spec, list):  # several constraints by marker: check the widest
                spec = "*"
            deps.append(Dependency(name, loc, poetry_constraint(str(spec)), origin="poetry"))
    return deps


def _locked(entries: Iterable[object], display: str, text: str, origin: str,
            skip: Callable[[Mapping[str, Any]], bool] = lambda e: False) -> list[Dependency]:
    lines = _Lines(text)
    deps = []
    last = 0
    for entry in entries:
        e = _table(entry)
        name, version = e.get("name"), e.get("version")
        if not isinstance(name, str) or skip(e):
            continue
        line = lines.find(f'name = "{name}"', after=last) or lines.find(f'"{name}"')
        last = line or last
        loc = Location(display).at(line=line)
        if isinstance(version, str):
            deps.append(Dependency(name, loc, f"=={version}", origin=origin,
                                   hashes=_entry_hashes(e)))
        else:
            deps.append(Dependency(name, loc, unresolvable="no version in the lock entry",
                                   origin=origin))
    return deps


def _entry_hashes(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """``alg:hex`` digests a lock entry records for its files: poetry.lock ``files``, uv.lock
    ``sdist``/``wheels`` ``hash``, pylock.toml ``hashes`` tables."""
    files = [*_list(entry.get("files")), *_list(entry.get("wheels")), _table(entry.get("sdist"))]
    out: list[str] = []
    for f in (_table(x) for x in files):
        if isinstance(f.get("hash"), str) and ":" in f["hash"]:
            out.append(f["hash"].lower())
        out.extend(f"{alg}:{value}".lower() for alg, value in _table(f.get("hashes")).items()
                   if isinstance(value, str))
    return tuple(dict.fromkeys(out))


def parse_poetry_lock(text: str, display: str) -> list[Dependency]:
    return _locked(_list(_toml(text, display).get("package")), display, text, "poetry.lock")


def parse_uv_lock(text: str, display: str) -> list[Dependency]:
    def local(e: Mapping[str, Any]) -> bool:  # the project itself and workspace members
        source = _table(e.get("source"))
        return any(k in source for k in ("editable", "virtual"))

    return _locked(_list(_toml(text, display).get("package")), display, text, "uv.lock", local)


def parse_pylock(text: str, display: str) -> list[Dependency]:
    return _locked(_list(_toml(text, display).get("packages")), display, text, "pylock")


def parse_pipfile_lock(text: str, display: str) -> list[Dependency]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DependencyError(f"{display}: not valid JSON ({exc})") from None
    lines = _Lines(text)
    deps = []
    for section in ("default", "develop"):
        for name, entry in _table(_table(data).get(section)).items():
            e = _table(entry)
            loc = Location(display).at(line=lines.find(f'"{name}"'))
            if isinstance(e.get("version"), str):
                hashes = tuple(h.lower() for h in _list(e.get("hashes")) if isinstance(h, str))
                deps.append(Dependency(name, loc, e["version"], origin="Pipfile.lock",
                                       hashes=hashes))
            else:
                ref = next((k for k in ("git", "path", "file", "editable") if k in e), "source")
                deps.append(Dependency(name, loc, unresolvable=f"{ref} reference: no version",
                                       origin="Pipfile.lock"))
    return deps


_CONDA_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(==|=|>=|<=|>|<|!=)?\s*([^=\s]*)")


def parse_conda_environment(text: str, display: str) -> list[Dependency]:
    import yaml  # imported here: most scans never meet a conda file

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DependencyError(f"{display}: not valid YAML ({exc})") from None
    lines = _Lines(text)
    deps: list[Dependency] = []
    for item in _list(_table(data).get("dependencies")):
        if isinstance(item, Mapping):
            pip_lines = [x for x in _list(item.get("pip")) if isinstance(x, str)]
            for req in pip_lines:
                line = lines.find(req)
                parsed = parse_requirements_text(req, display, "conda-pip")
                deps.extend(Dependency(d.name, Location(display).at(line=line), d.specifier,
                                       d.marker, d.unresolvable, d.origin) for d in parsed)
            continue
        if not isinstance(item, str):
            continue
        spec = item.split("::")[-1].strip()
        m = _CONDA_SPEC.match(spec)
        if not m or m.group(1).lower() in CONDA_NOT_PYPI:
            continue
        name = CONDA_TO_PYPI.get(m.group(1).lower(), m.group(1))
        op, version = m.group(2), m.group(3)
        specifier = ""
        if version and (op == "==" or "*" in version or version.count(".") >= 2):
            specifier = f"=={version}"
        elif version and op in ("=", None):  # conda's "numpy=1.24" means any 1.24.x
            specifier = f"=={version}.*"
        elif version:
            specifier = f"{op}{version}"
        deps.append(Dependency(name, Location(display).at(line=lines.find(item)), specifier,
                               origin="conda"))
    return deps


def notebook_pip_lines(text: str, display: str) -> list[Dependency]:
    """``%pip install`` and ``!pip install`` lines in a notebook's code cells."""
    try:
        nb = json.loads(text)
    except ValueError as exc:
        raise DependencyError(f"{display}: not valid notebook JSON ({exc})") from None
    deps: list[Dependency] = []
    for cell_no, cell in enumerate(_list(_table(nb).get("cells"))):
        c = _table(cell)
        if c.get("cell_type") != "code":
            continue
        source = c.get("source", "")
        src = "".join(x for x in source if isinstance(x, str)) if isinstance(source, list) \
            else str(source)
        for line_no, line in enumerate(src.splitlines(), 1):
            stripped = line.strip()
            if not stripped.startswith(("%pip", "!pip", "!python", "%conda", "!{sys")):
                continue
            for arg in split_pip_install(stripped) or []:
                loc = Location(display).at(cell=cell_no, line=line_no)
                dep = parse_requirement(arg, loc, "notebook")
                if dep is not None:
                    deps.append(dep)
    return deps


def installed_distributions(paths: list[str] | None = None) -> list[Dependency]:
    """The distributions installed on ``paths`` (default: this interpreter's ``sys.path``),
    read from their metadata files (nothing is imported)."""
    from importlib import metadata

    deps = []
    seen = set()
    for dist in metadata.distributions(path=paths if paths is not None else sys.path):
        name = dist.metadata["Name"] if dist.metadata else None
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        purl = f"pkg:pypi/{canonicalize_name(name)}@{dist.version}"
        deps.append(Dependency(name, Location(purl), f"=={dist.version}", origin="environment"))
    return sorted(deps, key=lambda d: d.key)
