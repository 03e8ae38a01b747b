"""Model-scanner benchmark: mlward beside picklescan, ModelScan, fickling and modelaudit.

Each tool runs as a subprocess, through its CLI the way a user runs it, on the same inputs,
generated here into ``bench/out/`` (and reused on later runs):

* small:   2,000 small pickles (protocols 0-5; dicts, lists, strings, numbers) in one folder
* torch:   ``torch.save`` of a state_dict of 128 float32 tensors, twice: about 200 MB and
           over 2 GB of tensor bytes (same names, same pickle size; only tensor bytes differ)
* dicts:   one pickle of 500,000 small dicts (about 13 MB)
* evil:    one pickle calling ``os.system`` (built from raw opcodes, never loaded): a tool
           that does not flag it is not looking, however fast it is

Wall time is measured here; peak RSS and CPU time come from GNU time launching the tool
(peak RSS of the largest process in the tool's tree). Each tool's exit code and verdict are
recorded beside its numbers.

Run it from the bench venv (``bash bench/setup.sh`` makes it)::

    bench/.venv/bin/python bench/pickle_scan.py [--write-readme]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import platform
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from _bench import compile_mlward, write_section  # bench/ is the script folder, on sys.path

BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
MiB = 1 << 20
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)

SMALL_FILES = 2000
TENSORS = 128
TORCH_SIZES = {"torch-200M": 200 * 10**6, "torch-2G": 2 * 2**30 + 64 * MiB}
DICTS = 500_000
# A pickle whose loading would run `echo` through os.system. Never loaded here.
EVIL = b"\x80\x02cos\nsystem\nX\x11\x00\x00\x00echo mlward-bench\x85R."


# --- inputs ---------------------------------------------------------------------------

def small_pickles(folder: Path) -> None:
    rng = random.Random(2026)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(SMALL_FILES):
        obj = {
            "name": f"layer{i}",
            "shape": [rng.randrange(1, 512) for _ in range(rng.randrange(1, 4))],
            "lr": rng.random(),
            "tags": ["a" * rng.randrange(0, 20), None, True],
            "nested": {"k": list(range(rng.randrange(0, 50)))},
        }
        data = pickle.dumps(obj if i % 3 else [obj, (i, str(i))], protocol=i % 6)
        (folder / f"{i:05d}.pkl").write_bytes(data)


def torch_checkpoint(path: Path, tensor_bytes: int) -> None:
    import torch

    per = tensor_bytes // TENSORS // 4  # float32 elements per tensor
    cols = 1024
    state = {
        f"layers.{i}.weight": torch.zeros((max(1, per // cols), cols), dtype=torch.float32)
        for i in range(TENSORS)
    }
    torch.save(state, path)


def dicts_pickle(path: Path) -> None:
    obj = [{"id": i, "v": i * 0.5, "s": "x"} for i in range(DICTS)]
    path.write_bytes(pickle.dumps(obj))


def evil_pickle(path: Path) -> None:
    path.write_bytes(EVIL)


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    build: Callable[[Path], None]
    what: str

    def ensure(self) -> None:
        """Generate the input unless a ``.done`` stamp says an earlier run finished it."""
        stamp = self.path.with_name(self.path.name + ".done")
        if not stamp.exists():
            print(f"generating {self.path.name} ...", file=sys.stderr, flush=True)
            self.build(self.path)
            stamp.touch()


def all_cases(out: Path) -> list[Case]:
    return [
        Case("small", out / "small", small_pickles,
             f"{SMALL_FILES:,} small pickles in one folder"),
        *(Case(name, out / f"{name}.pt",
               functools.partial(torch_checkpoint, tensor_bytes=size),
               f"torch.save, {TENSORS} float32 tensors") for name, size in TORCH_SIZES.items()),
        Case("dicts", out / "dicts.pkl", dicts_pickle, f"pickle of {DICTS:,} small dicts"),
        Case("evil", out / "evil.pkl", evil_pickle, "one pickle calling os.system"),
    ]


def input_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir())
    return path.stat().st_size


def warm_page_cache(path: Path) -> None:
    """Read every input once so all tools start from the same (cached) state."""
    for p in sorted(path.iterdir()) if path.is_dir() else [path]:
        with open(p, "rb") as f:
            while f.read(16 * MiB):
                pass


# --- tools ----------------------------------------------------------------------------

# fickling's CLI takes one pickle stream; a folder or a PyTorch zip goes through its library
# API (scan_file per file, scan_zip_archive for the zip), in one process.
FICKLING_API = """
import json, sys
from pathlib import Path
import fickling
from fickling.analysis import Severity
target = Path(sys.argv[1])
if target.is_dir():
    results = [fickling.scan_file(str(p), graceful=True) for p in sorted(target.iterdir())]
