"""Where vulnerability data and its cache live, from the settings (kept light: every scan asks).

Data comes from, in order: the ``vuln_db`` setting (``--vuln-db``, ``MLWARD_VULN_DB``, the
settings files), else the export that ``mlward vulndb update`` downloaded into the cache.
"""

from __future__ import annotations

from pathlib import Path

from mlward.settings import Settings

EXPORT_NAME = "osv-PyPI-all.zip"


def cache_dir(settings: Settings) -> Path:
    """The cache folder (``cache_dir`` setting: ``MLWARD_CACHE``, else the XDG cache)."""
    return Path(settings.cache_dir or Path.home() / ".cache" / "mlward")


def exported_zip(settings: Settings) -> Path:
    """Where ``mlward vulndb update`` keeps OSV's PyPI export."""
    return cache_dir(settings) / EXPORT_NAME


def data_paths(settings: Settings) -> list[Path]:
    """The local OSV sources to use (empty when none is configured or downloaded)."""
    if settings.vuln_db:
        return [Path(p) for p in settings.vuln_db]
    export = exported_zip(settings)
    return [export] if export.exists() else []
