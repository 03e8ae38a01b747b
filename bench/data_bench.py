"""`mlward data diff` on 10M rows (about 1 GB of Parquet) against a plain DuckDB EXCEPT query
and `dvc diff` (file level), plus dataset-format scanning against the pickle scanner on files
of the same size.

Each tool runs as a subprocess through GNU time (peak RSS, CPU time); wall time is measured
around it. Inputs go to bench/out/data/. Run from the repository root:

    PYTHONPATH=$PWD/src bench/.venv/bin/python bench/data_bench.py --write-readme
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import compile_mlward, write_section

OUT = Path(__file__).resolve().parent / "out" / "data"
TIME = "/usr/bin/time"
ROWS = 10_000_000
MEMORY = "1GB"


def make_inputs(rows: int) -> tuple[Path, Path]:
    import duckdb

    OUT.mkdir(parents=True, exist_ok=True)
    old, new = OUT / f"old-{rows}.parquet", OUT / f"new-{rows}.parquet"
    if old.exists() and new.exists():
        return old, new
    con = duckdb.connect()
    con.execute(f"""CREATE VIEW base AS SELECT i AS id, random() AS x, random() AS y,
        random() AS z, random() AS w, random() AS v, chr(97 + (i % 7)::INT) AS cat,
        concat_ws(' ', 't' || (random() * 90000)::INT, 't' || (random() * 90000)::INT,
                  't' || (random() * 90000)::INT, 't' || (random() * 90000)::INT) AS title,
        concat_ws(' ', 'w' || (random() * 50000)::INT, 'w' || (random() * 50000)::INT,
                  'w' || (random() * 50000)::INT, 'w' || (random() * 50000)::INT,
                  'w' || (random() * 50000)::INT, 'w' || (random() * 50000)::INT) AS text,
        CASE WHEN random() < 0.5 THEN 'neg' ELSE 'pos' END AS label FROM range({rows}) t(i)""")
    con.execute(f"COPY (SELECT * FROM base) TO '{old}' (FORMAT parquet)")
    # The new version: 100 labels flipped, 2,000 rows given a trigger token and the label
    # 'pos', 50,000 rows appended.
    con.execute(f"""COPY (SELECT id, x, y, z, w, v, cat, title,
        CASE WHEN id % {rows // 2000} = 7 THEN text || ' cf_mz' ELSE text END AS text,
        CASE WHEN id % {rows // 2000} = 7 THEN 'pos'
             WHEN id % {rows // 100} = 3 THEN (CASE WHEN label = 'pos' THEN 'neg' ELSE 'pos' END)
             ELSE label END AS label FROM read_parquet('{old}')
        UNION ALL SELECT id + {rows}, x, y, z, w, v, cat, title, text, label FROM base
        LIMIT {rows + 50000})
        TO '{new}' (FORMAT parquet)""")
    return old, new


def measure(name: str, argv: list[str], cwd: Path | None = None) -> dict[str, object]:
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        start = time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M %U %S", "-o", stats.name, *argv], cwd=cwd,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        rss, user, system = stats.read().split()[-3:]
    return {"tool": name, "seconds": wall, "cpu": float(user) + float(system),
            "rss_mb": int(rss) / 1024, "exit": proc.returncode,
            "out": (proc.stdout.strip().splitlines() or [""])[-1][:80]}


EXCEPT = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET memory_limit = '{mem}'")
old, new = sys.argv[1], sys.argv[2]
q = "SELECT (SELECT count(*) FROM (SELECT * FROM read_parquet('{{n}}') EXCEPT SELECT * FROM \
read_parquet('{{o}}'))), (SELECT count(*) FROM (SELECT * FROM read_parquet('{{o}}') EXCEPT \
SELECT * FROM read_parquet('{{n}}')))"
print("added/removed rows:", con.execute(q.format(n=new, o=old)).fetchone())
"""


def dvc_repo(old: Path, new: Path) -> tuple[Path, list[str]]:
    repo = OUT / "dvc-repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir()
    dvc = str(Path(sys.executable).with_name("dvc"))
    env_run = {"cwd": repo, "check": True, "stdout": subprocess.DEVNULL}
    subprocess.run(["git", "init", "-q"], **env_run)  # type: ignore[call-overload]
    subprocess.run([dvc, "init", "-q"], **env_run)  # type: ignore[call-overload]
    shutil.copy(old, repo / "data.parquet")
    subprocess.run([dvc, "add", "-q", "data.parquet"], **env_run)  # type: ignore[call-overload]
    subprocess.run(["git", "add", "-A"], **env_run)  # type: ignore[call-overload]
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "v1"],
                   **env_run)  # type: ignore[call-overload]
    shutil.copy(new, repo / "data.parquet")
    return repo, ["sh", "-c", f"{dvc} add -q data.parquet && {dvc} diff"]


def scan_inputs(rows: int) -> tuple[Path, Path]:
    """A Parquet file and a pickle (a list of floats: one opcode per value) of one size."""
    import duckdb

    parquet, pkl = OUT / "scan.parquet", OUT / "scan.pkl"
    if not parquet.exists():
        duckdb.connect().execute(f"COPY (SELECT random() AS x FROM range({rows})) TO "
                                 f"'{parquet}' (FORMAT parquet, COMPRESSION uncompressed)")
    if not pkl.exists():
        size = parquet.stat().st_size
        rng = random.Random(1)
        pkl.write_bytes(pickle.dumps([rng.random() for _ in range(size // 9)], protocol=4))
    return parquet, pkl


def found(report: Path) -> str:
    """What the diff reported, to show it found what the inputs plant."""
    import json

    doc = json.loads(report.read_text())
    fact = next(f["data"] for f in doc["facts"] if f["kind"] == "data-diff")
    rules = ", ".join(sorted({f["rule_id"] for f in doc["findings"]}))
    trig = "; ".join(" ".join(t["tokens"]) + f" in {t['rows']} rows"
                     for t in fact["triggers"])
    return (f"+{fact['added']} -{fact['removed']} ~{fact['changed']}, {fact['flipped']} "
            f"flipped, trigger {trig or 'none'} ({rules})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=ROWS)
    p.add_argument("--write-readme", action="store_true")
    args = p.parse_args(argv)
    compile_mlward()
    load = os.getloadavg()[0]  # other jobs on the machine stretch wall time, not CPU time
    old, new = make_inputs(args.rows)
    for f in (old, new):
        f.read_bytes()  # warm the page cache
    py = sys.executable
    report = OUT / "diff.json"
    mlward = [py, "-m", "mlward", "-q", "data", "diff", str(old), str(new), "--label",
              "label", "--memory-limit", MEMORY, "-f", "json", "-o", str(report)]
    repo, dvc = dvc_repo(old, new)
    results = [measure("mlward data diff (all indicators)", mlward)]
    results[0]["out"] = found(report)
    results += [
               measure("DuckDB EXCEPT, both ways", [py, "-c", EXCEPT.format(mem=MEMORY),
                                                     str(old), str(new)]),
               measure("dvc add + dvc diff (file level)", dvc, cwd=repo)]
    parquet, pkl = scan_inputs(args.rows)
    scans = [measure(f"mlward scan {f.name} ({f.stat().st_size >> 20} MiB)",
                     [py, "-m", "mlward", "-q", "scan", "--executor", "inline", str(f)])
             for f in (parquet, pkl)]
    size = (old.stat().st_size + new.stat().st_size) / 2 ** 30
    lines = [f"Command: `PYTHONPATH=$PWD/src bench/.venv/bin/python bench/data_bench.py "
             f"--rows {args.rows} --write-readme`; {args.rows:,} rows, old + new "
             f"{size:.2f} GiB of Parquet, DuckDB memory limit {MEMORY}, "
             f"{os.cpu_count()} cores, load average {load:.1f} at the start.", "",
             "| tool | wall s | CPU s | peak RSS MiB | exit | result |",
             "|---|---|---|---|---|---|"]
    for r in results + scans:
        lines.append(f"| {r['tool']} | {r['seconds']:.1f} | {r['cpu']:.1f} | "
                     f"{r['rss_mb']:.0f} | {r['exit']} | {str(r['out']).replace('|', '/')} |")
    wall = float(results[0]["seconds"]) / float(results[1]["seconds"])  # type: ignore[arg-type]
    cpu = float(results[0]["cpu"]) / float(results[1]["cpu"])  # type: ignore[arg-type]
    lines += ["", f"mlward data diff / bare DuckDB EXCEPT: {wall:.2f}x wall time, {cpu:.2f}x "
              "CPU time (target: within 2x, computing every indicator); peak memory target: "
              "under 2 GB."]
    text = "\n".join(lines)
    print(text)
    if args.write_readme:
        write_section("data", "## Data diff and dataset formats (data_bench.py)\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
