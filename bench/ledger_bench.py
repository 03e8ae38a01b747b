"""Audit ledger benchmark: append throughput, inclusion proofs and verification at 1M entries.

Side by side on the same rows: plain SQLite INSERTs into the same entries table (no tree: the
limit), mlward's ledger (entries + Merkle nodes, SQLite WAL), and pymerkle's SqliteTree.

    bench/.venv/bin/python bench/ledger_bench.py [--entries 1000000] [--write-readme]

Files go to bench/out/ledger/ and are removed at the end (--keep keeps them).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import shutil
import sqlite3
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from _bench import compile_mlward, write_section  # bench/ is the script folder, on sys.path

from mlward._internal.ledger.entry import GENESIS, Entry, Event
from mlward._internal.ledger.ledger import Ledger
from mlward._internal.ledger.merkle import leaf_hash, verify_inclusion
from mlward._internal.ledger.store import SQLiteStore

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "ledger"
ORIGIN = "bench.local/ledger"
PROOF = "inclusion proof at {:,} (ms: mean / p99)"


def make_event(i: int) -> Event:
    """A scan record like the ones `mlward scan` appends (about 450 bytes canonical)."""
    path = f"/srv/models/team{i % 17}/model-{i:07d}.pt"
    return Event(action="scan" if i % 3 else "manifest.verify", resource=path,
                 outcome="pass" if i % 11 else "fail", digests={"sha256": f"{i:064x}"},
                 details={"exit_code": 0 if i % 11 else 1, "examined": 1 + i % 5,
                          "findings": {"critical": 0, "high": int(i % 11 == 0), "medium": 0},
                          "inputs": [path]},
                 actor=f"user{i % 23}", host=f"gpu-node-{i % 7:02d}",
                 time=f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00.000000Z")


def rows_for(events: list[Event]) -> list[tuple[object, ...]]:
    """The exact rows the ledger stores, for the plain-INSERT baseline."""
    rows, prev = [], GENESIS
    for i, e in enumerate(events):
        body = Entry(i, prev, e).canonical()
        leaf = leaf_hash(body)
        prev = leaf.hex()
        rows.append((i, e.time, e.actor, e.host, e.action, e.resource, e.outcome, body, leaf))
    return rows


# --- plain SQLite: the same table, no tree -------------------------------------------------

def plain_db(path: Path) -> sqlite3.Connection:
    path.unlink(missing_ok=True)
    store = SQLiteStore(path, create=True)  # same schema, WAL, synchronous=NORMAL
    store.close()
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


INSERT = ("INSERT INTO ledger_entries (idx, time, actor, host, action, resource, outcome, body, "
          "leaf) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


class Clock:
    """Wall and CPU time of this process (CPU time is what a shared machine distorts least)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rate(self, count: int) -> str:
        return f"{count / self.wall:,.0f} ({count / self.cpu:,.0f})"


def plain_insert(conn: sqlite3.Connection, rows: list[tuple[object, ...]], batch: int) -> str:
    with Clock() as clock:
        for i in range(0, len(rows), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT, rows[i:i + batch])
            conn.execute("COMMIT")
    return clock.rate(len(rows))


def _plain_worker(path: str, rows: list[tuple[object, ...]]) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    for row in rows:
        conn.execute("BEGIN IMMEDIATE")
        (n,) = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM ledger_entries").fetchone()
        conn.execute(INSERT, (n, *row[1:]))
        conn.execute("COMMIT")
    conn.close()


def _numbers(cell: str) -> list[float]:
    """The figures in a cell such as ``14,609 (18,558)``."""
    return [float(x) for x in re.findall(r"[\d.]+", cell.replace(",", ""))]


