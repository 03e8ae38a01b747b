"""Dashboard benchmark: an inventory of 50 projects, 10,000 findings and 1,000 models, served
by `mlward serve` (a real uvicorn process on 127.0.0.1).

1. Ingest: 50 scan reports (200 findings, 20 models each) into a fresh SQLite inventory, and
   one report of 10,000 findings on its own (parse, digest, rows: what `mlward scan` adds to
   a run and what `/api/v1/ingest` does per push).
2. First page load: the server is started, then the overview and the findings page are
   fetched cold, each with its stylesheet and script (what a browser downloads for them).
3. API: 300 requests over the JSON API (findings with filters and pages, assets, projects,
   documents), one at a time; p50, p95 and max.

    /work/venv/bin/python bench/serve_bench.py                 # print the results
    /work/venv/bin/python bench/serve_bench.py --write-readme  # and put them in README.md
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import measured_on, write_section

from mlward._internal.inventory import open_store
from mlward._internal.inventory.documents import report_document
from mlward.findings import (
    Fact,
    Finding,
    Location,
    Report,
    ReportBuilder,
    Severity,
    TargetKind,
)

PROJECTS, FINDINGS_EACH, MODELS_EACH = 50, 200, 20
RULES = ("MW101", "MW102", "MW201", "MW301", "MW401", "MW501")


def synthetic_report(name: str, findings: int, models: int, when: datetime) -> Report:
    rng = random.Random(name)
    b = ReportBuilder(TargetKind.FILES, started=when, version="bench", root=f"/ci/{name}",
                      inputs=[f"/ci/{name}"])
    for i in range(models):
        loc = Location(f"models/m{i}.pkl")
        b.examine(loc, "pickle")
        b.fact(Fact(loc, "model", {"format": "pickle", "framework": "sklearn",
                                   "parameters": rng.randrange(10**6)}))
    for i in range(findings):
        b.add(Finding(rng.choice(RULES), Severity(rng.randrange(5)),
                      Location(f"src/pkg{i % 40}/file{i}.py").at(line=i % 300 + 1),
                      f"finding {i} in {name}", evidence=f"evidence-{i}",
                      remediation="fix it"))
    return b.build(finished=when + timedelta(seconds=30))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    tmp = Path(tempfile.mkdtemp(prefix="mlward-serve-bench-"))
    db = str(tmp / "inventory.db")
    reports = [synthetic_report(f"project-{n:02d}", FINDINGS_EACH, MODELS_EACH,
                                now - timedelta(minutes=n)) for n in range(PROJECTS)]
    big = synthetic_report("big-report", 10_000, 0, now)
    with open_store(db) as store:
        t = time.perf_counter()
        for r in reports:
            store.ingest(report_document(r, "scan"))
        all_ingest = time.perf_counter() - t
        totals = (store.findings().total, store.assets().total, len(store.projects()))
    with open_store(str(tmp / "big.db")) as store:  # its own inventory: the served one
        t = time.perf_counter()  # holds the 50 projects alone
        store.ingest(report_document(big, "scan"), project="big-report")
        big_ingest = time.perf_counter() - t

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    server = subprocess.Popen([sys.executable, "-m", "mlward", "-q", "serve", "--inventory",
                               db, "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with socket.socket() as probe:
            while probe.connect_ex(("127.0.0.1", port)) != 0:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        with httpx.Client(base_url=base, timeout=60) as client:
            first = {}
            for path in ("/", "/findings"):
                t = time.perf_counter()
                r = client.get(path)
                r.raise_for_status()
                client.get("/static/style.css").raise_for_status()
                client.get("/static/live.js").raise_for_status()
                first[path] = time.perf_counter() - t
            rng = random.Random(7)
            calls = []
            for i in range(300):
                kind = i % 6
                if kind == 0:
                    url, params = "/api/v1/findings", {"page": rng.randrange(1, 100)}
                elif kind == 1:
                    url, params = "/api/v1/findings", {"severity": "high",
                                                       "project": f"project-{i % 50:02d}"}
                elif kind == 2:
                    url, params = "/api/v1/findings", {"rule": rng.choice(RULES),
                                                       "path": "pkg1"}
                elif kind == 3:
                    url, params = "/api/v1/assets", {"kind": "model", "q": "m1",
                                                     "page": rng.randrange(1, 5)}
                elif kind == 4:
                    url, params = "/api/v1/projects", {}
                else:
                    url, params = "/api/v1/documents", {"kind": "report"}
                t = time.perf_counter()
                client.get(url, params=params).raise_for_status()
                calls.append(time.perf_counter() - t)
    finally:
        server.terminate()
        server.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)

    ms = [c * 1000 for c in calls]
    lines = [
        f"{measured_on()}: `/work/venv/bin/python bench/serve_bench.py --write-readme` "
        "(SQLite inventory, `mlward serve` on 127.0.0.1, one client).",
        "",
        f"Inventory: {totals[2]} projects, {totals[0]:,} current findings, {totals[1]:,} "
        "assets (models).",
        "",
        "| measurement | result | target |",
        "|---|---|---|",
        f"| ingest of 50 reports (10,000 findings, 1,000 models) | {all_ingest:.2f} s | |",
        f"| ingest of one 10,000-finding report (into an empty inventory) | "
        f"{big_ingest:.2f} s | under 5 s |",
        f"| first load of the overview (HTML + CSS + JS, cold server) | "
        f"{first['/'] * 1000:.0f} ms | under 2 s |",
        f"| first load of the findings page | {first['/findings'] * 1000:.0f} ms | |",
        f"| API p50 over {len(ms)} requests | {statistics.median(ms):.1f} ms | |",
        f"| API p95 | {_pct(ms, 95):.1f} ms | under 100 ms |",
        f"| API max | {max(ms):.1f} ms | |",
    ]
    section = "\n".join(lines)
    print(section)
    if args.write_readme:
        write_section("serve_bench", "## Dashboard (`mlward serve`)\n\n" + section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