else:
    results = list(fickling.scan_zip_archive(str(target), graceful=True).values())
print(json.dumps({"files": len(results),
                  "unsafe": sum(r.severity > Severity.LIKELY_SAFE for r in results),
                  "errors": sum(bool(r.errors) for r in results)}))
"""


@dataclass(frozen=True)
class Tool:
    name: str
    argv: Callable[[Case, Path], list[str]]  # (case, report file) -> command line
    verdict: Callable[[str, Path], str]  # (output, report file) -> one-line summary
    folders_only: bool = False  # a variant that differs from its default only on folders


def is_mlward(tool: Tool) -> bool:
    """mlward or one of its variants (the ratios compare peers with mlward's default)."""
    return tool.name.startswith("mlward")


def _bin(name: str) -> str:
    return str(VENV_BIN / name)


def _mlward_verdict(out: str, report: Path) -> str:
    s = json.loads(report.read_text())["summary"]
    bad = {k: v for k, v in s["findings"].items() if v}
    flagged = ", ".join(f"{v} {k}" for k, v in bad.items()) or "clean"
    extra = f", {s['inconclusive']} inconclusive" if s["inconclusive"] else ""
    return f"{s['examined']} examined, {flagged}{extra}"


def _picklescan_verdict(out: str, report: Path) -> str:
    scanned = re.search(r"Scanned files: (\d+)", out)
    infected = re.search(r"Infected files: (\d+)", out)
    if not scanned or not infected:
        return "no summary"
    n = int(infected[1])
    return f"{scanned[1]} scanned, " + (f"{n} infected" if n else "clean")


def _modelscan_verdict(out: str, report: Path) -> str:
    d = json.loads(report.read_text())
    s = d["summary"]
    n = s["total_issues"]
    errors = f", {len(d['errors'])} errors" if d.get("errors") else ""
    return (f"{s['scanned']['total_scanned']} scanned, "
            + (f"{n} issues" if n else "clean") + errors)


def _fickling_cli_verdict(out: str, report: Path) -> str:
    if not report.exists():
        return "no report (could not parse)"
    return f"1 scanned, {json.loads(report.read_text())['severity']}"


def _fickling_api_verdict(out: str, report: Path) -> str:
    d = json.loads(out.strip().splitlines()[-1])
    errors = f", {d['errors']} errors" if d["errors"] else ""
    return f"{d['files']} scanned, " + (f"{d['unsafe']} unsafe" if d["unsafe"] else "clean") \
        + errors


def _modelaudit_verdict(out: str, report: Path) -> str:
    d = json.loads(report.read_text())
    serious = [i for i in d["issues"] if i.get("severity") in ("critical", "warning")]
    worst = "critical" if any(i["severity"] == "critical" for i in serious) else "warning"
    partial = "" if d.get("success", True) else ", coverage incomplete"
    return f"{d['files_scanned']} scanned, " + \
        (f"{len(serious)} issues ({worst})" if serious else "clean") + partial


def _fickling_argv(case: Case, report: Path) -> list[str]:
    if case.path.is_dir() or case.name.startswith("torch"):
        return [_bin("python"), "-c", FICKLING_API, str(case.path)]
    return [_bin("fickling"), "--check-safety", "--json-output", str(report), str(case.path)]


def _fickling_verdict(out: str, report: Path) -> str:
    if report.exists():
        return _fickling_cli_verdict(out, report)
    try:
        return _fickling_api_verdict(out, report)
    except (ValueError, IndexError, KeyError):
        return "no report (could not parse)"


TOOLS = [
    Tool("mlward",
         lambda c, r: [_bin("mlward"), "scan", "-q", "-f", "json", "-o", str(r), str(c.path)],
         _mlward_verdict),
    # mlward scans a folder's files in one worker process per core by default (fork); peak RSS
    # is per process, so the single-process run shows its memory (and CPU) without the pool.
    Tool("mlward-j1",
         lambda c, r: [_bin("mlward"), "scan", "-q", "-j", "1", "-f", "json", "-o", str(r),
                       str(c.path)],
         _mlward_verdict, folders_only=True),
    Tool("picklescan",
         lambda c, r: [_bin("picklescan"), "-p", str(c.path)],
         _picklescan_verdict),
    Tool("modelscan",
         lambda c, r: [_bin("modelscan"), "-p", str(c.path), "-r", "json", "-o", str(r)],
         _modelscan_verdict),
    Tool("fickling", _fickling_argv, _fickling_verdict),
    Tool("modelaudit",
         lambda c, r: [_bin("modelaudit"), "scan", "--no-cache", "-f", "json", "-o", str(r),
                       str(c.path)],
         _modelaudit_verdict),
]


# --- measuring ------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    case: str
    tool: str
    command: str
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    exit_code: int | None  # None: killed at the timeout
    verdict: str
    measured: str  # UTC, ISO 8601
    load: float  # the machine's 1-minute load average when the run started


REPEAT_UNDER = 5.0
"""Seconds: a run longer than this is measured once."""


def measure(tool: Tool, case: Case, out: Path, timeout: float) -> Run:
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    report = logs / f"{case.name}.{tool.name}.report.json"
    report.unlink(missing_ok=True)
    log = logs / f"{case.name}.{tool.name}.log"
    usage = logs / f"{case.name}.{tool.name}.time"
    argv = tool.argv(case, report)
    # GNU time launches the tool, so the peak RSS is the tool's own: a child forked straight
    # from this (larger) Python process would inherit its high-water mark.
    timed = [TIME, "-f", "%M %U %S", "-o", str(usage), *argv]
    env = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1"}  # modelaudit's PostHog events
    when, load = datetime.now(timezone.utc).isoformat(timespec="seconds"), os.getloadavg()[0]
    with open(log, "wb") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(timed, stdout=sink, stderr=subprocess.STDOUT, cwd=logs,
                                env=env, start_new_session=True)
        # A blocking wait, the timeout on a timer: ``wait(timeout)`` polls with sleeps of up
        # to 50 ms, which rounded every sub-second time up to the next step.
        timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        returncode = proc.wait()
        wall = time.perf_counter() - start
        timed_out = not timer.is_alive()
        timer.cancel()
        exit_code: int | None = None if timed_out else returncode
    text = log.read_text(errors="replace")
    try:
        verdict = "timeout" if exit_code is None else tool.verdict(text, report)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        verdict = f"no verdict ({type(exc).__name__})"
    fields = usage.read_text().splitlines()[-1].split() if exit_code is not None else []
    rss_kib, user, system = (float(f) for f in fields) if len(fields) == 3 else (0, 0, 0)
    return Run(case.name, tool.name, shlex.join(argv), round(wall, 3), round(user + system, 2),
               round(rss_kib / 1024, 1), exit_code, verdict, when, load)


# --- report ---------------------------------------------------------------------------

def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem / 2**20:.0f} GiB RAM, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def ratio(peer: float, ours: float) -> str:
    return f"{peer / ours:.1f}×" if ours > 0 else "–"