def _target_check(results: dict[str, dict[str, str]], batch: int, size: int) -> str:
    """The ledger's targets, computed from the table."""
    column = f"append, 1 writer, batches of {batch} (/s)"
    ours, plain = (_numbers(results[t][column]) for t in ("mlward ledger", "plain SQLite INSERT"))
    wall, cpu = ours[0] / plain[0], ours[1] / plain[1]
    proof = _numbers(results["mlward ledger"][PROOF.format(size)])[0]
    verify = _numbers(results["mlward ledger"][f"full verify of {size:,} (s)"])[0]

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return (f"Target check: batched appends at {wall:.0%} of the plain-insert rate by "
            f"wall time ({cpu:.0%} by CPU time), target at least 50%: {met(wall >= 0.5)}; "
            f"inclusion proofs {proof:.2f} ms on average, target under 1 ms: {met(proof < 1)}; "
            f"verify of {size:,} entries {verify:.1f} s, target under 30 s: "
            f"{met(verify < 30)}.\n")


# --- mlward ----------------------------------------------------------------------------------

def open_ledger(path: Path, *, create: bool = False) -> Ledger:
    if create:
        path.unlink(missing_ok=True)
    return Ledger(SQLiteStore(path, create=create), ORIGIN)


def mlward_append(ledger: Ledger, events: list[Event], batch: int) -> str:
    with Clock() as clock:
        for i in range(0, len(events), batch):
            ledger.append(events[i:i + batch])
    return clock.rate(len(events))


def _mlward_worker(path: str, events: list[Event]) -> None:
    ledger = Ledger(SQLiteStore(Path(path)), ORIGIN)
    for e in events:
        ledger.append([e])
    ledger.close()


def four_processes(target: object, path: Path, chunks: list[list[object]]) -> float:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=target, args=(str(path), chunk)) for chunk in chunks]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    return sum(len(c) for c in chunks) / (time.perf_counter() - start)


# --- pymerkle --------------------------------------------------------------------------------

