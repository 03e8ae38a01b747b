"""Read OSV records from a folder of JSON/YAML files, an OSV ``all.zip``, or one file.

Each record is bounded in size; a record that cannot be decoded or does not follow the schema
is counted in :attr:`LoadStats.bad` and the load goes on.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mlward._internal.vulndb.records import Advisory, parse_record, record_facts
from mlward.errors import FormatError, UsageError

MAX_RECORD_BYTES = 8 << 20
_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass
class LoadStats:
    records: int = 0
    pypi: int = 0
    bad: list[str] = field(default_factory=list)
    ecosystems: Counter[str] = field(default_factory=Counter)
    """Readable records per ecosystem they name (what the data covers)."""
    newest: str | None = None
    """The latest ``modified`` time of any readable record (how fresh the data is)."""


def decode_record(name: str, data: bytes) -> object:
    """A record's data: JSON, or YAML read as plain strings (no tags, no type guessing)."""
    if name.endswith(".json"):
        return json.loads(data)
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    return yaml.load(data, Loader=loader)  # BaseLoader: only str, list, dict


def _records_in_dir(root: Path) -> Iterator[tuple[str, bytes]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(_SUFFIXES):
                continue
            path = Path(dirpath) / name
            if path.stat().st_size > MAX_RECORD_BYTES:
                yield str(path), b""
                continue
            yield str(path), path.read_bytes()


def _records_in_zip(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UsageError(f"{path}: not a readable zip file ({exc})") from exc
    with zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.endswith(_SUFFIXES):
                continue
            if info.file_size > MAX_RECORD_BYTES:
                yield info.filename, b""
                continue
            with zf.open(info) as f:
                yield info.filename, f.read(MAX_RECORD_BYTES + 1)


def raw_records(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every record file under ``path``."""
    if path.is_dir():
        yield from _records_in_dir(path)
    elif zipfile.is_zipfile(path):
        yield from _records_in_zip(path)
    elif path.is_file():
        yield str(path), path.read_bytes()[: MAX_RECORD_BYTES + 1]
    else:
        raise UsageError(f"no OSV data at {path}")


def load_advisories(path: Path, stats: LoadStats | None = None) -> Iterator[Advisory]:
    """The PyPI advisories under ``path``; malformed records are counted in ``stats``."""
    stats = stats if stats is not None else LoadStats()
    for name, data in raw_records(path):
        stats.records += 1
        if not data or len(data) > MAX_RECORD_BYTES:
            stats.bad.append(f"{name}: empty or larger than {MAX_RECORD_BYTES} bytes")
            continue
        try:
            record = decode_record(name, data)
            advisory = parse_record(record)
        except (ValueError, yaml.YAMLError, FormatError, RecursionError) as exc:
            stats.bad.append(f"{name}: {exc}")
            continue
        ecosystems, modified = record_facts(record)
        stats.ecosystems.update(ecosystems)
        if modified is not None and (stats.newest is None or modified > stats.newest):
            stats.newest = modified
        if advisory is not None:
            stats.pypi += 1
            yield advisory
