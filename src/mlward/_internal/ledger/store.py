"""Where the ledger lives: one interface, SQLite (embedded, WAL) and PostgreSQL (team server).

Tables: ``ledger_entries`` (the canonical entry bytes and their RFC 9162 leaf hash, plus
copies of the fields forensic queries filter on), ``ledger_refs`` (the forensic index: the
file paths and digests each entry concerns, see :mod:`~mlward._internal.ledger.refs`),
``ledger_nodes`` (the hash of every complete
subtree of :data:`STORED_LEVEL` levels or more, filled on append), ``ledger_checkpoints``
(signed checkpoints) and ``ledger_meta`` (origin, keys, the tree size and the layout version).

Smaller subtrees are not stored: any of them is folded from at most 15 leaf hashes read from
the entries, so a proof still reads O(log n) rows, and an append writes one node row per 8
entries instead of two per entry (most of the write cost of a tree node by node).

Appends are serialised by the database: the index is read and assigned inside a transaction
that holds the write lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an exclusive table lock), so
concurrent appenders in several processes never lose, duplicate or fork an entry.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from mlward._internal.ledger.entry import GENESIS, Entry, Event
from mlward._internal.ledger.errors import LedgerError
from mlward._internal.ledger.merkle import MemoryTree, Node, append_nodes, frontier_nodes, leaf_hash
from mlward._internal.ledger.refs import Ref, refs_of

ENTRY_COLUMNS = ("time", "actor", "host", "action", "resource", "outcome")
STORED_LEVEL = 4
"""Subtrees of ``2**STORED_LEVEL`` entries and more are stored; smaller ones are recomputed."""
LAYOUT = "2"
"""Version of the table layout (1: every node stored, leaf hashes as level-0 nodes)."""
_CHUNK = 200  # nodes per lookup query
REFS_VERSION = "1"
"""Version of the forensic index (``ledger_refs``); a ledger without it is indexed on open."""
_REFS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ledger_refs (idx BIGINT NOT NULL, path TEXT, digest TEXT, "
    "role TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ledger_refs_path ON ledger_refs (path, role, idx)",
    # Partial indexes: rows without a digest, and entries other than audit snapshots, cost
    # an append nothing here.
    "CREATE INDEX IF NOT EXISTS ledger_refs_digest ON ledger_refs (digest, idx) "
    "WHERE digest IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS ledger_entries_snapshots ON ledger_entries (idx) "
    "WHERE action = 'audit.snapshot'",  # SNAPSHOT_ACTION
)
SNAPSHOT_ACTION = "audit.snapshot"
_INSERT_REF = "INSERT INTO ledger_refs (idx, path, digest, role) VALUES (?, ?, ?, ?)"


@dataclass(frozen=True)
class Filters:
    """Forensic filters: exact actor, action (or its dotted children), resource substring,
    and a time window ``[since, until)`` as ledger timestamps."""

    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    since: str | None = None
    until: str | None = None


class StoredEntry(NamedTuple):
    """A row as stored: its index, indexed columns, entry bytes and the stored leaf hash."""

    idx: int
    columns: tuple[str, ...]
    body: bytes
    leaf: bytes | None


class Store(ABC):
    """The storage interface; the SQL is shared, the dialects differ in connections and locks."""

    placeholder = "?"
    _blob = "BLOB"

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    @abstractmethod
    def _write(self) -> Any:
        """A context manager: a transaction holding the ledger's write lock; yields a cursor."""

    @abstractmethod
    def _read(self) -> Any:
        """A context manager: a transaction with one consistent snapshot; yields a cursor."""

    @abstractmethod
    def _stream(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        """Rows of a large query, fetched in chunks."""

    @abstractmethod
    def close(self) -> None: ...

    def _schema(self) -> list[str]:
        b = self._blob
        return [
            "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS ledger_entries ({self._index_column()}, "
            "time TEXT NOT NULL, actor TEXT NOT NULL, host TEXT NOT NULL, action TEXT NOT NULL, "
            f"resource TEXT NOT NULL, outcome TEXT NOT NULL, body {b} NOT NULL, "
            f"leaf {b} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS ledger_entries_time ON ledger_entries (time)",
            f"CREATE TABLE IF NOT EXISTS ledger_nodes (level INTEGER NOT NULL, "
            f"idx BIGINT NOT NULL, hash {b} NOT NULL, PRIMARY KEY (level, idx))"
            + self._nodes_suffix(),
            "CREATE TABLE IF NOT EXISTS ledger_checkpoints (size BIGINT NOT NULL, "
            "created TEXT NOT NULL, note TEXT NOT NULL)",
            *_REFS_SCHEMA,
        ]

    def _index_column(self) -> str:
        return "idx BIGINT PRIMARY KEY"

    def _nodes_suffix(self) -> str:
        return ""

    def create(self) -> None:
        with self._write() as cur:
            for statement in self._schema():
                cur.execute(statement)
            self._init_meta(cur)

    def _init_meta(self, cur: Any) -> None:
        """The layout version and the tree size of a new ledger (kept when it exists)."""
        for key, value in (("layout", LAYOUT), ("size", "0"), ("refs", REFS_VERSION)):
            cur.execute(self._sql("INSERT INTO ledger_meta (key, value) VALUES (?, ?) "
                                  "ON CONFLICT (key) DO NOTHING"), (key, value))

    def check_layout(self) -> None:
        """Refuse a ledger whose tables this version does not read; give a ledger made before
        the forensic index its index (once, from its entries)."""
        found = self.meta("layout")
        if found != LAYOUT:
            raise LedgerError(f"the ledger's tables are in layout {found or 1}, written by an "
                              f"earlier development version of mlward; this version reads "
                              f"layout {LAYOUT} (export the ledger with the version that wrote "
                              "it, or start a new one with `mlward init`)")
        if self.meta("refs") != REFS_VERSION:
            self._build_refs()

    def _build_refs(self) -> None:
        import json

        with self._write() as cur:  # under the write lock: one process builds it
            cur.execute("SELECT value FROM ledger_meta WHERE key = 'refs'")
            if cur.fetchone() is not None:
                return
            for statement in _REFS_SCHEMA:
                cur.execute(statement)
            rows: list[tuple[Any, ...]] = []
            for idx, body in self._stream(cur, "SELECT idx, body FROM ledger_entries "
                                          "ORDER BY idx"):
                try:
                    obj = json.loads(_as_bytes(body))
                except (ValueError, RecursionError):
                    continue  # an entry damaged outside mlward: `ledger verify` names it
                if isinstance(obj, dict) and isinstance(obj.get("digests"), dict) and \
                        isinstance(obj.get("details"), dict):
                    rows += [(int(idx), *ref) for ref in refs_of(
                        str(obj.get("resource", "")), obj["digests"], obj["details"])]
            cur.executemany(self._sql(_INSERT_REF), rows)
            cur.execute(self._sql("INSERT INTO ledger_meta (key, value) VALUES (?, ?)"),
                        ("refs", REFS_VERSION))

    # --- meta ---------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._read() as cur:
            cur.execute(self._sql("SELECT value FROM ledger_meta WHERE key = ?"), (key,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def set_meta_default(self, key: str, value: str) -> str:
        """Store ``value`` unless the key is already set; return what is stored."""
        with self._write() as cur:
            cur.execute(self._sql("SELECT value FROM ledger_meta WHERE key = ?"), (key,))
            row = cur.fetchone()
            if row is not None:
                return str(row[0])
            cur.execute(self._sql("INSERT INTO ledger_meta (key, value) VALUES (?, ?)"),
                        (key, value))
        return value

    # --- the tree -----------------------------------------------------------------------

    @staticmethod
    def _size(cur: Any) -> int:
        """The tree size, kept apart from the entries so that deleting entries shows."""
        cur.execute("SELECT value FROM ledger_meta WHERE key = 'size'")
        row = cur.fetchone()
        try:
            return int(row[0]) if row is not None else 0
        except ValueError:
            raise LedgerError(f"the ledger's recorded size {row[0]!r} is not a number") from None

    def size(self) -> int:
        with self._read() as cur:
            return self._size(cur)

    def _nodes(self, cur: Any, wanted: Iterable[Node]) -> dict[Node, bytes]:
        """The hashes of ``wanted`` subtrees that exist: stored ones read, small ones folded
        from the leaf hashes of their entries."""
        stored: list[Node] = []
        small: list[Node] = []
        for node in wanted:
            (stored if node[0] >= STORED_LEVEL else small).append(node)
        # OR of primary-key lookups: both databases answer each term from the index.
        out = {(int(level), int(idx)): _as_bytes(h) for level, idx, h in self._select_any(
            cur, "SELECT level, idx, hash FROM ledger_nodes", "(level = ? AND idx = ?)", stored)}
        spans = {node: (node[1] << node[0], (node[1] + 1) << node[0]) for node in small}
        leaves = {int(idx): _as_bytes(h) for idx, h in self._select_any(
            cur, "SELECT idx, leaf FROM ledger_entries", "(idx >= ? AND idx < ?)",
            list(spans.values())) if h is not None}
        for node, (start, end) in spans.items():
            hashes = [leaves[i] for i in range(start, end) if i in leaves]
            if len(hashes) == end - start:
                out[node] = MemoryTree(hashes).root()
        return out

    def _select_any(self, cur: Any, select: str, term: str,
                    keys: Sequence[tuple[int, int]]) -> list[Any]:
        """The rows of ``select`` matching any of ``keys``, each filling ``term``'s two
        placeholders, in queries of at most :data:`_CHUNK` terms."""
        rows: list[Any] = []
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            cur.execute(self._sql(f"{select} WHERE {' OR '.join([term] * len(chunk))}"),
                        [v for key in chunk for v in key])
            rows += cur.fetchall()
        return rows

    def nodes(self, wanted: Iterable[Node]) -> dict[Node, bytes]:
        with self._read() as cur:
            return self._nodes(cur, wanted)

    def append(self, events: Sequence[Event],
               refs: Sequence[Iterable[Ref]] = ()) -> list[Entry]:
        """Append ``events`` in order, in one transaction; return the entries they became.

        ``refs[i]`` are index rows for event ``i`` beyond those its own fields give (an audit
        snapshot's changed files): written in the same transaction, so an entry is never
        without its rows."""
        with self._write() as cur:
            size = self._size(cur)
            coords = frontier_nodes(size)
            last = [(0, size - 1)] if size else []
            got = self._nodes(cur, coords + last)
            if any(c not in got for c in coords + last):
                raise LedgerError("the stored Merkle tree is incomplete; run `mlward ledger "
                                  "verify`")
            frontier = [(c, got[c]) for c in coords]
            prev = got[last[0]].hex() if last else GENESIS
            entries: list[Entry] = []
            entry_rows: list[tuple[Any, ...]] = []
            node_rows: list[tuple[int, int, bytes]] = []
            ref_rows: list[tuple[Any, ...]] = []
            for index, event in enumerate(events, size):
                entry = Entry(index, prev, event)
                body = entry.canonical()
                own = refs_of(event.resource, event.digests, event.details)
                if index - size < len(refs):
                    own = list(dict.fromkeys([*own, *refs[index - size]]))
                ref_rows += [(index, *ref) for ref in own]
                leaf = leaf_hash(body)
                node_rows.extend((level, idx, h) for (level, idx), h
                                 in append_nodes(frontier, index, leaf) if level >= STORED_LEVEL)
                entry_rows.append((index, event.time, event.actor, event.host, event.action,
                                   event.resource, event.outcome, body, leaf))
                entries.append(entry)
                prev = leaf.hex()
            cur.executemany(self._sql(
                "INSERT INTO ledger_entries (idx, time, actor, host, action, resource, outcome, "
                "body, leaf) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"), entry_rows)
            cur.executemany(self._sql(
                "INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)"), node_rows)
            cur.executemany(self._sql(_INSERT_REF), ref_rows)
            cur.execute(self._sql("UPDATE ledger_meta SET value = ? WHERE key = 'size'"),
                        (str(size + len(events)),))
        return entries

    # --- entries ------------------------------------------------------------------------

    def entry(self, index: int) -> bytes | None:
        with self._read() as cur:
            cur.execute(self._sql("SELECT body FROM ledger_entries WHERE idx = ?"), (index,))
            row = cur.fetchone()
        return None if row is None else _as_bytes(row[0])

    def search(self, filters: Filters, limit: int | None = None) -> list[bytes]:
        where, params = [], []
        if filters.actor is not None:
            where.append("actor = ?")
            params.append(filters.actor)
        if filters.action is not None:
            where.append("(action = ? OR action LIKE ? ESCAPE '!')")
            params += [filters.action, _like_escape(filters.action) + ".%"]
        if filters.resource is not None:
            where.append("resource LIKE ? ESCAPE '!'")
            params.append("%" + _like_escape(filters.resource) + "%")
        if filters.since is not None:
            where.append("time >= ?")
            params.append(filters.since)
        if filters.until is not None:
            where.append("time < ?")
            params.append(filters.until)
        sql = "SELECT body FROM ledger_entries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY idx"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as cur:
            cur.execute(self._sql(sql), params)
            return [_as_bytes(row[0]) for row in cur.fetchall()]

    def snapshots(self) -> list[bytes]:
        """Every audit snapshot's entry, in order, from its own small index."""
        with self._read() as cur:
            # The action as a literal: a partial index serves only a query that names it.
            cur.execute(f"SELECT body FROM ledger_entries WHERE action = '{SNAPSHOT_ACTION}' "
                        "ORDER BY idx")
            return [_as_bytes(row[0]) for row in cur.fetchall()]

    def find_refs(self, paths: Sequence[str] = (), digests: Sequence[str] = (),
                  roots: Sequence[str] = ()) -> list[tuple[int, Ref]]:
        """The index rows naming any of ``paths`` or ``digests``, and the rows naming any of
        ``roots`` as a dataset root (role ``root``), as ``(entry index, row)`` in entry
        order. Each value is an indexed lookup: the cost follows the rows found, not the
        ledger's size."""
        queries = [("path IN ({})", list(dict.fromkeys(paths))),
                   ("digest IN ({})", list(dict.fromkeys(digests))),
                   ("role = 'root' AND path IN ({})", list(dict.fromkeys(roots)))]
        rows: list[Any] = []
        with self._read() as cur:
            for where, values in queries:
                for i in range(0, len(values), _CHUNK):
                    chunk = values[i:i + _CHUNK]
                    cur.execute(self._sql("SELECT idx, path, digest, role FROM ledger_refs "
                                          "WHERE " + where.format(", ".join("?" * len(chunk)))),
                                chunk)
                    rows += cur.fetchall()
        found = {(int(r[0]), Ref(r[1], r[2], str(r[3]))) for r in rows}
        return sorted(found, key=lambda item: (item[0], item[1].role, item[1].path or ""))

    def bodies(self, indexes: Sequence[int]) -> dict[int, bytes]:
        """The entry bytes of ``indexes`` (those that exist)."""
        out: dict[int, bytes] = {}
        wanted = sorted(set(indexes))
        with self._read() as cur:
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i:i + _CHUNK]
                cur.execute(self._sql(f"SELECT idx, body FROM ledger_entries WHERE idx IN "
                                      f"({', '.join('?' * len(chunk))})"), chunk)
                out.update((int(idx), _as_bytes(body)) for idx, body in cur.fetchall())
        return out

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A consistent view for verification and export."""
        with self._read() as cur:
            yield Snapshot(self, cur)

    # --- checkpoints --------------------------------------------------------------------

    def add_checkpoint(self, size: int, created: str, note: str) -> None:
        with self._write() as cur:
            cur.execute(self._sql("INSERT INTO ledger_checkpoints (size, created, note) "
                                  "VALUES (?, ?, ?)"), (size, created, note))


class Snapshot:
    """Reads inside one transaction, so a concurrent append cannot tear what is read."""

    def __init__(self, store: Store, cur: Any) -> None:
        self._store, self._cur = store, cur

    def size(self) -> int:
        return self._store._size(self._cur)

    def nodes(self, wanted: Iterable[Node]) -> dict[Node, bytes]:
        return self._store._nodes(self._cur, wanted)

    def entries(self) -> Iterator[StoredEntry]:
        cols = ", ".join(ENTRY_COLUMNS)
        sql = f"SELECT idx, {cols}, body, leaf FROM ledger_entries ORDER BY idx"
        for row in self._store._stream(self._cur, sql):
            yield StoredEntry(int(row[0]), tuple(row[1:7]), _as_bytes(row[7]),
                              None if row[8] is None else _as_bytes(row[8]))

    def stored_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        sql = "SELECT level, idx, hash FROM ledger_nodes ORDER BY level, idx"
        for level, idx, h in self._store._stream(self._cur, sql):
            yield int(level), int(idx), _as_bytes(h)

    def checkpoints(self) -> list[tuple[int, str, str]]:
        self._cur.execute("SELECT size, created, note FROM ledger_checkpoints ORDER BY size")
        return [(int(s), str(c), str(n)) for s, c, n in self._cur.fetchall()]


def _as_bytes(value: object) -> bytes:
    """A stored blob as bytes, whatever type an edit left in the column (SQLite keeps the type
    of the value written, so ``replace(body, ...)`` turns a blob into text)."""
    if type(value) is bytes:
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def _like_escape(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


class SQLiteStore(Store):
    """The embedded ledger: one SQLite file in WAL mode."""

    def __init__(self, path: Path, *, create: bool = False, read_only: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise LedgerError(f"no ledger database at {self.path} (run `mlward init`)")
        try:
            self._conn = (self._open_read_only() if read_only else
                          sqlite3.connect(self.path, isolation_level=None, timeout=60.0))
            if not read_only:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {exc}") from None
        if create:
            self.create()
        else:
            self.check_layout()

    def _open_read_only(self) -> sqlite3.Connection:
        """A connection that never writes, for verifying a ledger this user cannot write (an
        auditor's copy, a read-only mount). A WAL database needs its ``-shm`` file to be read
        in shared mode; where that cannot be created, the file is read as immutable (nothing
        else may write it meanwhile, which a read-only copy guarantees)."""
        uri = self.path.absolute().as_uri()
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=60.0)
        try:
            conn.execute("SELECT 1 FROM ledger_meta LIMIT 1").fetchall()
            return conn
        except sqlite3.OperationalError:
            conn.close()
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)

    def _index_column(self) -> str:
        return "idx INTEGER PRIMARY KEY"

    def _nodes_suffix(self) -> str:
        return " WITHOUT ROWID"

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Cursor]:
        cur = self._conn.cursor()
        try:
            cur.execute(begin)
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger {self.path}: {exc}") from None
        finally:
            cur.close()

    def _write(self) -> Any:
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self) -> Any:
        return self._transaction("BEGIN")

    def _stream(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        return iter(cur.execute(sql, params))

    def close(self) -> None:
        self._conn.close()


class PostgresStore(Store):
    """The team ledger on a PostgreSQL server (psycopg 3)."""

    placeholder = "%s"
    _blob = "BYTEA"

    def __init__(self, dsn: str, *, create: bool = False) -> None:
        try:
            import psycopg
        except ImportError:
            raise LedgerError("a PostgreSQL ledger needs psycopg (pip install "
                              "'mlward[postgres]')") from None
        self._psycopg = psycopg
        self.dsn = dsn
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise LedgerError(f"cannot connect to the ledger database: {exc}") from None
        if create:
            self.create()
        elif self.meta_table_missing():
            raise LedgerError("the PostgreSQL database holds no ledger (run `mlward init "
                              "--db ...`)")
        else:
            self.check_layout()

    def create(self) -> None:
        with self._transaction(lock=False) as cur:
            for statement in self._schema():
                cur.execute(statement)
            self._init_meta(cur)

    def meta_table_missing(self) -> bool:
        cur = self._conn.execute("SELECT to_regclass('ledger_meta') IS NULL")
        row = cur.fetchone()
        return bool(row and row[0])

    @contextmanager
    def _transaction(self, *, lock: bool) -> Iterator[Any]:
        psycopg = self._psycopg
        try:
            self._conn.isolation_level = (psycopg.IsolationLevel.READ_COMMITTED if lock
                                          else psycopg.IsolationLevel.REPEATABLE_READ)
            with self._conn.transaction(), self._conn.cursor() as cur:
                if lock:
                    # One appender at a time (the lock also waits for the others to commit);
                    # plain reads go on.
                    cur.execute("LOCK TABLE ledger_nodes IN EXCLUSIVE MODE")
                yield cur
        except psycopg.Error as exc:
            raise LedgerError(f"ledger database: {exc}") from None

    def _write(self) -> Any:
        return self._transaction(lock=True)

    def _read(self) -> Any:
        return self._transaction(lock=False)

    def _stream(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        with self._conn.cursor(name="mlward_stream") as named:
            named.itersize = 5000
            named.execute(sql, params)
            yield from named

    def close(self) -> None:
        self._conn.close()


def open_store(location: str | Path, *, create: bool = False,
               read_only: bool = False) -> Store:
    """A PostgreSQL store for ``postgresql://`` or ``postgres://`` URLs, else a SQLite file
    (opened without writing anything when ``read_only``)."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStore(text, create=create)
    return SQLiteStore(Path(text), create=create, read_only=read_only)
