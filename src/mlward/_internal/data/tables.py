"""Where a tabular dataset's rows come from: files, folders of shards, manifests, lineage.

A :class:`Dataset` is a list of files of one kind (Parquet, CSV/TSV, JSON lines) that DuckDB
reads as one table. Kinds are told by content (Parquet's ``PAR1`` magic, JSON's first
character), names only tell CSV from TSV. A manifest (``mlward manifest create``) stands for
the files under its roots; a lineage statement for the data inputs it records.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from mlward.errors import MlwardError

MAX_FILES = 100_000
ARROW_MAGIC = b"ARROW1"


class DataError(MlwardError):
    """A dataset cannot be read or compared (the reason is for the user)."""


@dataclass(frozen=True)
class Dataset:
    label: str
    """What the user named (a path), for reports."""
    kind: str
    """``parquet``, ``csv`` or ``json``."""
    files: tuple[Path, ...]
    delimiter: str | None = None

    def sql(self) -> str:
        """A DuckDB table function reading every file as one table."""
        files = "[" + ", ".join(_literal(str(f)) for f in self.files) + "]"
        if self.kind == "parquet":
            return f"read_parquet({files}, union_by_name = true)"
        if self.kind == "json":
            return f"read_json_auto({files}, format = 'newline_delimited', union_by_name = true)"
        delim = f", delim = {_literal(self.delimiter)}" if self.delimiter else ""
        return f"read_csv({files}, header = true, union_by_name = true{delim})"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def file_kind(path: Path) -> str | None:
    """The tabular kind of a file by its content, or None when it is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(ARROW_MAGIC):
        return "arrow"
    if b"\0" in head:
        return None
    text = head.lstrip()
    if text[:1] in (b"{", b"["):
        return "json"
    if path.name.lower().endswith((".csv", ".tsv", ".tab", ".txt", ".psv")) or b"," in head:
        return "csv"
    return None


def _files_under(folder: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith((".", "_")):
                out.append(Path(dirpath) / name)
                if len(out) > MAX_FILES:
                    raise DataError(f"{folder} holds more than {MAX_FILES} files")
    return out


def resolve(path: Path, label: str | None = None) -> Dataset:
    """The dataset ``path`` names (a file, a folder of shards, a manifest or a lineage
    statement)."""
    label = label or str(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_file() and _json_kind(path) is not None:
        return _from_record(path, label)
    files = [path] if path.is_file() else _files_under(path)
    kinds: dict[str, list[Path]] = {}
    for f in files:
        kind = file_kind(f)
        if kind is not None:
            kinds.setdefault(kind, []).append(f)
    if "arrow" in kinds:
        raise DataError(f"{path}: Arrow IPC/Feather files are not compared yet; convert them "
                        "to Parquet")
    if not kinds:
        raise DataError(f"{path} holds no Parquet, CSV or JSON-lines table")
    if len(kinds) > 1:
        raise DataError(f"{path} mixes {' and '.join(sorted(kinds))} files; compare one kind")
    (kind, members), = kinds.items()
    delimiter = "\t" if kind == "csv" and all(
        f.name.lower().endswith((".tsv", ".tab")) for f in members) else None
    return Dataset(label, kind, tuple(members), delimiter)


def _json_kind(path: Path) -> str | None:
    """``manifest`` or ``lineage`` for mlward's own JSON records, else None."""
    from mlward._internal.provenance.lineage import is_manifest_file

    if is_manifest_file(path):
        return "manifest"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if b"https://in-toto.io/Statement/v1" in head:
        return "lineage"
    return None


def _from_record(path: Path, label: str) -> Dataset:
    from mlward._internal.provenance.errors import ProvenanceError
    from mlward._internal.provenance.lineage import load_statement
    from mlward._internal.provenance.manifest import Manifest

    try:
        if _json_kind(path) == "lineage":
            statement = load_statement(path)
            manifests = [path.parent / i["annotations"]["mlward.manifest"]
                         for i in statement.inputs
                         if i.get("annotations", {}).get("mlward.kind", "data") == "data"]
        else:
            manifests = [path]
        roots: list[Path] = []
        for m in manifests:
            roots.extend(root.where(m.parent) for root in Manifest.load(m).roots)
    except (ProvenanceError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: {exc}") from None
    if not roots:
        raise DataError(f"{path} names no data")
    datasets = [resolve(r) for r in roots]
    if len({d.kind for d in datasets}) > 1:
        raise DataError(f"{path}: its inputs mix table kinds")
    files = tuple(f for d in datasets for f in d.files)
    return Dataset(label, datasets[0].kind, files, datasets[0].delimiter)
