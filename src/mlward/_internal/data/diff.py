"""``data diff``: what changed between two versions of a tabular dataset, and whether it
looks like poisoning.

DuckDB does the work, streaming from the files with a memory limit (it spills to a temporary
folder past it), so datasets larger than memory compare in bounded memory. Per row it keeps
two 64-bit hashes (of the feature columns, and of the label) and the label; the versions are
compared as multisets of rows, or joined on a key column when one is given:

- rows added, removed and changed; schema changes (rows are compared on the columns both
  versions share with the same type, so a dropped column does not make every row "changed");
- per-column statistics (mean, spread, null rate, distinct share) and the label distribution;
- poisoning indicators: rows whose features are identical but whose label changed; new rows
  that equal other rows once case, spacing and punctuation are ignored but carry another
  label; tokens or values rare in the old version that appear in many new rows with one label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mlward._internal.data.snapshot import Snapshot
from mlward._internal.data.sql import (
    NUMERIC,
    connect,
    feature_hash,
    ident,
    lit,
    stats_exprs,
    token_expr,
)
from mlward._internal.data.tables import DataError, Dataset

MAX_CANDIDATES = 10
MAX_TEXT_ROWS = 2_000_000
"""Added rows tokenised for the trigger search (a sample beyond)."""


@dataclass(frozen=True)
class Thresholds:
    """When a change becomes a finding (the ``[data]`` settings table)."""

    label_shift: float = 0.05
    """Total variation distance between the label distributions."""
    mean_shift: float = 0.25
    """Change of a column's mean, in old standard deviations."""
    null_shift: float = 0.05
    """Change of a column's null rate."""
    trigger_min_rows: int = 20
    """Added rows a token must appear in to be a trigger candidate."""
    trigger_label_share: float = 0.9
    """Share of those rows that must carry one label."""
    trigger_old_share: float = 0.0005
    """Largest share of old rows the token may appear in (it must be rare before)."""


@dataclass(frozen=True)
class DiffOptions:
    key: str | None = None
    label: str | None = None
    thresholds: Thresholds = Thresholds()
    memory_limit: str = "1GB"
    threads: int | None = None
    temp_dir: str | None = None


@dataclass(frozen=True)
class ColumnShift:
    column: str
    what: str
    old: float
    new: float


@dataclass(frozen=True)
class Trigger:
    tokens: tuple[str, ...]
    column: str
    rows: int
    label: str
    label_share: float
    old_rows: int


