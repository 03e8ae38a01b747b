"""Another Python environment's installed distributions, found without running anything in it.

``mlward deps --python PATH`` names an interpreter (``.venv/bin/python``), an environment's
prefix (a virtual environment, a conda environment) or a site-packages folder. Running that
interpreter to print its ``sys.path`` would be simplest, but it would run whatever the
environment's ``sitecustomize``, ``.pth`` files and start-up hooks contain, which is exactly
what is under examination. So the site-packages folders are read from the layout instead:
``pyvenv.cfg`` (its ``version``, and ``home`` when ``include-system-site-packages`` is true),
then the standard places under the prefix (``lib/pythonX.Y/site-packages``,
``Lib/site-packages``, Debian's ``dist-packages``). The user's own site-packages
(``~/.local``) is not included. Distributions are then read from their ``.dist-info`` /
``.egg-info`` metadata, as text.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlward.errors import UsageError

_VERSION = re.compile(r"(\d+)\.(\d+)")
_INTERPRETER = re.compile(r"python(\d+\.\d+)?[a-z]?(\.exe)?$")


@dataclass(frozen=True)
class Environment:
    """Where an environment keeps its distributions, and how that was found."""

    given: Path
    site_packages: tuple[Path, ...]
    how: str


def _metadata_dirs(folder: Path) -> bool:
    try:
        return any(e.name.endswith((".dist-info", ".egg-info")) for e in os.scandir(folder))
    except OSError:
        return False


def _pyvenv(prefix: Path) -> dict[str, str]:
    path = prefix / "pyvenv.cfg"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[:200]
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip().lower().replace("_", "-")] = value.strip()
    return out


def _candidates(prefix: Path, version: str | None) -> list[Path]:
    lib = [prefix / "lib", prefix / "lib64", prefix / "local" / "lib"]
    names = [f"python{version}"] if version else sorted(
        {p.name for d in lib if d.is_dir() for p in d.glob("python3*") if p.is_dir()})
    return ([d / n / sub for d in lib for n in names for sub in ("site-packages",
                                                                 "dist-packages")]
            + [prefix / "lib" / "python3" / "dist-packages", prefix / "Lib" / "site-packages"])


def find_environment(path: Path) -> Environment:
    """The site-packages folders of the environment ``path`` names (nothing is executed)."""
    given = Path.cwd() / path  # not resolved: venv/bin/python links out of the venv
    if not given.exists():
        raise UsageError(f"--python {path}: no such file or folder")
    if given.is_dir() and _metadata_dirs(given):
        return Environment(given, (given,), "a site-packages folder, as given")
    version = None
    if given.is_file():
        prefix = given.parent.parent if given.parent.name in ("bin", "Scripts") else given.parent
        named = _INTERPRETER.search(given.name)
        version = named.group(1) if named and named.group(1) else None
    else:
        prefix = given
    cfg = _pyvenv(prefix)
    if version is None and (m := _VERSION.match(cfg.get("version", "")
                                                or cfg.get("version-info", ""))):
        version = f"{m.group(1)}.{m.group(2)}"
    found = [p for p in _candidates(prefix, version) if p.is_dir()]
    how = (f"the layout of {prefix}" + (" (a virtual environment: pyvenv.cfg)" if cfg else "")
           + "; nothing in it was run")
    if cfg.get("include-system-site-packages", "").lower() == "true" and cfg.get("home"):
        base = Path(cfg["home"]).parent
        found += [p for p in _candidates(base, version) if p.is_dir() and p not in found]
        how += f", plus the base interpreter's under {base} (include-system-site-packages)"
    if not found:
        raise UsageError(f"--python {path}: no site-packages folder found under {prefix} "
                         "(name the environment's site-packages folder itself)")
    return Environment(given, tuple(dict.fromkeys(found)), how)
