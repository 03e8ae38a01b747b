"""A SQLite index of an OSV source, built once and reused while the source is unchanged.

The index lives in the cache folder (``$MLWARD_CACHE``, else ``$XDG_CACHE_HOME/mlward``, else
``~/.cache/mlward``), one file per source path. It records a fingerprint of the source (sizes
and modification times of its files); when the fingerprint differs the index is rebuilt into a
temporary file and renamed over the old one, so a reader never sees a half-built index.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from packaging.utils import canonicalize_name

from mlward._internal.vulndb.config import cache_dir
from mlward._internal.vulndb.coverage import Coverage
from mlward._internal.vulndb.load import LoadStats, load_advisories
from mlward._internal.vulndb.records import Advisory
from mlward.errors import UsageError
from mlward.settings import Settings

INDEX_FORMAT = "3"
META_KEYS = ("fingerprint", "records", "advisories", "bad", "ecosystems", "newest")
"""What an index must record; one missing any (written by another mlward) is rebuilt."""


def fingerprint(source: Path) -> str:
    """Changes whenever a file under ``source`` is added, removed or modified."""
    h = hashlib.sha256(f"mlward-osv-index {INDEX_FORMAT}\n".encode())

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                walk(e.path, f"{prefix}{e.name}/")
            elif e.is_file():
                st = e.stat()
                h.update(f"{prefix}{e.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())

    if source.is_dir():
        walk(str(source), "")
    else:
        st = source.stat()
        h.update(f"{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def index_path(source: Path, settings: Settings) -> Path:
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    return cache_dir(settings) / f"osv-index-{key}.sqlite"


class LocalIndex:
    """Advisories from a local OSV source, through its SQLite index."""

    def __init__(self, source: Path, db: Path, stats: LoadStats | None = None) -> None:
        self.source = source
        self.path = db
        self.stats = stats
        """How the index was built, when it was built by this call (None when reused)."""
        self._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)

    @property
    def description(self) -> str:
        return f"OSV data at {self.source}"

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def coverage(self) -> list[Coverage]:
        meta = self.meta()
        newest = meta.get("newest") or None
        return [Coverage(
            self.description, str(self.source), json.loads(meta.get("ecosystems") or "{}"),
            records=int(meta.get("records", 0)), unreadable=int(meta.get("bad", 0)),
            newest=None if newest is None else datetime.fromisoformat(newest).replace(
                tzinfo=timezone.utc))]

    def package_names(self) -> list[str]:
        """Every package some advisory names."""
        return [r[0] for r in self._conn.execute("SELECT DISTINCT name FROM package")]

    def advisories_for(self, names: Iterable[str]) -> dict[str, list[Advisory]]:
        """Advisories per normalised package name (names without any are left out)."""
        keys = sorted({canonicalize_name(n) for n in names})
        out: dict[str, list[Advisory]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT p.name, a.data FROM package p JOIN advisory a ON a.id = p.id "
                f"WHERE p.name IN ({marks})", chunk)
            for name, data in rows:
                out.setdefault(name, []).append(Advisory.from_json(data))
        return out

    def close(self) -> None:
        self._conn.close()


def _build(source: Path, target: Path, fp: str) -> LoadStats:
    stats = LoadStats()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        with conn:
            conn.executescript(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
                "CREATE TABLE advisory (id TEXT PRIMARY KEY, data TEXT NOT NULL);"
                "CREATE TABLE package (name TEXT NOT NULL, id TEXT NOT NULL);")
            for adv in load_advisories(source, stats):
                conn.execute("INSERT OR REPLACE INTO advisory VALUES (?, ?)",
                             (adv.id, adv.to_json()))
                conn.executemany("INSERT INTO package VALUES (?, ?)",
                                 [(p, adv.id) for p in {a.package for a in adv.affected}])
            conn.execute("CREATE INDEX package_name ON package (name)")
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("fingerprint", fp), ("source", str(source.resolve())),
                ("built", datetime.now(timezone.utc).isoformat()),
                ("records", str(stats.records)), ("advisories", str(stats.pypi)),
                ("bad", str(len(stats.bad))),
                ("ecosystems", json.dumps(dict(sorted(stats.ecosystems.items())))),
                ("newest", stats.newest or "")])
        conn.close()
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return stats


def open_index(source: Path, *, settings: Settings, rebuild: bool = False) -> LocalIndex:
    """The index of ``source``, built (or rebuilt) when it is missing or out of date."""
    source = Path(source)
    if not source.exists():
        raise UsageError(f"no OSV data at {source}")
    fp = fingerprint(source)
    db = index_path(source, settings)
    if not rebuild and db.exists():
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            finally:
                conn.close()
            if meta.get("fingerprint") == fp and all(k in meta for k in META_KEYS):
                return LocalIndex(source, db)
        except sqlite3.Error:
            pass  # a damaged index is rebuilt
    stats = _build(source, db, fp)
    return LocalIndex(source, db, stats)
