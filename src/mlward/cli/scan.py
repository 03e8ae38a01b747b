"""``mlward scan``: scan files and folders for dangerous content."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlward._internal.io import atomic_write_text
from mlward._internal.pipeline import scan
from mlward.findings import Report, Severity
from mlward.formats import FORMATS, render


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "scan",
        help="scan files and folders (models, archives, ...) without executing them",
        description="Scan files and folders recursively. Formats are recognised by content, "
        "not by file name. Nothing in a scanned file is ever executed or imported.",
        epilog="Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; "
        "2 usage error, or a file that could not be fully examined (inconclusive).",
    )
    add_report_options(p)
    p.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="worker processes for many files (default: one per core; 1 = none)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to scan")
    p.set_defaults(func=run)


def add_report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", choices=FORMATS, default="text",
                   help="report format (default: text)")
    p.add_argument("-o", "--output", metavar="FILE", type=Path,
                   help="write the report to FILE instead of standard output")
    p.add_argument("--fail-on", metavar="SEVERITY", default="high",
                   choices=[s.label for s in Severity],
                   help="exit 1 when a finding is at or above this severity: "
                   "critical, high, medium, low, info (default: high)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar, and no summary on standard error when the report "
                   "goes to --output")


def emit(report: Report, args: argparse.Namespace) -> int:
    """Write the report where the user asked and return the exit code."""
    fail_on = Severity.parse(args.fail_on)
    to_terminal = args.output is None and sys.stdout.isatty()
    text = render(report, args.format, fail_on=fail_on, color=to_terminal,
                  verbose=getattr(args, "verbose", False))
    if args.output is not None:
        atomic_write_text(args.output, text)
        if args.format != "text" and not args.quiet:
            print(render(report, "text", fail_on=fail_on, color=sys.stderr.isatty()),
                  file=sys.stderr, end="")
    else:
        sys.stdout.write(text)
    code = report.exit_code(fail_on)
    record_scan(report, fail_on, code)
    return code


def record_scan(report: Report, fail_on: Severity, code: int) -> None:
    """Append the scan's summary to the project's audit ledger, when it has one."""
    from collections import Counter

    from mlward._internal.ledger import LedgerError, record_event

    verdicts = Counter(str(v) for v in report.verdicts().values())
    inputs = [str(Path(p).resolve()) for p in report.inputs]
    try:
        record_event("scan", ", ".join(inputs) or "-",
                     outcome={0: "pass", 1: "fail"}.get(code, "inconclusive"),
                     details={"exit_code": code, "fail_on": fail_on.label, "inputs": inputs,
                              "examined": len(report.examined), "findings": report.counts(),
                              "verdicts": dict(sorted(verdicts.items())),
                              "inconclusive": len(report.inconclusive)})
    except LedgerError as exc:
        print(f"mlward: warning: the scan was not recorded in the ledger: {exc.diagnostics()}",
              file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.quiet or not sys.stderr.isatty():
        return emit(scan(args.paths, jobs=args.jobs), args)
    from mlward.cli.progress import progress_observer

    with progress_observer(enabled=True) as observer:
        report = scan(args.paths, observer=observer, jobs=args.jobs)
    return emit(report, args)
