"""``mlward demo``: build a small ML project in a temporary folder and scan it."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlward.cli.scan import add_report_options, emit


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo", help="build a small demo ML project (one model is malicious) and scan it",
        description="Write a small ML project to a temporary folder: model files in the "
        "pickle-family formats, one of them carrying a payload, and scan it. Nothing in it is "
        "ever executed. Use --keep DIR to keep the files.",
        epilog="Exit code 1 is the expected result: the demo holds one malicious model.")
    add_report_options(p)
    p.add_argument("--keep", metavar="DIR", type=Path,
                   help="build the project in DIR (created) and keep it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return _build_and_scan(args.keep, args, "")
    with tempfile.TemporaryDirectory(prefix="mlward-demo-") as tmp:
        root = Path(tmp) / "demo-project"
        root.mkdir()
        return _build_and_scan(root, args, " (removed afterwards; --keep DIR keeps it)")


def _build_and_scan(root: Path, args: argparse.Namespace, note: str) -> int:
    from mlward._internal.demo import MALICIOUS, build_demo_project
    from mlward._internal.pipeline import scan

    build_demo_project(root)
    # Notes go to standard error so that standard output is the report alone (--format json).
    print(f"demo project written to {root}{note}\n", file=sys.stderr)
    code = emit(scan([root], settings=args.settings), args, action="demo")
    print(f"\nThe demo holds one malicious model, {MALICIOUS}: it should be the only "
          f"dangerous file, and exit code {code} (findings at or above "
          f"--fail-on) is the expected result.", file=sys.stderr)
    return code
