"""Manifest hashing benchmark: ``mlward manifest create`` beside ``sha256sum``, single-threaded
hashlib and model_signing's hashing, on one 4 GiB file and on 20,000 small files.

Each tool runs as a subprocess through GNU time (peak RSS, CPU time); wall time is measured
here. Inputs are generated into ``bench/out/hash/`` (reused on later runs) and read once before
each run so the page cache is warm. The machine's limit for reading and hashing at once is
measured in the same run: ``cores`` concurrent ``openssl dgst -sha256`` processes, each on its
own 1 GiB file (page cache warm); their aggregate rate is the limit the 4 GiB file is compared
with. On the small files the comparison is side by side with one ``hashlib`` thread and with
``sha256sum`` over the same list.

Run it from the bench venv (``bash bench/setup.sh`` makes it)::

    bench/.venv/bin/python bench/hash_bench.py [--write-readme] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from _bench import compile_mlward, write_section  # bench/ is the script folder, on sys.path

from mlward.executors import available_cores

BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
TIME = "/usr/bin/time"
MiB = 1 << 20
GiB = 1 << 30
BIG = 4 << 30
SMALL_FILES = 20_000
CORES = available_cores()

HASHLIB_ONE_THREAD = """
import hashlib, os, sys
buf = bytearray(1 << 20)
view = memoryview(buf)
for top in sys.argv[1:]:
    for folder, _, names in os.walk(top):
        for name in sorted(names):
            h = hashlib.sha256()
            with open(os.path.join(folder, name), "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    h.update(view[:n])
            print(h.hexdigest(), name)
"""

MODEL_SIGNING = """
import sys
from model_signing import hashing
config = hashing.Config()
if sys.argv[1] == "shards":
    config.use_shard_serialization(hashing_algorithm=sys.argv[2])
else:
    config.use_file_serialization(hashing_algorithm=sys.argv[2])
manifest = config.hash(sys.argv[3])
print(len(list(manifest.resource_descriptors())))
"""


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    files: int
    size: int


def make_inputs(out: Path) -> list[Case]:
    big_dir = out / "big"
    big = big_dir / "big.bin"
    if not (out / "big.done").exists():
        big_dir.mkdir(parents=True, exist_ok=True)
        block = random.Random(4).randbytes(64 * MiB)
        with open(big, "wb") as f:
            for n in range(BIG // len(block)):
                f.write(bytes([n % 256]) + block[1:])
        (out / "big.done").touch()
    small = out / "small"
    if not (out / "small.done").exists():
        rng = random.Random(20_000)
        for i in range(SMALL_FILES):
            folder = small / f"{i // 1000:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.bin").write_bytes(rng.randbytes(rng.randrange(512, 8192)))
        (out / "small.done").touch()
    return [Case("one 4 GiB file", big_dir, 1, big.stat().st_size),
            Case("20,000 small files", small, SMALL_FILES, folder_bytes(small))]


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def warm(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb", buffering=0) as f:
                while f.read(16 * MiB):
                    pass


def limit_files(out: Path) -> list[Path]:
    """``CORES`` files of 1 GiB each, for the read-and-hash limit (made once, then reused)."""
    folder = out / "limit"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(CORES):
        path = folder / f"part{n}.bin"
        if not path.exists() or path.stat().st_size != GiB:
            block = random.Random(100 + n).randbytes(64 * MiB)
            with open(path, "wb") as f:
                for _ in range(GiB // len(block)):
                    f.write(block)
        files.append(path)
    return files


def openssl_rate(files: list[Path], repeat: int = 3) -> float:
    """Aggregate bytes per second of one ``openssl dgst -sha256`` process per file, all at
    once, page cache warm; best of ``repeat``."""
    best = 0.0
    for _ in range(repeat):
        for f in files:
            warm_file(f)
        start = time.perf_counter()
        procs = [subprocess.Popen(["openssl", "dgst", "-sha256", str(f)],
                                  stdout=subprocess.DEVNULL) for f in files]
        for proc in procs:
            proc.wait()
        best = max(best, sum(f.stat().st_size for f in files) / (time.perf_counter() - start))
    return best


def warm_file(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(16 * MiB):
            pass


@dataclass(frozen=True)
class Tool:
    name: str
    argv: list[str]
    shell: bool = False


def tools(case: Case) -> list[Tool]:
    mlward = str(VENV_BIN / "mlward")
    py = sys.executable
    target = str(case.path)
    # Beside the data: a manifest records its roots relative to itself, inside the project.
    out = str(case.path.with_name(case.path.name + ".manifest.json"))
    return [
        Tool("mlward (sha256, sharded)",
             [mlward, "manifest", "create", target, "-o", out]),
        Tool("mlward (sha256, --whole-file)",
             [mlward, "manifest", "create", target, "-o", out, "--whole-file"]),
        Tool("mlward (blake3)",
             [mlward, "manifest", "create", target, "-o", out,
              "--hash", "blake3"]),
        Tool("sha256sum (coreutils)",
             ["sh", "-c", f"find {shlex.quote(target)} -type f -print0 | xargs -0 sha256sum"
              " > /dev/null"]),
        Tool("hashlib, one thread", [py, "-c", HASHLIB_ONE_THREAD, target]),
        Tool("model_signing (files, sha256)", [py, "-c", MODEL_SIGNING, "files", "sha256",
                                               target]),
        Tool("model_signing (shards, sha256)", [py, "-c", MODEL_SIGNING, "shards", "sha256",
                                                target]),
        Tool("model_signing (files, blake3)", [py, "-c", MODEL_SIGNING, "files", "blake3",
                                               target]),
    ]


@dataclass(frozen=True)
class Result:
    tool: str
    case: str
    seconds: float
    rss_mib: float
    cpu: float
    rc: int


def measure(tool: Tool, case: Case, repeat: int, warm_first: bool = True) -> Result:
    best: Result | None = None
    for _ in range(repeat):
        if warm_first:
            warm(case.path)  # others' work on the machine may have evicted it since
        with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
            start = time.perf_counter()
            proc = subprocess.run([TIME, "-f", "%M %U %S", "-o", stats.name, *tool.argv],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, check=False)
            seconds = time.perf_counter() - start
            rss_kib, user, system = stats.read().split()[-3:]
        if proc.returncode != 0:
            print(f"{tool.name} on {case.name}: exit {proc.returncode}: {proc.stderr[-500:]}",
                  file=sys.stderr)
        result = Result(tool.name, case.name, seconds, int(rss_kib) / 1024,
                        float(user) + float(system), proc.returncode)
        if best is None or result.seconds < best.seconds:
            best = result
    assert best is not None
    return best


SIDE_BY_SIDE = ("mlward (sha256, sharded)", "hashlib, one thread", "sha256sum (coreutils)")


def side_by_side(case: Case, rounds: int) -> list[list[Result]]:
    """The small-file comparison, paired: each round runs mlward, one ``hashlib`` thread and
    ``sha256sum`` back to back (page cache warmed first; the order turns from round to
    round), so the three see the same load; the ratios are taken round by round and their
    medians reported. Each round's results are in :data:`SIDE_BY_SIDE` order."""
    chosen = [t for t in tools(case) if t.name in SIDE_BY_SIDE]
    out = []
    for n in range(rounds):
        warm(case.path)
        turn = n % len(chosen)
        ran = {t.name: measure(t, case, 1, warm_first=False)
               for t in chosen[turn:] + chosen[:turn]}
        out.append([ran[name] for name in SIDE_BY_SIDE])
    return out


def render_side_by_side(rounds: list[list[Result]]) -> str:
    """Medians of wall and CPU seconds and of the round-by-round ratios."""
    mine = [r[0] for r in rounds]
    lines = [f"20,000 small files, side by side ({len(rounds)} rounds of the three commands "
             "back to back, medians):",
             "",
             "| command | wall s | CPU s | mlward / it, wall | mlward / it, CPU |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for k, name in enumerate(SIDE_BY_SIDE):
        runs = [r[k] for r in rounds]
        pairs = list(zip(mine, runs, strict=True))
        ratios = "- | -" if k == 0 else (
            f"{statistics.median(m.seconds / o.seconds for m, o in pairs):.2f} | "
            f"{statistics.median(m.cpu / o.cpu for m, o in pairs):.2f}")
        lines.append(f"| {name} | {statistics.median(r.seconds for r in runs):.3f} | "
                     f"{statistics.median(r.cpu for r in runs):.3f} | {ratios} |")
    return "\n".join(lines) + "\n"


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def render(cases: list[Case], results: list[Result], limit: float, core: float,
           command: str, load: str, startup: float) -> str:
    lines = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}, "
        f"{CORES} cores, page cache warm, best of the runs; load average before and after "
        f"the runs {load}. Command: `{command}`",
        "",
        f"Read-and-hash limit of this machine: {CORES} concurrent `openssl dgst -sha256 FILE` "
        f"processes, each on its own 1 GiB file = **{limit / 1e9:.2f} GB/s** together "
        f"(one alone: {core / 1e9:.2f} GB/s). Times are wall times of whole commands, "
        f"start-up included (`mlward --version`: {startup:.2f} s).",
        "",
    ]
    big, small = cases
    lines += ["| tool | 4 GiB file: s | GB/s | % of limit | 20,000 files: s | files/s | GB/s "
              "| peak RSS MiB (big / small) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    by = {(r.tool, r.case): r for r in results}
    for name in dict.fromkeys(r.tool for r in results):
        b, s = by[(name, big.name)], by[(name, small.name)]
        flag = "" if b.rc == 0 and s.rc == 0 else f" (exit {b.rc}/{s.rc})"
        lines.append(
            f"| {name}{flag} | {b.seconds:.2f} | {big.size / b.seconds / 1e9:.2f} | "
            f"{100 * big.size / b.seconds / limit:.0f}% | {s.seconds:.2f} | "
            f"{small.files / s.seconds:,.0f} | {small.size / s.seconds / 1e9:.3f} | "
            f"{b.rss_mib:.0f} / {s.rss_mib:.0f} |")
    lines += ["", f"Versions: mlward {version('mlward')}, model-signing "
              f"{version('model-signing')}, blake3 {version('blake3')}, Python "
              f"{platform.python_version()}, {openssl_version()}; small files total "
              f"{small.size / MiB:.0f} MiB."]
    return "\n".join(lines) + "\n"


def openssl_version() -> str:
    proc = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False)
    return " ".join(proc.stdout.split()[:2]) or "openssl"


