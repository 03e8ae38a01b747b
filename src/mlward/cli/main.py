"""``mlward`` entry point: ``main(argv) -> int`` builds the parser from the command modules."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from mlward._version import __version__
from mlward.errors import MlwardError

# Each module has ``register(subparsers)``, which adds its commands and sets ``func``
# (a callable taking the parsed arguments and returning the exit code).
COMMAND_MODULES = [
    "mlward.cli.scan",
    "mlward.cli.demo",
    "mlward.cli.rules",
    "mlward.cli.provenance",
    "mlward.cli.init",
    "mlward.cli.ledger",
    "mlward.cli.deps",
    "mlward.cli.notebook",
]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlward",
        description="Security for the machine-learning supply chain: scan model files, "
        "notebooks and dependencies; record provenance; keep a tamper-evident audit ledger.",
        epilog="Exit codes: 0 clean, 1 findings at or above --fail-on, "
        "2 usage error or something that could not be examined.",
    )
    parser.add_argument("--version", action="version", version=f"mlward {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="more detail; on an internal error, show the traceback")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser




def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 on --help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return int(args.func(args))
    except MlwardError as exc:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        print(f"mlward: error: {exc.diagnostics()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("mlward: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


def entrypoint() -> None:
    sys.exit(main())
