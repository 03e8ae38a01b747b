"""``mlward deps``, ``mlward vulndb update|index`` and ``mlward probe``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlward.cli.record import file_uri, record
from mlward.cli.scan import add_report_options, add_walk_options, emit
from mlward.errors import UsageError
from mlward.formats import write_output

if TYPE_CHECKING:
    from mlward._internal.vulndb import VulnSource
# The vulnerability database code is imported by the commands that use it, not at start-up.


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "deps",
        help="check declared, locked and installed Python dependencies for known "
        "vulnerabilities (OSV data, offline by default)",
        description="Find dependency files (requirements*.txt with -r/-c, pyproject.toml, "
        "poetry.lock, uv.lock, Pipfile.lock, pylock.toml, conda environment.yml, notebooks' "
        "%%pip lines) in the given files and folders, the running environment (--env) or "
        "another one (--python), "
        "and match them against OSV advisories. Data: --vuln-db, else $MLWARD_VULN_DB, else "
        "the export `mlward vulndb update` downloaded; --online asks the OSV API instead. "
        "With no data the dependencies are listed as not checked and the exit code is 2.",
        epilog="Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; "
        "2 usage error, no vulnerability data, or a file that could not be read.",
    )
    add_report_options(p)
    add_walk_options(p)
    add_source_options(p)
    p.add_argument("--env", action="store_true",
                   help="also check the distributions installed in the Python environment "
                   "mlward runs in")
    p.add_argument("--python", metavar="PATH", type=Path,
                   help="also check the distributions installed in another Python "
                   "environment: its interpreter (.venv/bin/python), its folder (a virtual "
                   "or conda environment) or its site-packages; read from its files, "
                   "nothing in it is run")
    p.add_argument("--cyclonedx", metavar="FILE", type=Path,
                   help="also write the dependencies and their vulnerabilities as a "
                   "CycloneDX 1.6 JSON BOM to FILE")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="dependency files or folders to search (default: none with --env "
                   "or --python, else the current folder)")
    p.set_defaults(func=run_deps)

    v = sub.add_parser("vulndb", help="manage the local OSV vulnerability data",
                       description="Download and index OSV vulnerability data for offline use.")
    vsub = v.add_subparsers(dest="vulndb_command", metavar="COMMAND", required=True)
    up = vsub.add_parser("update", help="download OSV's PyPI export into the cache and index it",
                         description="Download OSV's PyPI all.zip (or --url) into the cache "
                         "folder ($MLWARD_CACHE, else ~/.cache/mlward) and index it. Later "
                         "scans use it when no --vuln-db is given.")
    up.add_argument("--url", help="where to download the export from "
                    "(default: the osv_export setting, MLWARD_OSV_EXPORT, else OSV's public "
                    "PyPI/all.zip)")
    up.set_defaults(func=run_update)
    ix = vsub.add_parser("index", help="build (or refresh) the index of local OSV data",
                         description="Index a folder of OSV JSON/YAML records or an OSV zip "
                         "export; the index is reused while the data is unchanged.")
    ix.add_argument("path", type=Path, nargs="?",
                    help="OSV folder or zip (default: $MLWARD_VULN_DB or the downloaded export)")
    ix.add_argument("--rebuild", action="store_true", help="rebuild even if up to date")
    ix.set_defaults(func=run_index)

    pr = sub.add_parser(
        "probe", help="fingerprint live MLflow, Ray, Jupyter, TensorBoard and Gradio servers",
        description="Send read-only GET requests to each URL: identify the tool and its "
        "version, check whether its API answers without authentication, and match the "
        "version against the vulnerability data. Never submits jobs, opens terminals, loads "
        "models or tries passwords; never follows redirects to another address.",
        epilog="Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; "
        "2 usage error or a URL that could not be probed.")
    add_report_options(pr)
    add_source_options(pr)
    pr.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                    help="per-request timeout (default: 5)")
    pr.add_argument("urls", nargs="+", metavar="URL", help="http(s) base URLs to probe")
    pr.set_defaults(func=run_probe)


def add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vuln-db", metavar="PATH", type=Path, action="append",
                   help="OSV data: a folder of OSV JSON/YAML records or an OSV zip export "
                   "(repeatable)")
    p.add_argument("--online", action="store_true",
                   help="query the OSV API (the osv_api setting, MLWARD_OSV_API; default "
                   "https://api.osv.dev)")


def vuln_source(args: argparse.Namespace) -> VulnSource | None:
    from mlward._internal.vulndb import source_for

    return source_for(args.settings)


def run_deps(args: argparse.Namespace) -> int:
    from mlward._internal.scanners.deps.audit import audit

    environment = args.env or args.python is not None
    paths = [Path(p) for p in args.paths] or ([] if environment else [Path()])
    result = audit(paths, environment=args.env, python=args.python, source=vuln_source(args),
                   settings=args.settings)
    if args.cyclonedx is not None:
        from mlward.formats.cyclonedx import render_cyclonedx

        write_output(render_cyclonedx(result.results), args.cyclonedx)
    environments = ([Path(sys.executable)] if args.env else []) + (
        [Path.cwd() / args.python] if args.python is not None else [])
    return emit(result.report, args, action="deps", resources=None if args.paths else
                [p.absolute().as_uri() for p in environments])


def run_update(args: argparse.Namespace) -> int:
    from mlward._internal.vulndb import exported_zip
    from mlward._internal.vulndb.index import open_index
    from mlward._internal.vulndb.online import download_export

    target = download_export(exported_zip(args.settings),
                             args.url or args.settings.osv_export)
    index = open_index(target, settings=args.settings, rebuild=True)
    meta = index.meta()
    print(f"downloaded {target}; indexed {meta['advisories']} PyPI advisories "
          f"({meta['bad']} unreadable records)")
    record(args, "vulndb.update", file_uri(target), outcome="pass",
           details={"from": args.url or args.settings.osv_export,
                    "advisories": int(meta["advisories"]), "unreadable": int(meta["bad"]),
                    "newest_record": meta.get("newest") or None})
    return 0


def run_index(args: argparse.Namespace) -> int:
    from mlward._internal.vulndb import data_paths
    from mlward._internal.vulndb.index import open_index

    path = args.path or next(iter(data_paths(args.settings)), None)
    if path is None:
        raise UsageError("no OSV data given: pass a PATH, set MLWARD_VULN_DB, or run "
                         "`mlward vulndb update`")
    index = open_index(path, settings=args.settings, rebuild=args.rebuild)
    meta = index.meta()
    state = "built" if index.stats is not None else "up to date"
    print(f"{state}: {index.path} ({meta['advisories']} PyPI advisories from "
          f"{meta['records']} records, {meta['bad']} unreadable)")
    if index.stats is not None:
        for problem in index.stats.bad[:20]:
            print(f"  unreadable: {problem}", file=sys.stderr)
    return 0


def run_probe(args: argparse.Namespace) -> int:
    from mlward._internal.probe import probe_report

    report = probe_report(args.urls, timeout=args.timeout, source=vuln_source(args),
                          settings=args.settings)
    return emit(report, args, action="probe",
                resources=[url.rstrip("/") for url in report.inputs])