def machine() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-readme", action="store_true",
                        help="put the table in bench/README.md")
    parser.add_argument("--repeat", type=int, default=2, help="runs per tool and input")
    parser.add_argument("--tools", help="comma-separated tool name prefixes to run")
    parser.add_argument("--rounds", type=int, default=11,
                        help="rounds of the paired small-file comparison (0: none)")
    args = parser.parse_args(argv)
    compile_mlward()
    load_before = os.getloadavg()[0]
    out = BENCH / "out" / "hash"
    out.mkdir(parents=True, exist_ok=True)
    cases = make_inputs(out)
    parts = limit_files(out)
    limit = openssl_rate(parts)
    core = openssl_rate(parts[:1])
    startup = min(_wall([str(VENV_BIN / "mlward"), "--version"]) for _ in range(3))
    results = []
    for case in cases:
        for tool in tools(case):
            if args.tools and not any(tool.name.startswith(t) for t in args.tools.split(",")):
                continue
            result = measure(tool, case, args.repeat)
            print(f"{case.name:>20}  {tool.name:<32} {result.seconds:8.2f} s "
                  f"{result.rss_mib:7.0f} MiB  exit {result.rc}", flush=True)
            results.append(result)
    paired = side_by_side(cases[1], args.rounds) if args.rounds else []
    command = shlex.join([sys.executable, "bench/hash_bench.py",
                          *(argv if argv is not None else sys.argv[1:])])
    if os.environ.get("PYTHONPATH"):  # mlward from a source tree rather than as installed
        command = f"PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])} {command}"
    load = f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"
    section = render(cases, results, limit, core, command, load, startup)
    if paired:
        section += "\n" + render_side_by_side(paired)
    print(section)
    if args.write_readme:
        write_section("hash_bench", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
