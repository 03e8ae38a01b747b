"""The DuckDB pieces ``diff`` and ``snapshot`` share: a bounded connection, quoting, and the
expressions both must compute the same way (statistics, tokens)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from mlward.errors import MissingExtra

NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
           "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(memory_limit: str, threads: int | None = None, temp_dir: str | None = None) -> Any:
    """An in-memory DuckDB that spills to ``temp_dir`` past ``memory_limit``."""
    try:
        import duckdb
    except ImportError:
        raise MissingExtra("duckdb", "data") from None
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {lit(memory_limit)}")
    con.execute(f"SET temp_directory = {lit(temp_dir or tempfile.gettempdir())}")
    con.execute("SET preserve_insertion_order = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def feature_hash(features: Sequence[str]) -> str:
    return f"hash({', '.join(ident(c) for c in features)})" if features else "hash(0)"


def token_expr(column: str) -> str:
    """The distinct tokens of a text column's value, one per output row."""
    return (f"unnest(list_distinct(string_split(regexp_replace(lower({ident(column)}), "
            f"'[^a-z0-9_]+', ' ', 'g'), ' ')))")


def stats_exprs(columns: Sequence[str], types: Mapping[str, str]) -> list[str]:
    """Three aggregates per column: non-null count, mean and standard deviation (of the value,
    or of a text's length; NULL for other types)."""
    exprs = []
    for c in columns:
        i, t = ident(c), types[c]
        exprs.append(f"count({i})")
        if t.startswith(NUMERIC):
            exprs += [f"avg({i}::DOUBLE)", f"stddev_pop({i}::DOUBLE)"]
        elif t == "VARCHAR":
            exprs += [f"avg(length({i}))::DOUBLE", f"stddev_pop(length({i}))::DOUBLE"]
        else:
            exprs += ["NULL::DOUBLE", "NULL::DOUBLE"]
    return exprs
