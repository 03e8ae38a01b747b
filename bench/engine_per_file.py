"""The scan engine's cost per file, in one process: mlward as it is against mlward before
core v2, on folders of tiny files, with no worker, start-up or report in the figure.

``core_bench.py`` times whole command lines; on thousands of tiny files what is left after
start-up is the engine's own work per file (reading the head, asking every scanner whether
the file is its format, scanning it). This script times only that: each version's engine
over every file of a folder, in a fresh interpreter per round, after a first pass over the
same files (a file that makes a scanner import a library would otherwise charge that import
to the files), and reports microseconds per file. Inputs (generated, seeded): 2,000 tiny
pickles (protocols 0 to 5) and 2,000 files of 40 random bytes that no scanner claims.

    bench/.venv/bin/python bench/engine_per_file.py --rounds 5 --write-readme
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import statistics
import subprocess
import sys
from pathlib import Path

from _bench import compile_mlward, measured_on, write_section
from core_bench import checkout

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "engine"
SRC = BENCH.parent / "src"

AFTER = """
import sys, time
from pathlib import Path
from mlward._internal.engine import scan_unit
from mlward._internal.walk import Walk
from mlward.settings import Settings
settings, root = Settings(), Path(sys.argv[1])
items = list(Walk.for_settings(root, settings).files([root], on_dir=lambda p, u: None))
for item in items:  # a first pass: whatever a file makes the scanners import, loaded
    scan_unit(settings, item)
start = time.perf_counter()
for item in items:
    scan_unit(settings, item)
print((time.perf_counter() - start) / len(items) * 1e6)
"""

BEFORE = """
import sys, time
from pathlib import Path
from mlward.scan import _Engine
from mlward.scanners.interface import Limits
root = Path(sys.argv[1])
files = list(_Engine(Limits()).walk([root]))
for path, display in files:  # a first pass: whatever a file makes the scanners import
    _Engine(Limits()).scan_file(path, display)
engine = _Engine(Limits())
start = time.perf_counter()
for path, display in files:
    engine.scan_file(path, display)
print((time.perf_counter() - start) / len(files) * 1e6)
"""


def inputs(n: int) -> dict[str, Path]:
    """The two folders, written once."""
    folders = {"tiny pickles": OUT / "pickles", "40 random bytes": OUT / "junk"}
    rng = random.Random(1)
    for label, folder in folders.items():
        if folder.is_dir() and len(os.listdir(folder)) == n:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            data = (pickle.dumps({"i": i, "name": f"row{i}"}, protocol=i % 6)
                    if label == "tiny pickles" else rng.randbytes(40))
            (folder / f"f{i:05}.bin").write_bytes(data)
    return folders


def per_file(code: str, path: str, folder: Path) -> float:
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": path}, check=True)
    return float(done.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="a6426ef", help="the commit to compare with")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    compile_mlward()
    before_src = checkout(args.before)
    rows = []
    for label, folder in inputs(args.files).items():
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.rounds):  # alternating, so that a noisy moment hits both
            times["before"].append(per_file(BEFORE, str(before_src), folder))
            times["after"].append(per_file(AFTER, str(SRC), folder))
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        rows.append(f"| {args.files:,} {label} | {b:.0f} | {a:.0f} | {a / b:.2f} |")
        print(rows[-1], flush=True)
    section = "\n".join([
        f"{measured_on()}. Before: `{args.before}`, after: this tree; {args.rounds} "
        "alternating rounds, medians, microseconds per file in one process.",
        "",
        "Command: `bench/.venv/bin/python bench/engine_per_file.py --rounds "
        f"{args.rounds} --write-readme`",
        "",
        "| input | before (us/file) | after (us/file) | after / before |",
        "|---|---:|---:|---:|",
        *rows,
    ])
    if args.write_readme:
        write_section("engine_per_file", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