@dataclass
class DataDiff:
    old: str
    new: str
    old_rows: int = 0
    new_rows: int = 0
    compared_on: list[str] = field(default_factory=list)
    key: str | None = None
    label: str | None = None
    added: int = 0
    removed: int = 0
    changed: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    retyped_columns: list[tuple[str, str, str]] = field(default_factory=list)
    flipped: int = 0
    flips: dict[str, int] = field(default_factory=dict)
    """``old -> new`` label pairs and how many rows changed that way."""
    flip_keys: list[str] = field(default_factory=list)
    conflicts: int = 0
    conflict_rows: int = 0
    label_old: dict[str, int] = field(default_factory=dict)
    label_new: dict[str, int] = field(default_factory=dict)
    label_tvd: float = 0.0
    shifts: list[ColumnShift] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    duplicate_keys: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def content_changed(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def schema_changed(self) -> bool:
        return bool(self.dropped_columns or self.added_columns or self.retyped_columns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def headline(self) -> str:
        if not self.content_changed and not self.schema_changed:
            return (f"no content change: {self.new_rows} rows, the same as a multiset "
                    "(row order is not compared)")
        parts = [f"{self.old_rows} -> {self.new_rows} rows", f"+{self.added} added",
                 f"-{self.removed} removed", f"~{self.changed} changed"]
        if self.dropped_columns:
            parts.append(f"dropped columns {', '.join(self.dropped_columns)}")
        if self.added_columns:
            parts.append(f"new columns {', '.join(self.added_columns)}")
        if self.retyped_columns:
            parts.append("retyped " + ", ".join(f"{c} ({a} -> {b})"
                                                for c, a, b in self.retyped_columns))
        return "; ".join(parts)


def diff(old: Dataset | Snapshot, new: Dataset, options: DiffOptions | None = None) -> DataDiff:
    """Compare two versions (the old one may be a snapshot: see :mod:`.snapshot`); raises
    :class:`DataError` when either cannot be read."""
    options = options or DiffOptions()
    con = connect(options.memory_limit, options.threads, options.temp_dir)
    import duckdb  # connect() reported a missing extra
    try:
        return _Differ(con, old, new, options).run()
    except duckdb.Error as exc:
        raise DataError(f"cannot compare the datasets: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


class _Differ:
    def __init__(self, con: Any, old: Dataset | Snapshot, new: Dataset,
                 options: DiffOptions) -> None:
        self.con = con
        self.t = options.thresholds
        self.snapshot = old if isinstance(old, Snapshot) else None
        if isinstance(old, Dataset):
            con.execute(f"CREATE VIEW old_src AS SELECT * FROM {old.sql()}")
        else:  # the snapshot says which columns were label and key
            options = DiffOptions(old.key, old.label_column, self.t)
        self.options = options
        self.result = DataDiff(old.label, new.label, key=options.key, label=options.label)
        con.execute(f"CREATE VIEW new_src AS SELECT * FROM {new.sql()}")

    def q(self, sql: str) -> list[tuple[Any, ...]]:
        return list(self.con.execute(sql).fetchall())

    def run(self) -> DataDiff:
        r = self.result
        old_cols = (dict(self.snapshot.columns) if self.snapshot is not None
                    else {n: t for n, t, *_ in self.q("DESCRIBE old_src")})
        new_cols = {n: t for n, t, *_ in self.q("DESCRIBE new_src")}
        r.dropped_columns = [c for c in old_cols if c not in new_cols]
        r.added_columns = [c for c in new_cols if c not in old_cols]
        r.retyped_columns = [(c, old_cols[c], new_cols[c]) for c in old_cols
                             if c in new_cols and old_cols[c] != new_cols[c]]
        common = [c for c in old_cols if new_cols.get(c) == old_cols[c]]
        for what, name in (("key", self.options.key), ("label", self.options.label)):
            if name is not None and name not in common:
                where = ("neither version" if name not in old_cols and name not in new_cols
                         else "both versions with one type")
                raise DataError(f"the {what} column {name!r} is not in {where}")
        r.compared_on = common
        features = [c for c in common if c not in (self.options.key, self.options.label)]
        self.types = {c: old_cols[c] for c in common}
        self.features = features
        self.text = [c for c in features if self.types[c] == "VARCHAR"]
        if self.snapshot is not None and features != self.snapshot.features:
            r.notes.append("rows not compared: the snapshot hashed the columns "
                           f"{', '.join(self.snapshot.features)}, and not all of them are "
                           "still there with their type")
            r.old_rows = self.snapshot.rows
            r.new_rows = self.q("SELECT count(*) FROM new_src")[0][0]
            self._stats(common)
            return r
        self._rows(features)
        self._stats(common)
        if r.label is not None:
            self._labels()
        if r.added or r.changed:
            self._conflicts()
            self._triggers()
        return r

    # -- rows ------------------------------------------------------------------------------

    def _rows(self, features: Sequence[str]) -> None:
        r = self.result
        fh = feature_hash(features)
        lab = f"CAST({ident(r.label)} AS VARCHAR)" if r.label else "NULL::VARCHAR"
        key = f", CAST({ident(r.key)} AS VARCHAR) AS k" if r.key else ""
        for side in ("old", "new"):
            source = f"{side}_src"
            if side == "old" and self.snapshot is not None:
                source = f"read_parquet({lit(str(self.snapshot.rows_file))})"
                self.con.execute(f"CREATE TEMP TABLE old_rows AS SELECT fh, lab"
                                 f"{', k' if r.key else ''} FROM {source}")
                continue
            self.con.execute(f"CREATE TEMP TABLE {side}_rows AS SELECT {fh} AS fh, {lab} AS lab"
                             f"{key} FROM {source}")
        r.old_rows = self.q("SELECT count(*) FROM old_rows")[0][0]
        r.new_rows = self.q("SELECT count(*) FROM new_rows")[0][0]
        if r.key:
            self._rows_by_key()
        else:
            self._rows_by_content()

    def _rows_by_content(self) -> None:
        r = self.result
        self.con.execute("""
            CREATE TEMP TABLE delta AS
            WITH o AS (SELECT fh, lab, count(*) AS n FROM old_rows GROUP BY ALL),
                 n AS (SELECT fh, lab, count(*) AS n FROM new_rows GROUP BY ALL)
            SELECT coalesce(o.fh, n.fh) AS fh, coalesce(o.lab, n.lab) AS lab,
                   coalesce(o.n, 0) AS n_old, coalesce(n.n, 0) AS n_new
            FROM o FULL JOIN n ON o.fh = n.fh AND o.lab IS NOT DISTINCT FROM n.lab
            WHERE coalesce(o.n, 0) <> coalesce(n.n, 0)""")
        added, removed = self.q("SELECT coalesce(sum(greatest(n_new - n_old, 0)), 0), "
                                "coalesce(sum(greatest(n_old - n_new, 0)), 0) FROM delta")[0]
        flips = self.q("""
            SELECT a.lab_old, a.lab_new, sum(a.n)::BIGINT FROM (
                SELECT r.lab AS lab_old, a.lab AS lab_new, least(r.n_old - r.n_new,
                       a.n_new - a.n_old) AS n
                FROM delta r JOIN delta a ON r.fh = a.fh AND r.lab IS DISTINCT FROM a.lab
                WHERE r.n_old > r.n_new AND a.n_new > a.n_old) a
            GROUP BY ALL ORDER BY 3 DESC""")
        r.flips = {f"{a} -> {b}": int(n) for a, b, n in flips}
        r.flipped = sum(r.flips.values())
        r.changed = r.flipped
        r.added = int(added) - r.flipped
        r.removed = int(removed) - r.flipped
        # New rows whose features the old version did not have (the trigger search's input).
        self.con.execute("""CREATE TEMP TABLE added_fh AS SELECT DISTINCT fh FROM delta
                            WHERE n_new > n_old AND fh NOT IN (SELECT fh FROM old_rows)""")

    def _rows_by_key(self) -> None:
        r = self.result
        r.duplicate_keys = self.q("SELECT count(*) - count(DISTINCT k) FROM new_rows")[0][0]
        added, removed, changed, flipped = self.q("""
            SELECT count(*) FILTER (WHERE o.k IS NULL), count(*) FILTER (WHERE n.k IS NULL),
                   count(*) FILTER (WHERE o.k IS NOT NULL AND n.k IS NOT NULL AND
                                    (o.fh <> n.fh OR o.lab IS DISTINCT FROM n.lab)),
                   count(*) FILTER (WHERE o.fh = n.fh AND o.lab IS DISTINCT FROM n.lab)
            FROM old_rows o FULL JOIN new_rows n ON o.k = n.k""")[0]
        r.added, r.removed, r.changed, r.flipped = int(added), int(removed), int(changed), int(
            flipped)
        if r.flipped:
            r.flips = {f"{a} -> {b}": int(n) for a, b, n in self.q("""
                SELECT o.lab, n.lab, count(*) FROM old_rows o JOIN new_rows n ON o.k = n.k
                WHERE o.fh = n.fh AND o.lab IS DISTINCT FROM n.lab GROUP BY ALL
                ORDER BY 3 DESC""")}
            r.flip_keys = [k for (k,) in self.q("""
                SELECT n.k FROM old_rows o JOIN new_rows n ON o.k = n.k
                WHERE o.fh = n.fh AND o.lab IS DISTINCT FROM n.lab ORDER BY n.k LIMIT 10""")]
        self.con.execute("""CREATE TEMP TABLE added_fh AS SELECT DISTINCT n.fh FROM new_rows n
                            LEFT JOIN old_rows o ON o.k = n.k
                            WHERE (o.k IS NULL OR o.fh <> n.fh)
                            AND n.fh NOT IN (SELECT fh FROM old_rows)""")

    # -- statistics ------------------------------------------------------------------------

    def _stats(self, columns: Sequence[str]) -> None:
        r = self.result
        exprs = stats_exprs(columns, self.types)
        if not exprs:
            return
        new = self.q(f"SELECT {', '.join(exprs)} FROM new_src")[0]
        old: tuple[Any, ...]
        if self.snapshot is not None:
            old = tuple(v for c in columns for v in self.snapshot.stats.get(c, [None] * 3))
        else:
            old = self.q(f"SELECT {', '.join(exprs)} FROM old_src")[0]
        for n, c in enumerate(columns):
            if c in (r.key, r.label) or old[3 * n] is None:
                continue
            o_count, o_mean, o_std = old[3 * n:3 * n + 3]
            n_count, n_mean, n_std = new[3 * n:3 * n + 3]
            o_null = 1 - o_count / r.old_rows if r.old_rows else 0.0
            n_null = 1 - n_count / r.new_rows if r.new_rows else 0.0
            if abs(n_null - o_null) > self.t.null_shift:
                r.shifts.append(ColumnShift(c, "null rate", round(o_null, 4), round(n_null, 4)))
            if o_mean is None or n_mean is None:
                continue
            what = "mean" if self.types[c].startswith(NUMERIC) else "mean length"
            scale = o_std if o_std else max(abs(o_mean), 1.0)
            if abs(n_mean - o_mean) > self.t.mean_shift * scale:
                r.shifts.append(ColumnShift(c, what, _round(o_mean), _round(n_mean)))
            elif o_std and n_std is not None and not 0.5 <= n_std / o_std <= 2:
                r.shifts.append(ColumnShift(c, "spread (standard deviation)", _round(o_std),
                                            _round(n_std)))

    def _labels(self) -> None:
        r = self.result
        r.label_old = {str(k): int(v) for k, v in self.q(
            "SELECT lab, count(*) FROM old_rows GROUP BY ALL ORDER BY 2 DESC LIMIT 1000")}
        r.label_new = {str(k): int(v) for k, v in self.q(
            "SELECT lab, count(*) FROM new_rows GROUP BY ALL ORDER BY 2 DESC LIMIT 1000")}
        labels = set(r.label_old) | set(r.label_new)
        r.label_tvd = round(0.5 * sum(
            abs(r.label_old.get(k, 0) / max(r.old_rows, 1) - r.label_new.get(k, 0)
                / max(r.new_rows, 1)) for k in labels), 6)

    # -- poisoning indicators --------------------------------------------------------------

    def _normalized_hash(self) -> str:
        parts = [f"regexp_replace(lower({ident(c)}), '[^a-z0-9]+', '', 'g')" if c in self.text
                 else ident(c) for c in self.features]
        return f"hash({', '.join(parts)})" if parts else "hash(0)"

    def _fh(self) -> str:
        return feature_hash(self.features)

    def _conflicts(self) -> None:
        """New rows that equal other new rows once normalised, under another label."""
        r = self.result
        if r.label is None:
            return
        lab = f"CAST({ident(r.label)} AS VARCHAR)"
        conflicts, rows = self.q(f"""
            WITH n AS (SELECT {self._normalized_hash()} AS nh, {self._fh()} AS fh,
                              {lab} AS lab FROM new_src),
                 g AS (SELECT nh, count(*) AS rows FROM n GROUP BY nh
                       HAVING count(DISTINCT lab) > 1
                       AND bool_or(fh IN (SELECT fh FROM added_fh)))
            SELECT count(*), coalesce(sum(rows), 0) FROM g""")[0]
        r.conflicts, r.conflict_rows = int(conflicts), int(rows)

    def _triggers(self) -> None:
        """Tokens (text columns) or values (other columns) rare in the old version, common in
        the added rows, and nearly always with one label there."""
        r = self.result
        if r.label is None or not self.features:
            return
        lab = f"CAST({ident(r.label)} AS VARCHAR)"
        added = self.q("SELECT count(*) FROM added_fh")[0][0]
        if added < self.t.trigger_min_rows:
            return
        self.con.execute(f"""CREATE TEMP TABLE added_src AS SELECT *, {lab} AS __lab
                             FROM new_src WHERE {self._fh()} IN (SELECT fh FROM added_fh)
                             LIMIT {MAX_TEXT_ROWS}""")
        candidates: list[tuple[str, str, int, str, float]] = []
        for c in self.features:
            token = token_expr(c) if c in self.text else f"CAST({ident(c)} AS VARCHAR)"
            rows = self.q(f"""
                WITH t AS (SELECT {token} AS tok, __lab FROM added_src),
                     c AS (SELECT tok, __lab, count(*) AS n FROM t WHERE tok <> ''
                           GROUP BY ALL)
                SELECT tok, sum(n)::BIGINT AS total, arg_max(__lab, n), max(n) / sum(n)
                FROM c GROUP BY tok HAVING sum(n) >= {int(self.t.trigger_min_rows)}
                   AND max(n) / sum(n) >= {float(self.t.trigger_label_share)}
                ORDER BY total DESC LIMIT {MAX_CANDIDATES}""")
            candidates += [(c, str(tok), int(n), str(label), float(share))
                           for tok, n, label, share in rows]
        if not candidates:
            return
        old = self._old_counts([(c, tok) for c, tok, *_ in candidates])
        limit = max(self.t.trigger_old_share * r.old_rows, 1)
        found = [(cand, int(o)) for cand, o in zip(candidates, old, strict=True) if o <= limit]
        # Tokens of one phrase occur in the same rows: merge them, in the order they appear.
        groups: dict[tuple[str, int, str], list[tuple[str, float, int]]] = {}
        for (c, tok, n, label, share), o in found:
            groups.setdefault((c, n, label), []).append((tok, share, o))
        for (c, n, label), toks in groups.items():
            order = self._order(c, [t for t, _, _ in toks])
            r.triggers.append(Trigger(tuple(order), c, n, label,
                                      round(min(s for _, s, _ in toks), 4),
                                      max(o for _, _, o in toks)))

    def _old_counts(self, candidates: list[tuple[str, str]]) -> tuple[int, ...]:
        """Old rows holding each (column, token); a snapshot keeps tokens seen twice or more."""
        if self.snapshot is not None:
            return tuple(self.snapshot.tokens.get(c, {}).get(tok, 1) for c, tok in candidates)
        counts = []
        for c, tok in candidates:
            if c in self.text:
                counts.append(f"count(*) FILTER (WHERE contains(lower({ident(c)}), {lit(tok)}))")
            else:
                counts.append(f"count(*) FILTER (WHERE CAST({ident(c)} AS VARCHAR) = "
                              f"{lit(tok)})")
        return tuple(self.q(f"SELECT {', '.join(counts)} FROM old_src")[0])

    def _order(self, column: str, tokens: list[str]) -> list[str]:
        if len(tokens) == 1 or column not in self.text:
            return tokens
        cond = " AND ".join(f"contains(lower({ident(column)}), {lit(t)})" for t in tokens)
        row = self.q(f"SELECT lower({ident(column)}) FROM added_src WHERE {cond} LIMIT 1")
        if not row:
            return sorted(tokens)
        text = str(row[0][0])
        return sorted(tokens, key=lambda t: text.find(t))


def _round(x: float) -> float:
    return round(x, 6) if math.isfinite(x) else x


def thresholds_from(section: Mapping[str, Any], origin: str = "[data]") -> Thresholds:
    """The ``[data]`` settings' thresholds, checked (errors name the key)."""
    values: dict[str, Any] = {}
    defaults = Thresholds()
    for name in ("label_shift", "mean_shift", "null_shift", "trigger_min_rows",
                 "trigger_label_share", "trigger_old_share"):
        if name not in section:
            continue
        value = section[name]
        kind = type(getattr(defaults, name))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                kind is int and not isinstance(value, int)):
            raise DataError(f"{origin} {name} must be a non-negative {kind.__name__}")
        values[name] = kind(value)
    return Thresholds(**values)
