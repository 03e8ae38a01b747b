"""Settings: resolved once, at the edge, into one frozen :class:`Settings` passed down.

Precedence, lowest first: built-in defaults < ``.mlward/mlward.toml`` (``[mlward]`` table, or
top-level keys) < ``[tool.mlward]`` in ``pyproject.toml`` < ``MLWARD_*`` environment variables
< command-line flags. :func:`load_settings` records where every value came from
(``mlward config show`` prints it). Library code never reads the environment: it is handed a
``Settings`` (the default one when a caller passes none).

Feature areas with settings of their own (``[alerts]``, ``[cloud]``, ``[policy]``, ...) are kept
as raw tables in :attr:`Settings.sections`; each feature validates its own table.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mlward._internal.lazy import lazy_pattern
from mlward.errors import UsageError
from mlward.findings import Severity

PROJECT_FOLDER = ".mlward"
CONFIG_FILE = "mlward.toml"
DEFAULT_OSV_API = "https://api.osv.dev"
DEFAULT_OSV_EXPORT = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"
EXECUTORS = ("process", "thread", "inline", "dask")


class Limits(NamedTuple):
    """Safety bounds for hostile input. Reaching one makes the item inconclusive."""

    max_depth: int = 8
    """Containers inside containers (a zip in a tar in a gzip is depth 3)."""
    max_members: int = 100_000
    """Members listed from one archive."""
    max_member_bytes: int = 4 << 30
    """Decompressed bytes read from one member or compressed stream."""
    max_total_bytes: int = 16 << 30
    """Decompressed bytes read under one top-level input, all members together."""
    max_ratio: float = 250.0
    """Decompressed/compressed ratio above which a member is treated as a bomb."""
    max_pickle_ops: int = 20_000_000
    """Opcodes executed symbolically in one pickle stream."""
    max_stack_depth: int = 100_000
    """Nesting tolerated in a pickle stream: MARK frames inside MARK frames, and items taken
    one at a time from under this many others (containers inside containers). A long flat
    list or tuple is not nesting."""


class Waiver(NamedTuple):
    """A decision that a finding (or a rule under some paths) is accepted, for a reason.

    It names a ``fingerprint``, or a ``rule`` (and optionally a ``path`` glob, relative to the
    report's root); an ``expires`` date (``YYYY-MM-DD``) ends it: an expired waiver no longer
    waives and is itself reported.
    """

    reason: str
    rule: str | None = None
    fingerprint: str | None = None
    path: str | None = None
    owner: str | None = None
    expires: str | None = None
    source: str = "settings"


class Settings(NamedTuple):
    """Everything configurable, with its default. Immutable: derive with ``_replace``."""

    root: str | None = None
    """Folder that local locations are relative to (default: the project root, found from
    the inputs)."""
    fail_on: Severity = Severity.HIGH
    format: str = "text"
    jobs: int | None = None
    """Worker processes (default: one per available core)."""
    executor: str = "process"
    """``process`` (crash-isolated workers), ``thread``, ``inline`` (this process, no
    isolation) or ``dask`` (needs ``cluster``)."""
    cluster: str | None = None
    """A Dask scheduler address (``tcp://host:8786``) or ``local:N``."""
    timeout: float = 600.0
    """Seconds one file may take before its worker is stopped (it is then inconclusive)."""
    max_memory: int | None = None
    """Address-space cap per worker process in bytes (where the platform has one)."""
    exclude: tuple[str, ...] = ()
    """Gitignore-style patterns of paths not to scan, relative to the root."""
    ignore_files: bool = True
    """Honour ``.gitignore``/``.mlwardignore`` and skip virtual environments, ``.git``,
    ``node_modules`` and caches (``--no-ignore`` turns this off)."""
    follow_symlinks: bool = False
    ignore_unreadable: bool = False
    vuln_db: tuple[str, ...] = ()
    online: bool = False
    osv_api: str = DEFAULT_OSV_API
    osv_export: str = DEFAULT_OSV_EXPORT
    vuln_db_max_age_days: int = 7
    """Vulnerability data whose newest record is older than this many days is used, with a
    warning in every output format."""
    match_dependency_files: bool = True
    """Whether a scan matches the dependency files of the tree (on disk, not inside an archive
    or a remote object) against the vulnerability data. Not a user setting, since a scan
    without it names no vulnerable dependency: ``mlward bom`` turns it off because its own
    dependency audit matches the same files and gives the scan's report those findings
    (:func:`mlward._internal.bom.collect.build_inventory`), so each file is matched once."""
    cache_dir: str | None = None
    hf_cache: str | None = None
    """The Hugging Face hub cache that ``hf-cache:`` targets read (default: ``HF_HUB_CACHE``,
    else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``)."""
    trust: str | None = None
    """The trust file of accepted public keys (default: ``.mlward/trusted_keys.pem``)."""
    db: str | None = None
    """The ledger database (a path or ``postgresql://`` URL); default: the project's."""
    baseline: str | None = None
    """A baseline file: findings in it are reported as unchanged and do not fail the run."""
    all_findings: bool = False
    """With a baseline: show unchanged findings too (they still do not fail the run)."""
    waivers: tuple[Waiver, ...] = ()
    verbose: int = 0
    quiet: bool = False
    color: bool | None = None
    """None: colour when writing to a terminal and ``NO_COLOR`` is not set."""
    limits: Limits = Limits()
    sections: Mapping[str, Mapping[str, Any]] = {}
    """Tables for feature areas (``alerts``, ``cloud``, ``policy``, ...), as written."""
    origins: Mapping[str, str] = {}
    """Where each non-default value came from (``mlward config show``)."""

    def section(self, name: str) -> Mapping[str, Any]:
        """A feature area's table (empty when not configured)."""
        return self.sections.get(name, {})


# --- resolution ----------------------------------------------------------------------------


def _str_list(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{key} must be a string or a list of strings")


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{key} must be true or false")


def _positive_int(value: Any, key: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a whole number") from None
    if isinstance(value, bool) or n < 1 or (isinstance(value, float) and value != n):
        raise ValueError(f"{key} must be a whole number of at least 1 (got {value!r})")
    return n


def _positive_float(value: Any, key: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number") from None
    if isinstance(value, bool) or not x > 0:
        raise ValueError(f"{key} must be a positive number (got {value!r})")
    return x


def _severity(value: Any, key: str) -> Severity:
    if isinstance(value, Severity):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a severity name")
    return Severity.parse(value)


def _choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def parse(value: Any, key: str) -> str:
        if not isinstance(value, str) or value.strip().lower() not in choices:
            raise ValueError(f"{key} must be one of {', '.join(choices)} (got {value!r})")
        return value.strip().lower()
    return parse


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _size(value: Any, key: str) -> int:
    """Bytes, as a number or with a unit: ``512M``, ``4GiB``."""
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("B").removesuffix("I")
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
        scale = units.get(text[-1:], 1)
        value = text[:-1] if text[-1:] in units else text
        return _positive_int(value, key) * scale
    return _positive_int(value, key)


# key -> (parser, environment variable or None)
_FIELDS: dict[str, tuple[Callable[[Any, str], Any], str | None]] = {
    "root": (_text, "MLWARD_ROOT"),
    "fail_on": (_severity, "MLWARD_FAIL_ON"),
    "format": (_text, "MLWARD_FORMAT"),
    "jobs": (_positive_int, "MLWARD_JOBS"),
    "executor": (_choice(EXECUTORS), "MLWARD_EXECUTOR"),
    "cluster": (_text, "MLWARD_CLUSTER"),
    "timeout": (_positive_float, "MLWARD_TIMEOUT"),
    "max_memory": (_size, "MLWARD_MAX_MEMORY"),
    "exclude": (_str_list, "MLWARD_EXCLUDE"),
    "ignore_files": (_bool, None),
    "follow_symlinks": (_bool, "MLWARD_FOLLOW_SYMLINKS"),
    "ignore_unreadable": (_bool, None),
    "vuln_db": (_str_list, "MLWARD_VULN_DB"),
    "online": (_bool, "MLWARD_ONLINE"),
    "osv_api": (_text, "MLWARD_OSV_API"),
    "osv_export": (_text, "MLWARD_OSV_EXPORT"),
    "vuln_db_max_age_days": (_positive_int, "MLWARD_VULN_DB_MAX_AGE_DAYS"),
    "cache_dir": (_text, "MLWARD_CACHE"),
    "hf_cache": (_text, "MLWARD_HF_CACHE"),
    "trust": (_text, "MLWARD_TRUST"),
    "db": (_text, "MLWARD_DB"),
    "baseline": (_text, "MLWARD_BASELINE"),
    "all_findings": (_bool, None),
    "verbose": (lambda v, k: int(v), None),
    "quiet": (_bool, None),
    "color": (lambda v, k: None if v is None else _bool(v, k), None),
}
_LIST_ENV_SEPARATOR = os.pathsep  # MLWARD_VULN_DB=a:b, MLWARD_EXCLUDE=*.csv:data/
_LIMIT_FIELDS = {name: _size if "bytes" in name else
                 (_positive_float if name == "max_ratio" else _positive_int)
                 for name in Limits._fields}
KNOWN_SECTIONS = frozenset({"alerts", "cloud", "policy", "serve", "audit", "bom", "data",
                            "gate", "ledger", "inventory"})
"""Tables kept for the feature areas that read them (``ledger`` is read by the ledger)."""


def find_upwards(start: Path, marker: str) -> Path | None:
    """The nearest folder at or above ``start`` that contains ``marker``."""
    here = start.resolve()
    for folder in (here, *here.parents):
        if _exists(folder / marker):
            return folder
    return None


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; a folder that cannot be searched (no permission) hides it."""
    try:
        return path.exists()
    except OSError:
        return False


def project_root(start: Path) -> Path | None:
    """The project a path belongs to: the nearest folder above it holding ``.mlward/``,
    ``.git`` or ``pyproject.toml``."""
    here = start.resolve()
    for folder in (here, *here.parents):
        if any(_exists(folder / m) for m in (PROJECT_FOLDER, ".git", "pyproject.toml")):
            return folder
    return None


_TOOL = r"""(?:tool|"tool"|'tool')"""
_MLWARD = r"""(?:mlward|"mlward"|'mlward')"""
_DEFINES_TOOL_MLWARD = lazy_pattern(
    rf"^[ \t]*\[\[?[ \t]*{_TOOL}[ \t]*(?:\]|\.[ \t]*{_MLWARD}[ \t]*[\].])"  # [tool], [tool.mlward
    rf"|^[ \t]*{_TOOL}[ \t]*[.=]"  # tool.mlward.key = ..., tool = { mlward = ... }
    r"|\\[uU]",  # an escape in a quoted key could spell either word
    re.MULTILINE)


def may_configure_mlward(text: str) -> bool:
    """Whether a pyproject.toml's text could hold a ``tool.mlward`` table. A table is named
    by a header (``[tool.mlward]``, ``[tool]`` then ``mlward = ...``) or by a dotted key at
    the top (``tool.mlward.x = ...``, ``tool = {mlward = ...}``), each on a line of its own,
    however it is spaced or quoted; an escape in a quoted key is taken as a maybe. Anything
    else that mentions mlward (a dependency, a script) is other tools' business, and parsing
    it would cost every command a few milliseconds."""
    if "mlward" not in text and "\\u" not in text and "\\U" not in text:
        return False
    return _DEFINES_TOOL_MLWARD.search(text) is not None


def _read_toml(path: Path, *, only_if: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """The TOML file's data; empty, without parsing it, when ``only_if`` says its text
    does not matter."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if only_if is not None and not only_if(text):
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None


class _Layer(NamedTuple):
    values: Mapping[str, Any]
    origin: str


def _file_layers(start: Path) -> list[_Layer]:
    layers = []
    folder = find_upwards(start, PROJECT_FOLDER)
    if folder is not None and (folder / PROJECT_FOLDER / CONFIG_FILE).is_file():
        path = folder / PROJECT_FOLDER / CONFIG_FILE
        data = _read_toml(path)
        table = data.get("mlward", data)
        if not isinstance(table, dict):
            raise UsageError(f"{path}: [mlward] must be a table")
        layers.append(_Layer(table, str(path)))
    folder = find_upwards(start, "pyproject.toml")
    if folder is not None:
        path = folder / "pyproject.toml"
        table = _read_toml(path, only_if=may_configure_mlward).get("tool", {}).get("mlward")
        if table is not None:
            if not isinstance(table, dict):
                raise UsageError(f"{path}: [tool.mlward] must be a table")
            layers.append(_Layer(table, f"{path} [tool.mlward]"))
    return layers


def _env_layer(env: Mapping[str, str]) -> _Layer:
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, (_, var) in _FIELDS.items():
        if var and env.get(var):
            raw = env[var]
            values[key] = [p for p in raw.split(_LIST_ENV_SEPARATOR) if p] \
                if key in ("vuln_db", "exclude") else raw
            origins[key] = f"environment {var}"
    if "NO_COLOR" in env and env["NO_COLOR"] != "":  # https://no-color.org
        values["color"] = False
        origins["color"] = "environment NO_COLOR"
    return _Layer(values, "environment")


def _parse_waivers(items: Any, origin: str) -> list[Waiver]:
    if not isinstance(items, list):
        raise UsageError(f"{origin}: waivers must be an array of tables ([[waivers]])")
    out = []
    for n, item in enumerate(items, 1):
        where = f"{origin}: waiver {n}"
        if not isinstance(item, dict):
            raise UsageError(f"{where} must be a table")
        unknown = set(item) - {"reason", "rule", "fingerprint", "path", "owner", "expires"}
        if unknown:
            raise UsageError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if not isinstance(item.get("reason"), str) or not item["reason"].strip():
            raise UsageError(f"{where} needs a reason")
        if not (item.get("fingerprint") or item.get("rule")):
            raise UsageError(f"{where} must name a fingerprint or a rule")
        expires = item.get("expires")
        if expires is not None:
            from datetime import date

            try:
                expires = (expires if isinstance(expires, date)
                           else date.fromisoformat(str(expires))).isoformat()
            except ValueError:
                raise UsageError(f"{where}: expires must be a date (YYYY-MM-DD)") from None
        for key in ("rule", "fingerprint", "path", "owner"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise UsageError(f"{where}: {key} must be a string")
        out.append(Waiver(reason=item["reason"].strip(), rule=item.get("rule"),
                          fingerprint=item.get("fingerprint"), path=item.get("path"),
                          owner=item.get("owner"), expires=expires, source=origin))
    return out


def load_settings(*, start: Path | None = None, env: Mapping[str, str] | None = None,
                  flags: Mapping[str, Any] | None = None) -> Settings:
    """Resolve the settings for a run started in ``start`` (default: the current folder).

    ``env`` is the environment to read ``MLWARD_*`` from (the CLI passes ``os.environ``; the
    default reads none); ``flags`` are command-line values (``None`` values are ignored).
    Raises :class:`~mlward.errors.UsageError` naming the file and key of an invalid value.
    """
    start = start or Path.cwd()
    layers = [*_file_layers(start), _env_layer(env or {}),
              _Layer({k: v for k, v in (flags or {}).items() if v is not None}, "flags")]
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    limits: dict[str, Any] = {}
    waivers: list[Waiver] = []
    sections: dict[str, Mapping[str, Any]] = {}
    env_origins = {k: f"environment {var}" for k, (_, var) in _FIELDS.items() if var}
    env_origins["color"] = "environment NO_COLOR"
    for layer in layers:
        for key, raw in layer.values.items():
            origin = (env_origins.get(key, layer.origin) if layer.origin == "environment"
                      else f"flag --{key.replace('_', '-')}" if layer.origin == "flags"
                      else layer.origin)
            try:
                if key == "limits":
                    if not isinstance(raw, dict):
                        raise ValueError("limits must be a table")
                    for name, v in raw.items():
                        if name not in _LIMIT_FIELDS:
                            raise ValueError(f"unknown limit {name!r} "
                                             f"(known: {', '.join(Limits._fields)})")
                        limits[name] = _LIMIT_FIELDS[name](v, f"limits.{name}")
                        origins[f"limits.{name}"] = origin
                elif key == "waivers":
                    waivers.extend(_parse_waivers(raw, origin))
                elif key in KNOWN_SECTIONS and layer.origin not in ("environment", "flags"):
                    if not isinstance(raw, dict):
                        raise ValueError(f"[{key}] must be a table")
                    sections[key] = {**sections.get(key, {}), **raw}
                    origins[f"[{key}]"] = origin
                elif key in _FIELDS:
                    parser = _FIELDS[key][0]
                    values[key] = parser(raw, key)
                    origins[key] = origin
                else:
                    raise ValueError(f"unknown setting {key!r}")
            except ValueError as exc:
                raise UsageError(f"{origin}: {exc}") from None
    if values.get("executor") == "dask" and not values.get("cluster"):
        raise UsageError("executor = \"dask\" needs a cluster (--cluster tcp://HOST:8786 or "
                         "local:N)")
    if values.get("cluster") and "executor" not in values:
        values["executor"] = "dask"
    if "baseline" not in values:  # the project's baseline applies when there is one
        folder = find_upwards(start, PROJECT_FOLDER)
        found = folder / PROJECT_FOLDER / "baseline.json" if folder else None
        if found is not None and found.is_file():
            values["baseline"] = str(found)
            origins["baseline"] = "default (the project's baseline)"
    if "cache_dir" not in values:
        xdg = (env or {}).get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        values["cache_dir"] = str(Path(xdg) / "mlward")
    if "hf_cache" not in values:  # the variables huggingface_hub itself reads
        hf_home = (env or {}).get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
        values["hf_cache"] = (env or {}).get("HF_HUB_CACHE") or str(Path(hf_home) / "hub")
    return Settings(**values, limits=Limits(**limits), waivers=tuple(waivers),
                    sections=sections, origins=origins)


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, value, origin) for every setting, for ``mlward config show``."""
    rows = []
    for name in Settings._fields:
        if name in ("limits", "sections", "origins", "waivers"):
            continue  # listed below
        if name == "match_dependency_files":
            continue  # set by `mlward bom` for its own scan, not by a user
        value = getattr(settings, name)
        shown = (value.label if isinstance(value, Severity)
                 else ", ".join(value) if isinstance(value, tuple) else
                 "auto" if value is None and name in ("color", "jobs") else
                 "-" if value is None else str(value).lower() if isinstance(value, bool)
                 else str(value))
        rows.append((name, shown, settings.origins.get(name, "default")))
    for name in Limits._fields:
        rows.append((f"limits.{name}", str(getattr(settings.limits, name)),
                     settings.origins.get(f"limits.{name}", "default")))
    for w in settings.waivers:
        target = w.fingerprint or f"{w.rule}{' ' + w.path if w.path else ''}"
        rows.append(("waiver", f"{target}: {w.reason}"
                     + (f" (until {w.expires})" if w.expires else ""), w.source))
    for name, table in sorted(settings.sections.items()):
        rows.append((f"[{name}]", ", ".join(sorted(table)), settings.origins.get(f"[{name}]",
                                                                                   "default")))
    return rows
