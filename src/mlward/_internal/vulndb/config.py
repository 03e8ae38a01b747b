"""Where vulnerability data and its cache live (kept light: every scan asks)."""

from __future__ import annotations

import os
from pathlib import Path

EXPORT_NAME = "osv-PyPI-all.zip"


def cache_dir() -> Path:
    """``$MLWARD_CACHE``, else ``$XDG_CACHE_HOME/mlward``, else ``~/.cache/mlward``."""
    if env := os.environ.get("MLWARD_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlward"


def exported_zip() -> Path:
    """Where ``mlward vulndb update`` keeps OSV's PyPI export."""
    return cache_dir() / EXPORT_NAME


def configured_path(explicit: Path | None = None) -> Path | None:
    """The local OSV source to use, or None when none is configured or downloaded."""
    if explicit is not None:
        return explicit
    if env := os.environ.get("MLWARD_VULN_DB"):
        return Path(env)
    return exported_zip() if exported_zip().exists() else None
