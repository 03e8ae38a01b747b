"""``mlward data diff``: what changed between two versions of a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlward.cli.scan import add_report_options, emit
from mlward.errors import UsageError

KNOWN_KEYS = frozenset({"key", "label", "memory_limit", "label_shift", "mean_shift",
                        "null_shift", "trigger_min_rows", "trigger_label_share",
                        "trigger_old_share"})


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "data", help="compare versions of a tabular dataset before retraining",
        description="Dataset commands. Dataset files themselves (Parquet, Arrow, HDF5, Zarr, "
        "WebDataset, CSV/XLSX, Hugging Face dataset repositories) are checked by `mlward "
        "scan`.")
    dsub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    d = dsub.add_parser(
        "diff", help="rows added/removed/changed, schema and statistics shift, and "
        "poisoning indicators between two versions",
        description="Compare two versions of a tabular dataset: each a Parquet, CSV/TSV or "
        "JSON-lines file, a folder of such shards, an mlward manifest, or a lineage "
        "statement (its data inputs). Rows are compared as multisets of row hashes (row "
        "order is ignored), or joined on --key. Reported: rows added, removed and changed, "
        "schema changes, column statistics shift, label distribution shift (with --label), "
        "and poisoning indicators: labels changed on identical features (MW970), "
        "near-duplicate rows with conflicting labels (MW971), a rare token or value in many "
        "new rows with one label (MW972). DuckDB does the work within --memory-limit, "
        "spilling to a temporary folder (the `data` extra: pip install 'mlward[data]').",
        epilog="Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; "
        "2 usage error, or a dataset that could not be read.")
    add_report_options(d)
    d.add_argument("old", metavar="OLD", type=Path, help="the previous version")
    d.add_argument("new", metavar="NEW", type=Path, help="the version to check")
    d.add_argument("--key", metavar="COLUMN",
                   help="column identifying a row across versions (default: [data] key; "
                   "without one, rows are matched by content)")
    d.add_argument("--label", metavar="COLUMN",
                   help="the label column (default: [data] label); enables the label shift "
                   "and poisoning indicators")
    d.add_argument("--memory-limit", metavar="SIZE",
                   help="DuckDB memory limit, e.g. 2GB (default: [data] memory_limit, else 1GB)")
    d.add_argument("--root", metavar="DIR", type=Path,
                   help="folder that reported paths are relative to")
    d.set_defaults(func=run_diff)


def run_diff(args: argparse.Namespace) -> int:
    from mlward._internal.data.diff import DiffOptions, thresholds_from
    from mlward._internal.data.report import diff_report
    from mlward._internal.data.tables import DataError
    from mlward._internal.pipeline import scan_root

    section = args.settings.section("data")
    try:
        thresholds = thresholds_from(section, "[data]")
    except DataError as exc:
        raise UsageError(exc.diagnostics()) from None
    unknown = sorted(set(section) - KNOWN_KEYS)
    if unknown:
        raise UsageError(f"[data]: unknown setting {unknown[0]!r} (known: "
                         f"{', '.join(sorted(KNOWN_KEYS))})")
    for name in ("key", "label", "memory_limit"):
        if name in section and not isinstance(section[name], str):
            raise UsageError(f"[data] {name} must be a string")
    for p in (args.old, args.new):
        if not p.exists():
            raise UsageError(f"no such file or directory: {p}")
    options = DiffOptions(key=args.key or section.get("key"),
                          label=args.label or section.get("label"),
                          thresholds=thresholds,
                          memory_limit=args.memory_limit or section.get("memory_limit", "1GB"),
                          threads=args.settings.jobs)
    from mlward._internal.triage import make_triage

    root = scan_root(args.settings, [args.old, args.new])
    report = diff_report(args.old, args.new, options, root=root,
                         triage=make_triage(args.settings, root))
    return emit(report, args, action="data.diff")
