"""``mlward demo``: build a small ML project in a temporary folder and scan it."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from mlward.cli.scan import add_report_options, emit


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo", help="build a small demo ML project (one model is malicious) and scan it",
        description="Write a small ML project to a temporary folder: model files in the "
        "pickle-family formats, one of them carrying a payload, and scan it. Nothing in it is "
        "ever executed. Use --keep DIR to keep the files.")
    add_report_options(p)
    p.add_argument("--keep", metavar="DIR", type=Path,
                   help="build the project in DIR (created) and keep it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlward.demo import build_demo_project
    from mlward.scan import scan

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        build_demo_project(args.keep)
        print(f"demo project written to {args.keep}\n")
        return emit(scan([args.keep]), args)
    with tempfile.TemporaryDirectory(prefix="mlward-demo-") as tmp:
        root = Path(tmp) / "demo-project"
        root.mkdir()
        build_demo_project(root)
        print(f"demo project written to {root} (removed afterwards; --keep DIR keeps it)\n")
        return emit(scan([root]), args)
