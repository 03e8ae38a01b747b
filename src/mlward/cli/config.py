"""``mlward config show``: the effective settings and where each came from."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "config", help="show the effective settings and where each came from",
        description="Settings are resolved in this order, later ones winning: built-in "
        "defaults, .mlward/mlward.toml, [tool.mlward] in pyproject.toml, MLWARD_* environment "
        "variables, command-line flags.")
    csub = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    show = csub.add_parser("show", help="print every setting, its value and its origin",
                           description="Print every setting with its effective value and "
                           "where it came from (default, a file, an environment variable).")
    show.add_argument("-f", "--format", choices=("text", "json"), default="text")
    show.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    from mlward.settings import describe

    rows = describe(args.settings)
    if args.format == "json":
        print(json.dumps([{"name": n, "value": v, "origin": o} for n, v, o in rows], indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("setting", "value", "from"):
        table.add_column(column, overflow="fold")
    for name, value, origin in rows:
        table.add_row(escape(name), escape(value),
                      f"[dim]{escape(origin)}[/]" if origin == "default" else escape(origin))
    color = args.settings.color if args.settings.color is not None else sys.stdout.isatty()
    Console(force_terminal=color, no_color=not color, width=120,
            highlight=False).print(table)
    return 0