def render(cases: list[Case], runs: list[Run], command: str) -> str:
    first, last = min(r.measured for r in runs), max(r.measured for r in runs)
    when = f"{first[:10]} {first[11:16]}–{last[11:16]} UTC"
    loads = sorted(r.load for r in runs)
    versions = ", ".join(f"{t.name} {version(t.name)}" for t in TOOLS if not t.folders_only)
    lines = [
        f"Measured {when} on {machine()}; the 1-minute load average was "
        f"{loads[0]:.1f}–{loads[-1]:.1f} during the runs (other work shares the machine, so "
        "wall time is noisy; CPU time less so).",
        f"Tools: {versions}; torch {version('torch')} (generates the checkpoints).",
        "",
        "Command:",
        "",
        "```sh",
        command,
        "```",
        "",
        "Wall and CPU (user + system) time in seconds, memory is peak RSS; the `×` columns are "
        "the peer's figure divided by mlward's (above 1: mlward is faster / smaller), CPU "
        "time against mlward in one process (`mlward-j1`) where that row exists. Inputs "
        "are in the page cache for every tool.",
    ]
    by = {(r.case, r.tool): r for r in runs}
    for case in cases:
        size = input_bytes(case.path)
        shown = f"{size / MiB:,.1f} MiB" if size >= MiB // 10 else f"{size:,} bytes"
        lines += ["", f"#### {case.name}: {case.what} ({shown})", "",
                  "| tool | wall s | CPU s | peak MiB | exit | verdict "
                  "| wall × | CPU × | memory × |",
                  "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
        ours = by.get((case.name, "mlward"))
        one = by.get((case.name, "mlward-j1")) or ours
        for t in TOOLS:
            r = by.get((case.name, t.name))
            if r is None:
                continue
            rel = [ratio(getattr(r, k), getattr(base, k)) if base and not is_mlward(t) else ""
                   for k, base in (("wall_s", ours), ("cpu_s", one), ("peak_rss_mib", ours))]
            exit_code = "killed" if r.exit_code is None else str(r.exit_code)
            lines.append(f"| {t.name} | {r.wall_s:.2f} | {r.cpu_s:.2f} | {r.peak_rss_mib:,.0f} "
                         f"| {exit_code} | {r.verdict} | {' | '.join(rel)} |")
    small, big = list(TORCH_SIZES)
    rows = [(t.name, by[(small, t.name)], by[(big, t.name)]) for t in TOOLS
            if (small, t.name) in by and (big, t.name) in by]
    if rows:
        lines += ["", "#### Does time grow with tensor bytes? (2 GB / 200 MB)", "",
                  f"| tool | {small} CPU s | {big} CPU s | CPU growth | wall growth |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {n} | {a.cpu_s:.2f} | {b.cpu_s:.2f} | {ratio(b.cpu_s, a.cpu_s)} "
                  f"| {ratio(b.wall_s, a.wall_s)} |" for n, a, b in rows]
    lines += ["", *target_check(cases, by)]
    lines += ["", "Commands (`PATH` is the input, `REPORT` a file under `bench/out/logs/`; "
              "`FICKLING_API` is the script in `pickle_scan.py`):", ""]
    for t in TOOLS:
        shapes = dict.fromkeys(command_shape(r, c) for c in cases
                               if (r := by.get((c.name, t.name))))
        lines += [f"- {t.name}: " + "; ".join(f"`{shape}`" for shape in shapes)]
    return "\n".join(lines)


def command_shape(run: Run, case: Case) -> str:
    """The command with the input, the report file and fickling's script named, not spelled."""
    report = BENCH / "out" / "logs" / f"{case.name}.{run.tool}.report.json"
    shape = run.command.replace(shlex.quote(FICKLING_API), "FICKLING_API")
    shape = shape.replace(str(report), "REPORT").replace(str(case.path), "PATH")
    return shape.replace(str(BENCH.parent) + "/", "")


def target_check(cases: list[Case], by: dict[tuple[str, str], Run]) -> list[str]:
    """The target, case by case: faster than every peer, at most a quarter of their
    memory on dicts, and torch time flat in tensor bytes.

    Faster means both: less wall time as users run it (``mlward``, worker processes on a
    folder), and less CPU time doing the same work in one process as the peers do
    (``mlward-j1`` where it runs, so that parallelism neither helps nor is held against it).
    """
    out = ["Target check (computed from the tables above; CPU time of mlward in one process, "
           "`mlward-j1`, on folders):", ""]
    for case in (c for c in cases if c.name != "evil"):  # evil checks verdicts, not speed
        ours = by.get((case.name, "mlward"))
        one = by.get((case.name, "mlward-j1")) or ours
        peers = [r for t in TOOLS if not is_mlward(t) and (r := by.get((case.name, t.name)))]
        if ours is None or one is None or not peers:
            continue
        as_fast = [r.tool for r in peers if r.wall_s <= ours.wall_s or r.cpu_s <= one.cpu_s]
        light = [r.tool for r in peers if ours.peak_rss_mib * 4 > r.peak_rss_mib] \
            if case.name == "dicts" else []
        why = [f"not faster than {', '.join(as_fast)}"] if as_fast else []
        why += [f"more than a quarter of the memory of {', '.join(light)}"] if light else []
        out.append(f"- {case.name}: " + (f"NOT met ({'; '.join(why)})" if why else "met"))
    small, big = (by.get((name, "mlward")) for name in TORCH_SIZES)
    if small and big:
        # Tensor bytes grow 10.6×; reading them would show as several ×. Sub-second runs vary
        # by about ±0.15 s here, so a single run's ratio up to 1.5× still counts as flat.
        flat = big.cpu_s <= small.cpu_s * 1.5
        out.append(f"- torch time vs tensor bytes: {'met' if flat else 'NOT met'} (CPU "
                   f"{small.cpu_s:.2f} s for 200 MB, {big.cpu_s:.2f} s for 2 GB)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=BENCH / "out",
                   help="where inputs, logs and results go (default: bench/out)")
    p.add_argument("--tools", default=",".join(t.name for t in TOOLS),
                   help="comma-separated tools to run (default: all)")
    p.add_argument("--cases", default="small,torch-200M,torch-2G,dicts,evil",
                   help="comma-separated cases to run (default: all)")
    p.add_argument("--repeat", type=int, default=5,
                   help="runs per tool and input, the fastest counts; runs over "
                   f"{REPEAT_UNDER:.0f} s are not repeated (default: 5)")
    p.add_argument("--timeout", type=float, default=900,
                   help="seconds before a tool's run is killed (default: 900)")
    p.add_argument("--merge", action="store_true",
                   help="keep earlier results (bench/out/pickle_scan.json) for the tools and "
                   "cases not run now, e.g. to re-measure mlward alone")
    p.add_argument("--write-readme", action="store_true",
                   help="replace the results section of bench/README.md")
    args = p.parse_args(argv)
    compile_mlward()
    if not Path(TIME).is_file():
        p.error(f"{TIME} not found: install GNU time (Debian: apt-get install time)")

    args.out.mkdir(parents=True, exist_ok=True)
    wanted_tools = args.tools.split(",")
    wanted_cases = args.cases.split(",")
    cases = all_cases(args.out)
    chosen = [c for c in cases if c.name in wanted_cases]
    evil = cases[-1]
    for case in {*chosen, evil}:
        case.ensure()
    tools = [t for t in TOOLS if t.name in wanted_tools]
    # Warm-up, not measured: each tool's first run compiles bytecode and pages in libraries.
    for tool in (t for t in tools if not t.folders_only):
        measure(tool, evil, args.out, args.timeout)
    runs: list[Run] = []
    for case in chosen:
        warm_page_cache(case.path)
        todo = [t for t in tools if case.path.is_dir() or not t.folders_only]
        best: dict[str, Run] = {}
        # Rounds interleave the tools, so that a noisy moment on a shared machine hits them
        # alike; the fastest run of each tool counts. Runs over REPEAT_UNDER seconds are not
        # repeated: start-up noise is small against them.
        for round_ in range(args.repeat):
            for tool in todo:
                if round_ and best[tool.name].wall_s > REPEAT_UNDER:
                    continue
                run = measure(tool, case, args.out, args.timeout)
                if tool.name not in best or run.wall_s < best[tool.name].wall_s:
                    best[tool.name] = run
        for tool in todo:
            run = best[tool.name]
            print(f"{case.name:11} {tool.name:11} {run.wall_s:8.2f} s {run.peak_rss_mib:8.0f} "
                  f"MiB  exit {run.exit_code}  {run.verdict}", file=sys.stderr, flush=True)
            runs.append(run)
    results = args.out / "pickle_scan.json"
    if args.merge and results.exists():
        fresh = {(r.case, r.tool) for r in runs}
        runs += [r for r in (Run(**d) for d in json.loads(results.read_text()))
                 if (r.case, r.tool) not in fresh]
    results.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    cases = [c for c in cases if any(r.case == c.name for r in runs)]
    command = shlex.join(["bench/.venv/bin/python", "bench/pickle_scan.py",
                          *(argv if argv is not None else sys.argv[1:])])
    section = render(cases, runs, command)
    if args.write_readme:
        write_section("pickle_scan", section)
    else:
        print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
