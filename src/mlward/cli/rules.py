"""``mlward rules``: list the rule catalogue."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlward.rules import RULES


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "rules", help="list every rule mlward reports, with its severity and remediation",
        description="List the rule catalogue (the rule ids that appear in findings).")
    p.add_argument("-f", "--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlward._internal.scanners import load_scanners

    load_scanners(text=True)  # scanners register their rules on import
    rules = sorted(RULES.values(), key=lambda r: r.id)
    if args.format == "json":
        print(json.dumps([{"id": r.id, "title": r.title, "severity": r.severity.label,
                           "cwe": r.cwe, "remediation": r.remediation, "doc": r.doc}
                          for r in rules], indent=2))
    else:
        for r in rules:
            print(f"{r.id}  {r.severity.label:8}  {r.title}")
    return 0
