"""Audit benchmark: `mlward audit` against its checks run one by one, and `ledger history`
over a ledger of a million entries.

1. A generated project of 10,000 files (4,000 CSV data files, 3,000 Python modules, 1,480 JSON
   configs, 1,500 text files, a requirements file, 20 models of 8 MiB: numpy, safetensors and
   torch-zip), with a manifest of the data and lineage statements for two models. The checks
   one by one are the commands a user would run (`scan`, `deps`, `manifest verify`, `lineage
   verify` for each model with a lineage; `bom` and `gate` when installed), each as its own
   process; then `mlward audit`, which runs the same checks and records the snapshot (hashes
   every file, writes the document, appends the entry, signs a checkpoint).
2. A SQLite ledger of 1,000,000 entries (scans, watch events with digests, manifests, audit
   snapshots with their changed files, over 20,000 distinct files); one dataset file among them
   has 40 entries and was renamed once. `mlward ledger history` of it, as a user runs it (a new
   process, inclusion proofs checked), and the same call in-process.

    /work/venv/bin/python bench/audit_bench.py                 # print the results
    /work/venv/bin/python bench/audit_bench.py --write-readme  # and put them in README.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import compile_mlward, write_section  # noqa: E402

OUT = REPO / "bench" / "out" / "audit"
OSV = REPO / "tests" / "fixtures" / "osv"
MIB = 1 << 20


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "MLWARD_VULN_DB": str(OSV),
            "NO_COLOR": "1"}


def mlward(*argv: str, cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mlward", *argv, "--quiet"], cwd=cwd,
                          env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"mlward {' '.join(argv)} exited {proc.returncode}: "
                         f"{proc.stderr.decode()[-2000:]}")
    return elapsed, proc.returncode


def _npy(size: int) -> bytes:
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({size // 4},), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + \
        os.urandom(size)


def _safetensors(size: int) -> bytes:
    head = json.dumps({"w": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]}})
    head += " " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head.encode() + os.urandom(size)


def _torch(size: int) -> bytes:
    import io
    import zipfile

    from mlward._internal.demo import torch_checkpoint

    buf = io.BytesIO(torch_checkpoint())
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_STORED) as zf:
        zf.writestr("classifier/data/9", os.urandom(size))
    return buf.getvalue()


def build_project(root: Path) -> None:
    if (root / ".mlward").is_dir():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for i in range(4000):
        p = root / "data" / f"shard-{i // 500}" / f"part-{i:05d}.csv"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("id,text,label\n" + "".join(f"{j},review {i}-{j},{j % 2}\n"
                                                 for j in range(40 + i % 60)))
    for i in range(3000):
        p = root / "src" / f"pkg{i // 100}" / f"mod{i:04d}.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f'"""Module {i}."""\n\n\ndef f{i}(x: int) -> int:\n    return x + {i}\n'
                     * (1 + i % 8))
    for i in range(1480):
        p = root / "configs" / f"c{i // 200}" / f"conf{i:04d}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"name": f"run-{i}", "lr": 0.001 * (1 + i % 9),
                                 "layers": list(range(i % 12))}))
    for i in range(1499):
        p = root / "docs" / f"d{i // 300}" / f"note{i:04d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"note {i}\n" * (20 + i % 50))
    (root / "requirements.txt").write_text("numpy==1.26.4\nrequests==2.31.0\ntorch==2.1.0\n")
    models = root / "models"
    models.mkdir()
    for i in range(20):
        kind = ("npy", "safetensors", "pt")[0 if i < 10 else 1 if i < 15 else 2]
        data = _npy(8 * MIB) if kind == "npy" else _safetensors(8 * MIB) \
            if kind == "safetensors" else _torch(8 * MIB)
        (models / f"model-{i:02d}.{kind}").write_bytes(data)
    cwd = root
    for argv in (["init"], ["manifest", "create", "data", "-o", "data.manifest.json"],
                 ["lineage", "record", "--model", "models/model-00.npy", "--data",
                  "data.manifest.json", "--run-id", "r0"],
                 ["lineage", "record", "--model", "models/model-10.safetensors", "--data",
                  "data.manifest.json", "--run-id", "r1"]):
        mlward(*argv, cwd=cwd)
    assert sum(1 for p in root.rglob("*") if p.is_file() and ".mlward" not in p.parts) >= 10_000


def checks_one_by_one(root: Path) -> list[list[str]]:
    from mlward.cli.main import COMMANDS

    checks = [["scan", "."], ["deps", "."], ["manifest", "verify", "data.manifest.json"],
              ["lineage", "verify", "models/model-00.npy"],
              ["lineage", "verify", "models/model-10.safetensors"]]
    if "bom" in COMMANDS:
        checks.append(["bom", "."])
    if "gate" in COMMANDS:
        checks.append(["gate", "."])
    return checks


def bench_audit(runs: int) -> dict[str, object]:
    from mlward._internal.audit.record import track_files
    from mlward._internal.walk import Walk

    root = OUT / "project"
    build_project(root)
    checks = checks_one_by_one(root)
    for argv in [*checks, ["audit", "."]]:  # warm: bytecode, page cache
        mlward(*argv, cwd=root)
    separate, audits = [], []
    for _ in range(runs):
        separate.append(sum(mlward(*argv, cwd=root)[0] for argv in checks))
        audits.append(mlward("audit", ".", cwd=root)[0])
    walk = Walk(root)
    items = list(walk.files([root]))
    hashing = []
    for _ in range(runs):
        start = time.perf_counter()
        files, _ = track_files([i.path for i in items], [i.uri for i in items])
        hashing.append(time.perf_counter() - start)
    return {"files": len(items), "models": 20,
            "model_bytes": sum(f.size for f in files if f.kind == "model"),
            "checks": [" ".join(c) for c in checks], "separate": min(separate),
            "audit": min(audits), "hashing": min(hashing), "runs": runs}


def build_ledger(path: Path, size: int, target: str) -> None:
    """``size`` entries over 20,000 files; ``target`` gets 40 entries and one rename."""
    from mlward._internal.ledger import Event
    from mlward._internal.ledger.refs import Ref
    from mlward._internal.ledger.store import open_store

    if path.exists():
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    store = open_store(tmp, create=True)
    old = target.replace("train-v2", "train")
    batch, refs = [], []
    hot = set(range(0, size, size // 40))
    for i in range(size):
        f = f"/srv/proj/data/shard-{i % 40}/part-{i % 20000:05d}.csv"
        digest = f"{(i * 2654435761) % (1 << 64):064x}"
        extra: list[Ref] = []
        if i in hot:
            f = old if i < size // 2 else target
            action = "watch.modified"
        elif i % 50_000 == 0:
            action = "audit.snapshot"
            extra = [Ref(f"/srv/proj/data/shard-{j % 40}/part-{j:05d}.csv",
                         f"sha256:{j:064x}", "modified") for j in range(i % 997, 20000, 97)]
        else:
            action = ("scan", "watch.modified", "sign", "manifest.verify")[i % 4]
        details: dict[str, object] = {"where": {"cwd": "/srv/proj", "commit": f"{i:040x}"}}
        if i == min(h for h in hot if h >= size // 2):
            action, details["from"] = "watch.renamed", old
        batch.append(Event(action=action, resource=f, outcome="ok",
                           digests={"sha256": digest}, details=details,
                           actor=f"user{i % 23}", host=f"node-{i % 7}",
                           time=f"2026-11-{1 + i * 28 // size:02d}T00:00:00.000000Z"))
        refs.append(extra)
        if len(batch) == 10_000:
            store.append(batch, refs)
            batch, refs = [], []
    if batch:
        store.append(batch, refs)
    store.close()
    tmp.replace(path)
    Path(str(tmp) + "-wal").unlink(missing_ok=True)
    Path(str(tmp) + "-shm").unlink(missing_ok=True)


def bench_history(size: int, runs: int) -> dict[str, object]:
    from mlward._internal.audit.history import file_history
    from mlward._internal.ledger import open_ledger

    folder = OUT / f"ledger-{size}"
    target = "/srv/proj/data/train-v2.csv"
    db = folder / ".mlward" / "ledger.db"
    if not db.exists():
        folder.mkdir(parents=True, exist_ok=True)
        mlward("init", cwd=folder)
        db.unlink()
        start = time.perf_counter()
        build_ledger(db, size, target)
        print(f"built a {size:,}-entry ledger in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
    cli, lib = [], []
    mlward("ledger", "history", target, cwd=folder)  # warm
    for _ in range(runs):
        cli.append(mlward("ledger", "history", target, cwd=folder)[0])
        with open_ledger(None, folder) as ledger:
            start = time.perf_counter()
            h = file_history(ledger, [target])
            lib.append(time.perf_counter() - start)
    return {"size": size, "entries": len(h.items), "paths": len(h.paths), "cli": min(cli),
            "library": min(lib), "runs": runs, "db_mib": db.stat().st_size / MIB}


def render(a: dict[str, object] | None, h: dict[str, object] | None) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Measured {now}: `/work/venv/bin/python bench/audit_bench.py --write-readme` "
             f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; the "
             "machine is shared). Best of the runs; every command a new process."]
    if a is not None:
        sep, aud = float(a["separate"]), float(a["audit"])  # type: ignore[arg-type]
        hashing = float(a["hashing"])  # type: ignore[arg-type]
        lines += ["", f"**Audit**: {a['files']:,} files, {a['models']} models "
                  f"({int(a['model_bytes']) // MIB} MiB of model files), {a['runs']} runs.", "",  # type: ignore[call-overload]
                  "| | wall (s) |", "|---|---|",
                  f"| checks one by one ({'; '.join(f'`{c}`' for c in a['checks'])}) "  # type: ignore[attr-defined]
                  f"| {sep:.2f} |",
                  f"| `mlward audit .` (the same checks + the snapshot) | {aud:.2f} |",
                  f"| the snapshot's hashing alone (in-process, every tracked file) "
                  f"| {hashing:.2f} |", "",
                  f"Target check: the audit took {aud / sep:.0%} of the checks one by one "
                  f"(target: no longer, {'met' if aud <= sep else 'NOT met'}); the snapshot's "
                  f"own work (hashing {a['files']:,} files) is {hashing / sep:.1%} of the "
                  "checks' time (target under 10%: "
                  f"{'met' if hashing < 0.1 * sep else 'NOT met'})."]
    if h is not None:
        cli, lib = float(h["cli"]), float(h["library"])  # type: ignore[arg-type]
        lines += ["", f"**History**: a SQLite ledger of {int(h['size']):,} entries "  # type: ignore[call-overload]
                  f"({float(h['db_mib']):.0f} MiB); the file has {h['entries']} entries "  # type: ignore[arg-type]
                  f"under {h['paths']} paths (one rename), each with its inclusion proof "
                  "checked.", "", "| | wall (s) |", "|---|---|",
                  f"| `mlward ledger history PATH` (a new process) | {cli:.3f} |",
                  f"| `file_history()` in-process | {lib:.3f} |", "",
                  f"Target check: under 1 s over {int(h['size']):,} entries: "  # type: ignore[call-overload]
                  f"{'met' if cli < 1 else 'NOT met'}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--part", choices=("audit", "history", "both"), default="both")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    compile_mlward()
    a = bench_audit(args.runs) if args.part in ("audit", "both") else None
    h = bench_history(args.size, max(args.runs, 5)) if args.part in ("history", "both") \
        else None
    text = render(a, h)
    print(text)
    if args.write_readme:
        write_section("audit_bench", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
