"""``mlward scan`` and ``mlward baseline create``; the report options every reporting
command shares (``add_report_options``, ``emit``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from mlward.cli.inventory import keep
from mlward.cli.main import add_cluster_option, positive_int, severity_arg
from mlward.cli.record import file_uri, record
from mlward.findings import Report, TargetKind
from mlward.formats import (
    RenderOptions,
    import_when_idle,
    render,
    write_output,
    writer_names,
)
from mlward.settings import EXECUTORS


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "scan",
        help="scan files and folders (models, archives, notebooks, code, configs) without "
        "executing them",
        description="Scan files and folders recursively. Formats are recognised by content, "
        "not by file name. Nothing in a scanned file is ever executed or imported. Virtual "
        "environments, .git, node_modules, caches and what .gitignore/.mlwardignore list are "
        "left out (and counted in the report); --no-ignore scans everything. Besides local "
        "paths: s3://BUCKET/PREFIX, gs://…, az://CONTAINER/PREFIX (ranged reads of only what "
        "a verdict needs), mlflow://HOST/models/NAME[/VERSION] (registered model versions), "
        "hf-cache:[ORG/NAME[@REVISION]] (the local Hugging Face cache).",
        epilog="Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; "
        "2 usage error, a file that could not be fully examined (inconclusive), or a run "
        "whose cluster went away (the report says what was not examined; --resume it).",
    )
    add_report_options(p)
    add_walk_options(p)
    add_executor_options(p)
    p.add_argument("--resume", metavar="REPORT", type=Path,
                   help="continue an interrupted run from its JSON report: inputs it "
                   "finished keep their results, the rest are scanned")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="files, folders, or s3://, gs://, az://, mlflow://, hf-cache: targets")
    p.set_defaults(func=run)

    b = sub.add_parser(
        "baseline", help="accept today's findings: later runs report only new ones",
        description="Baselines: `mlward baseline create` scans and writes the fingerprints "
        "of today's findings; later runs in the project mark those `unchanged` (they stay in "
        "JSON and SARIF, do not fail the run, and text output hides them unless --all) and "
        "report everything else as new.")
    bsub = b.add_subparsers(dest="baseline_command", metavar="COMMAND", required=True)
    c = bsub.add_parser(
        "create", help="scan PATHs and write their findings as the baseline",
        description="Scan PATHs and write every finding that is not waived to the baseline "
        "file (default .mlward/baseline.json in the project, which later runs use "
        "automatically; elsewhere pass --baseline FILE or set baseline = FILE).")
    c.add_argument("-o", "--output", metavar="FILE", type=Path,
                   help="where to write the baseline (default: .mlward/baseline.json)")
    add_walk_options(c)
    add_executor_options(c)
    c.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to scan")
    c.set_defaults(func=run_baseline_create)


def add_report_options(p: argparse.ArgumentParser) -> None:
    p.set_defaults(report_command=True)
    p.add_argument("-f", "--format", default=None, metavar="FORMAT",
                   help=f"report format: {', '.join(writer_names())} (default: text)")
    p.add_argument("-o", "--output", metavar="FILE", type=Path,
                   help="write the report to FILE (atomically) instead of standard output")
    p.add_argument("--fail-on", metavar="SEVERITY", type=severity_arg, default=None,
                   help="exit 1 when a finding is at or above this severity: "
                   "critical, high, medium, low, info (default: high; any case)")
    p.add_argument("--baseline", metavar="FILE", type=Path,
                   help="findings in this baseline are reported as unchanged and do not fail "
                   "the run (default: the project's .mlward/baseline.json when it exists)")
    p.add_argument("--all", action="store_true", dest="show_all",
                   help="with a baseline: also show the unchanged findings in text output")


def add_walk_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exclude", metavar="GLOB", action="append",
                   help="leave out paths matching GLOB (gitignore syntax, relative to the "
                   "root; repeatable)")
    p.add_argument("--no-ignore", action="store_true",
                   help="scan everything: ignore .gitignore/.mlwardignore and do not skip "
                   "virtual environments, .git, node_modules or caches")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="follow symbolic links to folders and to files outside the tree "
                   "(default: leave them out, listed as skipped); link loops are walked once")
    p.add_argument("--ignore-unreadable", action="store_true",
                   help="files and folders that cannot be read are listed as not examined "
                   "but do not make the run inconclusive (default: they make it exit 2)")
    p.add_argument("--root", metavar="DIR", type=Path,
                   help="folder that reported paths are relative to (default: the project "
                   "holding the inputs: .mlward/, .git or pyproject.toml)")


def add_executor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-j", "--jobs", type=positive_int, metavar="N",
                   help="worker processes (default: one per available core)")
    p.add_argument("--executor", choices=EXECUTORS,
                   help="where files are scanned: process (default: crash-isolated worker "
                   "processes), thread, inline (this process, no isolation), dask")
    add_cluster_option(p)
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="time budget per file; a file over it is inconclusive (default: 600)")


def emit(report: Report, args: argparse.Namespace, *, action: str = "scan",
         resources: Sequence[str] | None = None, record: bool = True) -> int:
    """Write the report where the user asked, record the run (unless the command records it
    itself: ``record=False``), return the exit code.

    ``resources`` are the URIs the run judged, one ledger entry each (default: one entry for
    the file, folder or project examined)."""
    s = args.settings
    to_terminal = args.output is None and sys.stdout.isatty()
    color = s.color if s.color is not None else to_terminal
    options = RenderOptions(fail_on=s.fail_on, color=color, verbose=s.verbose > 0,
                            show_all=s.all_findings)
    text = render(report, args.format, options)
    if args.output is not None:
        write_output(text, args.output)
        if args.format != "text" and not s.quiet:
            stderr_color = s.color if s.color is not None else sys.stderr.isatty()
            print(render(report, "text", options._replace(color=stderr_color)),
                  file=sys.stderr, end="")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    code = report.exit_code(s.fail_on)
    if record:
        for resource in resources or _resources(report):
            record_run(report, args, action, resource)
    keep(report, args, action)  # the inventory keeps every report, audits' included
    return code


def _resources(report: Report) -> list[str]:
    """What a report judged, as URIs: the one file or folder given, else the root; and
    each object-storage prefix or registry target as the location its entries are under."""
    from mlward._internal.targets import is_target, location_of

    targets = [location_of(i) for i in report.inputs if is_target(i)]
    local = [i for i in report.inputs if not is_target(i)]
    if targets and not local:
        return targets
    if len(local) == 1 and report.kind in (TargetKind.FILES, TargetKind.DEPENDENCIES):
        return [file_uri(local[0]), *targets]
    return [file_uri(report.root or os.curdir), *targets]


def record_run(report: Report, args: argparse.Namespace, action: str, resource: str) -> None:
    """Append the run's summary for ``resource`` to the project's audit ledger: its outcome
    and counts from what the report says about that resource (all of it for a file URI)."""
    from collections import Counter

    s = args.settings
    mine = report if resource.startswith("file:") else report._replace(
        findings=tuple(f for f in report.findings if _within(f.location.uri, resource)),
        skipped=tuple(x for x in report.skipped if _within(x.location.uri, resource)),
        examined=tuple(e for e in report.examined if _within(e.location.uri, resource)))
    code = mine.exit_code(s.fail_on)
    verdicts = Counter(str(v) for v in mine.verdicts().values())
    record(args, action, resource, outcome={0: "pass", 1: "fail"}.get(code, "inconclusive"),
           details={"exit_code": code, "fail_on": s.fail_on.label, "kind": str(report.kind),
                    "inputs": list(report.inputs), "examined": len(mine.examined),
                    "findings": mine.counts(),
                    "fingerprints": sorted({f.fingerprint for f in mine.counted}),
                    "verdicts": dict(sorted(verdicts.items())),
                    "inconclusive": len(mine.inconclusive)})


def _within(uri: str, resource: str) -> bool:
    """Whether an entry at ``uri`` belongs to ``resource``: the resource itself, or under it
    (``s3://bucket/prefix/key``, ``hf-cache:org/name@commit/file``)."""
    return uri == resource or uri.startswith((resource + "/", resource + "@")) \
        or resource.endswith(":")


AFTER_THE_SCAN = ("mlward._internal.triage", "mlward._internal.ledger.project",
                  "mlward._internal.inventory.config")
"""What making the report (waivers, baseline), recording it in the ledger and keeping it in
the inventory import: imported while the scan waits for its workers."""


def _scan(args: argparse.Namespace, *, fmt: str | None = None) -> Report:
    """The scan ``args`` ask for, with a progress bar on a terminal. While it waits for its
    workers, this process imports what comes after: ``fmt``'s writer, SHA-256 for the
    findings' fingerprints, and :data:`AFTER_THE_SCAN`."""
    from mlward._internal.idle import when_idle
    from mlward._internal.pipeline import scan
    from mlward.cli.progress import scan_progress
    from mlward.findings import load_sha256

    resume = _load_report(args.resume) if getattr(args, "resume", None) else None
    import_when_idle(fmt)
    when_idle(load_sha256)  # for the findings' fingerprints
    for module in AFTER_THE_SCAN:
        when_idle(partial(importlib.import_module, module))
    with scan_progress(quiet=args.settings.quiet) as observer:
        return scan(args.paths, settings=args.settings, observer=observer, resume=resume)


def _load_report(path: Path) -> Report:
    import json

    from mlward.errors import UsageError

    try:
        return Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise UsageError(f"cannot read the report to resume {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path} is not an mlward JSON report ({exc})") from None


def run(args: argparse.Namespace) -> int:
    return emit(_scan(args, fmt=args.format), args)


def run_baseline_create(args: argparse.Namespace) -> int:
    from mlward._internal.triage import write_baseline
    from mlward.settings import PROJECT_FOLDER, find_upwards

    # The baseline being written must not hide the findings it is made of.
    args.settings = args.settings._replace(baseline=None)
    report = _scan(args)
    target = args.output
    if target is None:
        folder = find_upwards(Path.cwd(), PROJECT_FOLDER) or Path.cwd()
        (folder / PROJECT_FOLDER).mkdir(exist_ok=True)
        target = folder / PROJECT_FOLDER / "baseline.json"
    n = write_baseline(report, target)
    from hashlib import sha256

    print(f"baseline written to {target}: {n} finding(s) accepted"
          + (f" ({len(report.inconclusive)} item(s) could not be examined: they are not in "
             "the baseline)" if report.inconclusive else ""))
    record(args, "baseline.create", file_uri(target),
           outcome="inconclusive" if report.inconclusive else "pass",
           digests={"sha256": sha256(Path(target).read_bytes()).hexdigest()},
           details={"accepted": n, "inputs": list(report.inputs),
                    "inconclusive": len(report.inconclusive)})
    return 2 if report.inconclusive else 0
