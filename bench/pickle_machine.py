"""The pickle machine alone: CPU time of mlward's pickle scanner, this tree against a baseline.

``pickle_scan.py`` times whole tools as users run them; this script isolates the symbolic
opcode machine (sniff and scan, in one process, inputs in memory) so that a change to it can
be compared with an earlier commit in one session on the same machine:

* small:  the 2,000 small pickles of ``pickle_scan.py`` (protocols 0-5), each sniffed and scanned
* dicts:  ``pickle_scan.py``'s 13 MB pickle of 500,000 small dicts
* torch:  the ``data.pkl`` of a ``torch.save`` of 128 tensors (the pickle a checkpoint holds;
          its size does not depend on the tensor bytes), scanned 100 times

Each side runs in its own child process (``PYTHONPATH`` set to that tree's ``src``), rounds
alternate between them, and the best CPU time (``time.process_time``) of ``--repeat`` rounds
counts. The baseline is exported with ``git archive`` into a temporary folder.

    /work/venv/bin/python bench/pickle_machine.py --baseline main [--write-readme]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CASES = ("small", "dicts", "torch")
TORCH_ROUNDS = 100


def inputs(out: Path) -> dict[str, list[bytes]]:
    """The inputs in memory, generated on first use by ``pickle_scan.py``'s builders."""
    from pickle_scan import all_cases, torch_checkpoint

    cases = {c.name: c for c in all_cases(out)}
    for name in ("small", "dicts"):
        cases[name].ensure()
    small = [p.read_bytes() for p in sorted(cases["small"].path.iterdir())]
    pt = out / "machine-torch.pt"
    if not pt.exists():
        torch_checkpoint(pt, tensor_bytes=128 * 4096 * 4)
    with zipfile.ZipFile(pt) as z:
        data_pkl = next(z.read(n) for n in z.namelist() if n.endswith("/data.pkl"))
    return {"small": small, "dicts": [cases["dicts"].path.read_bytes()],
            "torch": [data_pkl] * TORCH_ROUNDS}


def child(out: Path) -> None:
    """Time each case once with whichever mlward is on ``sys.path``; print JSON."""
    import inspect

    from mlward._internal.scanners import pickle as scanner
    from mlward._internal.scanners.interface import Limits, ScanContext
    from mlward.findings import Location

    def sniff(blob: bytes) -> bool:
        """The scanner's sniff, as this tree's version of it is called."""
        if "protocol_header" in inspect.signature(scanner.looks_like_pickle).parameters:
            return scanner.looks_like_pickle(  # type: ignore[call-arg]
                io.BytesIO(blob), protocol_header=scanner.has_protocol_header(blob))
        return scanner.looks_like_pickle(io.BytesIO(blob), blob[:512])

    class Context(ScanContext):
        """Counts what the scanner reports; nothing else."""

        def __init__(self) -> None:
            self.limits = Limits()
            self.findings = 0

        def add(self, finding: object) -> None:  # type: ignore[override]
            self.findings += 1

        def skip(self, location: object, reason: str, *, inconclusive: bool) -> None:  # type: ignore[override]
            self.findings += 1

        def examined(self, location: object, format: str) -> None:  # type: ignore[override]
            pass

        def scan_child(self, source: object) -> None:  # type: ignore[override]
            raise NotImplementedError

        def charge(self, location: object, nbytes: int) -> bool:  # type: ignore[override]
            return True

        @property
        def depth(self) -> int:
            return 0

    data = inputs(out)
    times = {}
    for name in CASES:
        ctx = Context()
        started = time.process_time()
        for blob in data[name]:
            if sniff(blob):
                scanner.scan_pickle_stream(io.BytesIO(blob), Location("x"), ctx)
        times[name] = time.process_time() - started
        if ctx.findings:
            raise SystemExit(f"{name}: {ctx.findings} findings or skips on benign input")
    print(json.dumps(times))


def export(rev: str, into: Path) -> Path:
    """``src`` of commit ``rev``, extracted under ``into``."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def measure(src: Path, out: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{BENCH}"}
    done = subprocess.run([sys.executable, __file__, "--child", "--out", str(out)], env=env,
                          check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def render(best: dict[str, dict[str, float]], baseline: str, command: str) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs; CPU seconds, best of the rounds.",
        "", "```sh", command, "```", "",
        f"| input | {baseline} | this tree | change |", "|---|---:|---:|---:|",
    ]
    for name in CASES:
        old, new = best[baseline][name], best["this tree"][name]
        lines.append(f"| {name} | {old:.3f} | {new:.3f} | {(new / old - 1) * 100:+.1f}% |")
    old = sum(best[baseline].values())
    new = sum(best["this tree"].values())
    lines.append(f"| all | {old:.3f} | {new:.3f} | {(new / old - 1) * 100:+.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default="main", help="git revision to compare with")
    p.add_argument("--repeat", type=int, default=5, help="rounds (default: 5)")
    p.add_argument("--out", type=Path, default=BENCH / "out", help="inputs (bench/out)")
    p.add_argument("--write-readme", action="store_true",
                   help="replace this benchmark's section of bench/README.md")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.out)
        return 0
    sys.path.insert(0, str(BENCH))
    inputs(args.out)  # generate once, before anything is timed
    best: dict[str, dict[str, float]] = {args.baseline: {}, "this tree": {}}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {args.baseline: export(args.baseline, Path(tmp)), "this tree": ROOT / "src"}
        for _ in range(args.repeat):
            for label, src in trees.items():
                for name, seconds in measure(src, args.out).items():
                    best[label][name] = min(best[label].get(name, seconds), seconds)
    command = shlex.join(["/work/venv/bin/python", "bench/pickle_machine.py",
                          *(argv if argv is not None else sys.argv[1:])])
    section = render(best, args.baseline, command)
    if args.write_readme:
        from _bench import write_section

        write_section("pickle_machine", section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
