"""``mlward`` entry point: ``main(argv) -> int`` builds the parser from the command modules."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mlward._version import __version__
from mlward.errors import MlwardError

# Each module has ``register(subparsers)``, which adds its commands and sets ``func``
# (a callable taking the parsed arguments and returning the exit code). The table names the
# module of every top-level command, so that running one command imports only its module
# (start-up time is a real cost when mlward runs once per file in hooks and CI).
COMMANDS = {
    "scan": "mlward.cli.scan",
    "demo": "mlward.cli.demo",
    "rules": "mlward.cli.rules",
    "manifest": "mlward.cli.provenance",
    "lineage": "mlward.cli.provenance",
    "keygen": "mlward.cli.provenance",
    "sign": "mlward.cli.provenance",
    "verify": "mlward.cli.provenance",
    "init": "mlward.cli.init",
    "ledger": "mlward.cli.ledger",
    "deps": "mlward.cli.deps",
    "vulndb": "mlward.cli.deps",
    "probe": "mlward.cli.deps",
    "notebook": "mlward.cli.notebook",
}
COMMAND_MODULES = list(dict.fromkeys(COMMANDS.values()))

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or, given a known ``command``, one that knows only that command."""
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
    modules = [COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command word: the first argument that is not a global option."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv))
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
            import traceback

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
