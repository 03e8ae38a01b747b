"""Data snapshots: what ``data diff`` needs of a version, kept when the data itself is not.

``lineage record`` writes one per tabular input beside the input's manifest, so that
``lineage verify`` can say what changed in the data after the files were overwritten: per row
the feature hash, the label and the key (``<name>.rows.parquet``, about 9 bytes a row), and in
``<name>.snapshot.json`` the schema, the column statistics, and how many rows carry each token
of a text column (or each value of another), which the trigger search compares against.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlward._internal.data.sql import connect, feature_hash, ident, lit, stats_exprs, token_expr
from mlward._internal.data.tables import DataError, Dataset
from mlward._internal.io import atomic_write_text

KIND = "mlward-data-snapshot"
VERSION = 1
MAX_TOKENS = 200_000
"""Tokens (or values) kept per column: those in at least two rows, most frequent first."""
MAX_SNAPSHOT_JSON = 256 << 20


@dataclass(frozen=True)
class Snapshot:
    label: str
    """What to call this version in reports."""
    path: Path
    rows_file: Path
    columns: dict[str, str]
    rows: int
    features: list[str]
    label_column: str | None
    key: str | None
    stats: dict[str, list[float | None]]
    tokens: dict[str, dict[str, int]]

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        """Read and check a snapshot (the rows file must be the one recorded)."""
        try:
            if path.stat().st_size > MAX_SNAPSHOT_JSON:
                raise DataError(f"{path} is larger than {MAX_SNAPSHOT_JSON} bytes")
            doc = json.loads(path.read_bytes())
            if doc.get("kind") != KIND or doc.get("version") != VERSION:
                raise DataError(f"{path} is not an mlward data snapshot (version {VERSION})")
            rows_file = path.with_name(str(doc["rows_file"]))
            if Path(doc["rows_file"]).name != doc["rows_file"]:
                raise DataError(f"{path}: rows_file must be a file name beside it")
            if _sha256(rows_file) != doc["rows_sha256"]:
                raise DataError(f"{rows_file} is not the rows file the snapshot recorded")
            return cls(str(path), path, rows_file, dict(doc["columns"]), int(doc["rows"]),
                       list(doc["features"]), doc["label"], doc["key"], dict(doc["stats"]),
                       {c: dict(t) for c, t in doc["tokens"].items()})
        except OSError as exc:
            raise DataError(f"cannot read the data snapshot {path}: {exc.strerror or exc}") \
                from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{path} is not a valid data snapshot ({exc})") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_snapshot(dataset: Dataset, base: Path, *, label: str | None, key: str | None,
                   memory_limit: str = "1GB") -> Path:
    """Write ``base.rows.parquet`` and ``base.snapshot.json``; returns the JSON's path."""
    con = connect(memory_limit)  # first: without the data extra it raises MissingExtra
    import duckdb

    try:
        con.execute(f"CREATE VIEW src AS SELECT * FROM {dataset.sql()}")
        columns = {n: t for n, t, *_ in con.execute("DESCRIBE src").fetchall()}
        for what, name in (("key", key), ("label", label)):
            if name is not None and name not in columns:
                raise DataError(f"{dataset.label} has no {what} column {name!r}")
        features = [c for c in columns if c not in (label, key)]
        fh = feature_hash(features)
        lab = f"CAST({ident(label)} AS VARCHAR)" if label else "NULL::VARCHAR"
        k = f"CAST({ident(key)} AS VARCHAR)" if key else "NULL::VARCHAR"
        rows_file = base.with_name(base.name + ".rows.parquet")
        con.execute(f"COPY (SELECT {fh} AS fh, {lab} AS lab, {k} AS k FROM src) TO "
                    f"{lit(str(rows_file))} (FORMAT parquet)")
        rows = int(con.execute("SELECT count(*) FROM src").fetchone()[0])
        stats: dict[str, list[Any]] = {}
        exprs = stats_exprs(features, columns)
        if exprs:
            values = con.execute(f"SELECT {', '.join(exprs)} FROM src").fetchone()
            stats = {c: list(values[3 * i:3 * i + 3]) for i, c in enumerate(features)}
        tokens = {}
        for c in features:
            expr = token_expr(c) if columns[c] == "VARCHAR" else f"CAST({ident(c)} AS VARCHAR)"
            tokens[c] = {str(t): int(n) for t, n in con.execute(
                f"SELECT tok, count(*) FROM (SELECT {expr} AS tok FROM src) WHERE tok <> '' "
                f"GROUP BY tok HAVING count(*) >= 2 ORDER BY 2 DESC LIMIT {MAX_TOKENS}"
            ).fetchall()}
    except duckdb.Error as exc:
        raise DataError(f"cannot snapshot {dataset.label}: {str(exc).splitlines()[0]}") \
            from None
    finally:
        con.close()
    out = base.with_name(base.name + ".snapshot.json")
    doc = {"kind": KIND, "version": VERSION, "rows_file": rows_file.name,
           "rows_sha256": _sha256(rows_file), "rows": rows, "columns": columns,
           "features": features, "label": label, "key": key, "stats": stats, "tokens": tokens}
    atomic_write_text(out, json.dumps(doc, separators=(",", ":")) + "\n", mode=0o644)
    return out

