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
        "place: every secret and personal datum the notebook scan reports in outputs and "
        "metadata (and with --sources in cell sources), whole, at any depth. The result is "
        "validated with nbformat and replaces the original atomically, keeping its mode (a "
        "kill leaves the old or the new file, no temporary one). Read-only notebooks are "
        "refused unless --force; a symbolic link's target is edited, the link kept. No "
        "backup is written unless --backup. Each cleaning is recorded in the project's "
        "ledger (what was redacted, by rule and place, never the value).",
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
    c.add_argument("--backup", action="store_true",
                   help="keep the original as NB.ipynb.bak (mode 0600): it still holds every "
                   "secret that was removed, so delete it once checked")
    c.add_argument("--force", action="store_true",
                   help="clean read-only notebooks too (their mode is kept)")
    c.set_defaults(func=run_clean)
    p.set_defaults(func=lambda args: _help(p))


def _help(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def run_clean(args: argparse.Namespace) -> int:
    from mlward._internal.scanners.notebook.clean import CleanError, clean_notebook
    from mlward.cli.record import file_uri, record

    if not (args.strip_outputs or args.redact):
        raise UsageError("choose what to clean: --strip-outputs and/or --redact")
    if args.sources and not args.redact:
        raise UsageError("--sources only applies with --redact")
    failed = 0
    for path in args.notebooks:
        try:
            result = clean_notebook(path, strip_outputs=args.strip_outputs, redact=args.redact,
                                    sources=args.sources, backup=args.backup,
                                    force=args.force)
        except CleanError as exc:
            print(f"mlward: error: {exc.diagnostics()}", file=sys.stderr)
            record(args, "notebook.clean", file_uri(path), outcome="error",
                   details={"error": exc.diagnostics()})
            failed += 1
            continue
        record(args, "notebook.clean", file_uri(result.path),
               outcome="changed" if result.changed else "unchanged",
               details={"outputs_removed": result.outputs_removed,
                        "redacted": [r.to_dict() for r in result.redactions],
                        "upgraded_from": result.upgraded_from,
                        "backup": None if result.backup is None else str(result.backup)})
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
        print(f"{path}: " + ", ".join(done)
              + (f" (in the link's target {result.path})" if result.path != path else ""))
        if result.backup is not None:
            print(f"  backup: {result.backup} (still holds the original content, secrets "
                  "included; delete it once checked)")
    return 2 if failed else 0
