"""``mlward notebook clean``: strip outputs and redact secrets/personal data in notebooks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlward.errors import UsageError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "notebook", help="notebook tools: clean outputs, secrets and personal data",
        description="Tools for Jupyter notebooks.")
    nsub = p.add_subparsers(dest="notebook_command", metavar="COMMAND")
    c: argparse.ArgumentParser = nsub.add_parser(
        "clean", help="strip outputs and/or redact secrets and personal data in place",
        description="Strip outputs and/or redact detected secrets and personal data, in "
        "place. The original is kept as NB.ipynb.bak (it still holds what was removed: "
        "delete it once checked). Cell sources are changed only with --sources. The result "
        "is validated with nbformat before it replaces the original.",
        epilog="Exit codes: 0 done (or nothing to do); 2 usage error or a notebook that "
        "could not be cleaned.")
    c.add_argument("notebooks", nargs="+", metavar="NB.ipynb", type=Path,
                   help="notebooks to clean")
    c.add_argument("--strip-outputs", action="store_true",
                   help="remove all outputs, execution counts and widget state")
    c.add_argument("--redact", action="store_true",
                   help="replace secrets and personal data in outputs and metadata with "
                   "[REDACTED:kind]")
    c.add_argument("--sources", action="store_true",
                   help="with --redact: also redact cell sources and attachments")
    c.add_argument("--no-backup", action="store_true", help="do not keep NB.ipynb.bak")
    c.set_defaults(func=run_clean)
    p.set_defaults(func=lambda args: _help(p))


def _help(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def run_clean(args: argparse.Namespace) -> int:
    from mlward._internal.scanners.notebook.clean import clean_notebook

    if not (args.strip_outputs or args.redact):
        raise UsageError("choose what to clean: --strip-outputs and/or --redact")
    if args.sources and not args.redact:
        raise UsageError("--sources only applies with --redact")
    for path in args.notebooks:
        result = clean_notebook(path, strip_outputs=args.strip_outputs, redact=args.redact,
                                sources=args.sources, backup=not args.no_backup)
        if not result.changed:
            print(f"{path}: nothing to clean")
            continue
        done = []
        if result.outputs_removed:
            done.append(f"{result.outputs_removed} output(s) removed")
        if result.secrets_redacted:
            done.append(f"{result.secrets_redacted} secret(s) redacted")
        if result.pii_redacted:
            done.append(f"{result.pii_redacted} personal-data item(s) redacted")
        if result.upgraded_from:
            done.append(f"upgraded from nbformat v{result.upgraded_from} to v4")
        print(f"{path}: " + ", ".join(done))
        if result.backup is not None:
            print(f"  backup: {result.backup} (still holds the original content; delete it "
                  "once checked)")
    return 0