def pymerkle_tree(path: Path):  # type: ignore[no-untyped-def]
    from pymerkle import SqliteTree

    path.unlink(missing_ok=True)
    return SqliteTree(str(path), algorithm="sha256")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--unbatched", type=int, default=2000,
                        help="single-entry appends measured (one writer; split over 4 processes)")
    parser.add_argument("--proofs", type=int, default=1000)
    parser.add_argument("--pymerkle-proofs", type=int, default=20)
    parser.add_argument("--skip-pymerkle", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    compile_mlward()
    OUT.mkdir(parents=True, exist_ok=True)
    n, batch = args.entries, args.batch
    rng = random.Random(5)

    started = datetime.now(timezone.utc)
    print(f"building {n:,} events ...", flush=True)
    events = [make_event(i) for i in range(n)]
    rows = rows_for(events)
    results: dict[str, dict[str, str]] = {"plain SQLite INSERT": {}, "mlward ledger": {},
                                          "pymerkle SqliteTree": {}}

    def put(tool: str, column: str, value: str) -> None:
        results[tool][column] = value
        print(f"  {tool:22} {column:36} {value}", flush=True)

    # One writer, unbatched (one transaction per entry).
    k = args.unbatched
    conn = plain_db(OUT / "plain-small.db")
    put("plain SQLite INSERT", "append, 1 writer, unbatched (/s)", plain_insert(conn, rows[:k], 1))
    conn.close()
    led = open_ledger(OUT / "mlward-small.db", create=True)
    put("mlward ledger", "append, 1 writer, unbatched (/s)", mlward_append(led, events[:k], 1))
    led.close()
    if not args.skip_pymerkle:
        tree = pymerkle_tree(OUT / "pymerkle-small.db")
        with Clock() as clock:
            for row in rows[:k]:
                tree.append_entry(row[7])
        put("pymerkle SqliteTree", "append, 1 writer, unbatched (/s)", clock.rate(k))
        tree.close()

    # Four processes, unbatched, into one database.
    quarter = k // 4
    conn = plain_db(OUT / "plain-4p.db")
    conn.close()
    rate = four_processes(_plain_worker, OUT / "plain-4p.db",
                          [rows[i * quarter:(i + 1) * quarter] for i in range(4)])
    put("plain SQLite INSERT", "append, 4 processes, unbatched (/s)", f"{rate:,.0f}")
    open_ledger(OUT / "mlward-4p.db", create=True).close()
    rate = four_processes(_mlward_worker, OUT / "mlward-4p.db",
                          [events[i * quarter:(i + 1) * quarter] for i in range(4)])
    put("mlward ledger", "append, 4 processes, unbatched (/s)", f"{rate:,.0f}")
    check = open_ledger(OUT / "mlward-4p.db")
    assert check.size() == 4 * quarter and check.verify().ok
    check.close()
    put("pymerkle SqliteTree", "append, 4 processes, unbatched (/s)", "n/a (one process)")

    # One writer, batched: the full N entries.
    print(f"appending {n:,} entries in batches of {batch} ...", flush=True)
    conn = plain_db(OUT / "plain.db")
    put("plain SQLite INSERT", f"append, 1 writer, batches of {batch} (/s)",
        plain_insert(conn, rows, batch))
    conn.close()
    led = open_ledger(OUT / "mlward.db", create=True)
    put("mlward ledger", f"append, 1 writer, batches of {batch} (/s)",
        mlward_append(led, events, batch))
    size = led.size()
    samples = [rng.randrange(size) for _ in range(args.proofs)]
    root = led.root()
    times, cpu = [], 0.0
    for i in samples:
        with Clock() as clock:
            proof = led.inclusion_proof(i, size)
        times.append(clock.wall)
        cpu += clock.cpu
        assert verify_inclusion(led.entry(i).leaf_hash(), i, size, proof, root)
    put("mlward ledger", PROOF.format(size), f"{statistics.mean(times) * 1e3:.2f} / "
        f"{sorted(times)[int(len(times) * .99)] * 1e3:.2f} ({cpu / len(times) * 1e3:.2f})")
    print("verifying ...", flush=True)
    with Clock() as clock:
        result = led.verify()
    put("mlward ledger", f"full verify of {size:,} (s)", f"{clock.wall:.1f} ({clock.cpu:.1f})")
    assert result.ok
    led.close()
    put("plain SQLite INSERT", PROOF.format(size), "n/a")
    put("plain SQLite INSERT", f"full verify of {size:,} (s)", "n/a")

    if not args.skip_pymerkle:
        tree = pymerkle_tree(OUT / "pymerkle.db")
        bodies = [row[7] for row in rows]
        with Clock() as clock:
            for i in range(0, n, batch):
                tree.append_entries(bodies[i:i + batch])
        put("pymerkle SqliteTree", f"append, 1 writer, batches of {batch} (/s)", clock.rate(n))
        times, cpu = [], 0.0
        for i in samples[:args.pymerkle_proofs]:
            with Clock() as clock:
                tree.prove_inclusion(i + 1, n)  # pymerkle counts leaves from one
            times.append(clock.wall)
            cpu += clock.cpu
        put("pymerkle SqliteTree", PROOF.format(n),
            f"{statistics.mean(times) * 1e3:.0f} / {max(times) * 1e3:.0f} "
            f"({cpu / len(times) * 1e3:.0f}); first {times[0] * 1e3:.0f}")
        put("pymerkle SqliteTree", f"full verify of {n:,} (s)", "n/a (no such operation)")
        tree.close()

    columns = list(results["mlward ledger"])
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for tool, values in results.items():
        if values:
            lines.append(f"| {tool} | " + " | ".join(values.get(c, "") for c in columns) + " |")
    load = os.getloadavg()[0]
    command = " ".join(["bench/.venv/bin/python bench/ledger_bench.py", *(argv or sys.argv[1:])])
    section = (
        f"Measured {started:%Y-%m-%d %H:%M} UTC: `{command}`.\n\n"
        f"{n:,} entries of about {len(rows[0][7])} bytes, batches of {batch}, "
        f"{args.unbatched:,} unbatched appends; {os.cpu_count()} CPUs, load average "
        f"{load:.1f} at the end of the run (the machine is shared). Each cell: wall time, and "
        "in brackets the same from the process's CPU time (4 processes: wall only).\n\n"
        + "\n".join(lines) + "\n\n" + _target_check(results, batch, size))
    print("\n" + section)
    if args.write_readme:
        write_section("ledger_bench", section)
    if not args.keep:
        shutil.rmtree(OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
