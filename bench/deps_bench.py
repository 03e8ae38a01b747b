"""Dependency vulnerability matching: mlward (offline, OSV data indexed locally) beside
pip-audit (`--disable-pip --no-deps`, which asks a web service for every package).

    bench/.venv/bin/python bench/deps_bench.py [--packages 500] [--write-readme]

Workload: a requirements file of N pinned packages drawn from the shared OSV set
(../shared/osv: the PyPA snapshot and the GitHub advisories), half pinned at a version an
advisory lists as affected, half at the highest fixed version an advisory names. Measured:

- mlward index build: `mlward vulndb index --rebuild ../shared/osv` (cold, every record parsed);
- mlward repeat scan: `mlward deps --vuln-db ../shared/osv` on the requirements (index reused),
  and the matching alone in-process (no interpreter start-up or imports);
- pip-audit with its default service (PyPI's JSON API, which answers 404 from this machine),
  with `-s osv` (api.osv.dev, not reachable from this machine), and with no network at all
  (`unshare -n`), to record what it reports when it cannot check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _bench import compile_mlward, write_section  # bench/ is the script folder, on sys.path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OSV = REPO.parent / "shared" / "osv"
OUT = BENCH / "out" / "deps"
VENV_BIN = Path(sys.executable).parent


def workload(n: int) -> Path:
    """A requirements file of ``n`` pinned packages from the shared OSV data."""
    from mlward._internal.vulndb.load import load_advisories
    from mlward._internal.vulndb.match import parse_version

    listed: dict[str, str] = {}
    fixed: dict[str, list[str]] = {}
    for adv in load_advisories(OSV):
        for a in adv.affected:
            valid = [v for v in a.versions if parse_version(v)]
            if valid and a.package not in listed:
                listed[a.package] = valid[-1]
            fixed.setdefault(a.package, []).extend(
                v for events in a.ranges for kind, v in events
                if kind == "fixed" and parse_version(v))
    highest = {name: max(vs, key=parse_version) for name, vs in fixed.items() if vs}
    names = sorted(set(listed) | set(highest))[:n]
    lines = []
    for i, name in enumerate(names):
        version = (listed.get(name) if i % 2 == 0 else None) or highest.get(name) \
            or listed[name]
        lines.append(f"{name}=={version}")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"requirements-{n}.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``cmd`` under GNU time: wall seconds, peak RSS (MB), exit code, stdout."""
    stats = OUT / "time.txt"
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(stats), *cmd],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=3600)
    wall = time.perf_counter() - start
    rss_kb, user, system = stats.read_text().split()[-3:]
    return {"wall": wall, "rss_mb": int(rss_kb) / 1024, "cpu": float(user) + float(system),
            "code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def mlward_matching_only(req: Path, cache: Path) -> float:
    """Seconds for parse + lookup + match of the requirements, in-process, index warm."""
    os.environ["MLWARD_CACHE"] = str(cache)
    from mlward._internal.scanners.deps.check import check_dependencies, read_dependencies
    from mlward._internal.vulndb import local_source

    source = local_source(OSV)
    start = time.perf_counter()
    _, deps = read_dependencies(req)
    check_dependencies(deps, source)
    return time.perf_counter() - start


def pip_audit_verdict(run: dict[str, object]) -> str:
    try:
        data = json.loads(str(run["stdout"]))
    except ValueError:
        err = str(run["stderr"]).strip().splitlines()
        return (err[-1][:110] if err else "no output")
    deps = data.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    ids = sum(len(d["vulns"]) for d in vulnerable)
    reason = str(skipped[0]["skip_reason"]).split(":")[0] if skipped else ""
    return (f"{len(vulnerable)} vulnerable packages, {ids} advisories"
            + (f", {len(skipped)} skipped (\"{reason}\")" if skipped else ""))


def mlward_verdict(run: dict[str, object]) -> str:
    try:
        data = json.loads(str(run["stdout"]))
    except ValueError:
        return "no report"
    found = [f for f in data["findings"] if f["rule_id"] == "MW501"]
    packages = {f["details"]["package"] for f in found}
    return f"{len(packages)} vulnerable packages, {len(found)} vulnerabilities (aliases merged)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=500)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    compile_mlward()
    if not OSV.is_dir():
        print(f"needs the shared OSV data at {OSV}", file=sys.stderr)
        return 2
    req = workload(args.packages)
    cache = OUT / "cache"
    env = {"MLWARD_CACHE": str(cache)}
    mlward = str(VENV_BIN / "mlward")
    pip_audit = str(VENV_BIN / "pip-audit")
    rows: list[tuple[str, str, dict[str, object], str]] = []

    build = timed([mlward, "vulndb", "index", "--rebuild", str(OSV)], env)
    rows.append(("mlward", "index build (2,714 records)", build,
                 str(build["stdout"]).strip().split(" (")[-1].rstrip(")")))
    deps_cmd = [mlward, "deps", "-q", "-f", "json", "--vuln-db", str(OSV), str(req)]
    timed(deps_cmd, env)  # warm the page cache once
    repeat = timed(deps_cmd, env)
    rows.append(("mlward", f"repeat scan, {args.packages} packages (CLI)", repeat,
                 mlward_verdict(repeat)))
    match_s = mlward_matching_only(req, cache)
    rows.append(("mlward", f"matching only, {args.packages} packages (in-process)",
                 {"wall": match_s, "rss_mb": float("nan"), "cpu": float("nan"), "code": 0},
                 "parse + index lookup + PEP 440 matching"))

    audit = [pip_audit, "-r", str(req), "--disable-pip", "--no-deps", "-f", "json",
             "--progress-spinner", "off"]
    run = timed([*audit, "--cache-dir", str(OUT / "pip-audit-cache")])
    rows.append(("pip-audit", "PyPI service, cold cache", run, pip_audit_verdict(run)))
    run = timed([*audit, "--cache-dir", str(OUT / "pip-audit-cache")])
    rows.append(("pip-audit", "PyPI service, warm cache", run, pip_audit_verdict(run)))
    run = timed([*audit, "-s", "osv", "--timeout", "10"])
    rows.append(("pip-audit", "-s osv (api.osv.dev unreachable here)", run,
                 pip_audit_verdict(run)))
    run = timed(["unshare", "-n", *audit, "--cache-dir", str(OUT / "pip-audit-offline"),
                 "--timeout", "10"])
    rows.append(("pip-audit", "no network (unshare -n)", run, pip_audit_verdict(run)))

    table = ["| tool | run | wall s | CPU s | peak RSS MB | exit | result |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for tool, what, r, verdict in rows:
        rss = r["rss_mb"]
        table.append(f"| {tool} | {what} | {r['wall']:.2f} | "
                     f"{'' if r['cpu'] != r['cpu'] else format(r['cpu'], '.2f')} | "
                     f"{'' if rss != rss else format(rss, '.0f')} | {r['code']} | {verdict} |")
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    section = (f"Measured {stamp} on this machine (2 cores, shared), "
               f"{args.packages} packages:\n\n" + "\n".join(table) + "\n")
    print(section)
    if args.write_readme:
        write_section("deps_bench", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
